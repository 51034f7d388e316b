"""What the gateway costs: the same requests straight to vLLM and through `babelcap serve`'s
gateway, side by side in one run.

    python -m babelcap.benchmarks.gateway_overhead [--rounds 8] [--concurrency 64] [--requests 512]

Starts the tiny-cpu profile's vLLM backends, runs the gateway in its own process (uvicorn, as
`babelcap serve` does), then for each round and each path: ``--concurrency`` streams kept busy
until ``--requests`` streaming image requests have finished (throughput), then ``--sequential``
single requests on each path, alternating request by request (latency). The throughput runs
alternate A-B, B-A from round to round so that drift in the machine's speed hits both alike;
each round's gateway figures are compared with the same round's direct ones (latency: each
request with its neighbour), and the headline figures are the medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from babelcap.benchmarks.environment import save_report
from babelcap.core import defaults

_BACKENDS_ENV = "BABELCAP_BENCH_BACKENDS"


def app_from_env() -> Any:
    """uvicorn factory: a gateway over the backends named in $BABELCAP_BENCH_BACKENDS."""
    from babelcap.server.backends import Backend
    from babelcap.server.gateway import GatewayConfig, create_gateway

    backends = []
    for name, url in json.loads(os.environ[_BACKENDS_ENV]).items():
        backend = Backend(name, "image", url)
        backend.state = "ready"
        backends.append(backend)
    return create_gateway(backends, GatewayConfig())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (from /proc)."""
    with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _body(stream: bool) -> dict[str, Any]:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), (220, 30, 30)).save(buffer, "JPEG")
    url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {
        "model": "tiny-mllama",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": "Describe this image."}]}],
        "max_tokens": 16, "temperature": 0, "stream": stream,
    }  # fmt: skip


async def _one(client: httpx.AsyncClient, base: str, body: dict[str, Any]) -> tuple[float, int]:
    started = time.perf_counter()
    chunks = 0
    async with client.stream("POST", f"{base}/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            detail = (await response.aread())[:300].decode(errors="replace")
            raise httpx.HTTPError(f"HTTP {response.status_code}: {detail}")
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks += 1
    return time.perf_counter() - started, chunks


async def _sustained(base: str, concurrency: int, requests: int) -> dict[str, Any]:
    """``concurrency`` streams, each starting its next request as soon as one ends."""
    body = _body(stream=True)
    limits = httpx.Limits(max_connections=concurrency + 8)
    remaining = requests
    failures = chunks = 0
    errors: list[str] = []

    async def stream(client: httpx.AsyncClient) -> None:
        nonlocal remaining, failures, chunks
        while remaining > 0:
            remaining -= 1
            try:
                chunks += (await _one(client, base, body))[1]
            except httpx.HTTPError as error:
                failures += 1
                errors.append(f"{type(error).__name__}: {error}")

    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(stream(client) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {
        "requests_per_s": requests / wall,
        "failures": failures,
        "errors": errors[:5],
        "chunks": chunks,
    }


def _order(paths: dict[str, str], number: int) -> list[str]:
    """The path names in turn ``number``: A B, then B A, and so on."""
    return list(paths) if number % 2 == 0 else list(paths)[::-1]


async def _interleaved(paths: dict[str, str], count: int) -> dict[str, list[float]]:
    """``count`` single requests on each path, one at a time, alternating between the paths
    (A B, B A, ...), so each pair of requests meets the same state of the machine."""
    body = _body(stream=True)
    latencies: dict[str, list[float]] = {name: [] for name in paths}
    async with httpx.AsyncClient(timeout=300) as client:
        for base in paths.values():
            await _one(client, base, body)
        for number in range(count):
            order = _order(paths, number)
            for name in order:
                latencies[name].append((await _one(client, paths[name], body))[0])
    return latencies


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the table, save JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=8, help="rounds, each path once a round")
    parser.add_argument("--concurrency", type=int, default=64, help="streams kept busy at once")
    parser.add_argument("--requests", type=int, default=512, help="requests per throughput run")
    parser.add_argument("--sequential", type=int, default=60, help="single requests per round")
    parser.add_argument("--output", default="out/bench-gateway.json")
    args = parser.parse_args(argv)

    from babelcap.server.process import free_port, wait_healthy
    from babelcap.server.profiles import load_profile
    from babelcap.server.supervisor import Supervisor

    profile = load_profile("tiny-cpu")
    profile.models = [m for m in profile.models if m.role == "image"]
    supervisor = Supervisor(profile, Path("out/logs/bench-gateway"), echo=False)
    supervisor.start()
    port = free_port()
    urls = json.dumps({b.name: b.base_url for b in supervisor.backends})
    gateway = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory",
         "babelcap.benchmarks.gateway_overhead:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log", "--no-proxy-headers", "--no-server-header",
         "--timeout-keep-alive", str(defaults.BACKEND_KEEP_ALIVE_S)],
        env={**os.environ, _BACKENDS_ENV: urls},
    )  # fmt: skip
    paths = {"direct": supervisor.backends[0].base_url, "gateway": f"http://127.0.0.1:{port}"}
    rounds: list[dict[str, dict[str, Any]]] = []
    gateway_cpu, gateway_requests = 0.0, 0
    try:
        wait_healthy(gateway, f"{paths['gateway']}/health", name="gateway", timeout=20.0)
        for base in paths.values():  # warm-up, both paths
            asyncio.run(_sustained(base, 8, 16))
        for number in range(args.rounds):
            order = _order(paths, number)
            cpu_before = _cpu_seconds(gateway.pid)
            measured = {
                name: asyncio.run(_sustained(paths[name], args.concurrency, args.requests))
                for name in order
            }
            for name, latencies in asyncio.run(_interleaved(paths, args.sequential)).items():
                measured[name]["latencies_s"] = latencies
            gateway_cpu += _cpu_seconds(gateway.pid) - cpu_before
            gateway_requests += args.requests + args.sequential + 1
            rounds.append(measured)
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
        supervisor.stop()

    def median_ms(values: list[float]) -> float:
        return 1000 * statistics.median(values)

    summary = {}
    for name in paths:
        latencies = [s for r in rounds for s in r[name]["latencies_s"]]
        summary[name] = {
            "requests_per_s_median": statistics.median(r[name]["requests_per_s"] for r in rounds),
            "latency_ms_median": median_ms(latencies),
            "latency_ms_p90": 1000 * statistics.quantiles(latencies, n=10)[-1],
            "failures": sum(r[name]["failures"] for r in rounds),
        }
    losses = [1 - r["gateway"]["requests_per_s"] / r["direct"]["requests_per_s"] for r in rounds]
    # Each request through the gateway minus the direct one next to it, per round.
    added = []
    for r in rounds:
        pairs = zip(r["gateway"]["latencies_s"], r["direct"]["latencies_s"], strict=True)
        added.append(median_ms([g - d for g, d in pairs]))
    loss, added_ms = statistics.median(losses), statistics.median(added)
    cpu_ms = 1000 * gateway_cpu / gateway_requests
    print(f"{'path':<10}{'req/s @' + str(args.concurrency):>14}{'median ms @1':>14}"
          f"{'p90 ms @1':>11}{'failed':>8}")  # fmt: skip
    for name, row in summary.items():
        print(f"{name:<10}{row['requests_per_s_median']:>14.2f}{row['latency_ms_median']:>14.2f}"
              f"{row['latency_ms_p90']:>11.2f}{row['failures']:>8}")  # fmt: skip
    print(f"gateway throughput loss {100 * loss:.1f}% (rounds: "
          f"{', '.join(f'{100 * x:.1f}' for x in losses)}), added median latency "
          f"{added_ms:.2f} ms (rounds: {', '.join(f'{x:.2f}' for x in added)}), "
          f"gateway CPU {cpu_ms:.2f} ms per request")  # fmt: skip
    for r in rounds:
        for row in r.values():
            row["latencies_s"] = [round(x, 5) for x in row["latencies_s"]]
    save_report(args.output, "gateway_overhead", vars(args), summary=summary,
                throughput_loss=loss, throughput_loss_by_round=losses,
                added_median_latency_ms=added_ms, added_median_latency_ms_by_round=added,
                gateway_cpu_ms_per_request=cpu_ms, rounds=rounds)  # fmt: skip
    failed = summary["direct"]["failures"] + summary["gateway"]["failures"]
    if failed:
        errors = [e for r in rounds for row in r.values() for e in row["errors"]]
        print(f"{failed} requests failed, e.g. {errors[:3]}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
