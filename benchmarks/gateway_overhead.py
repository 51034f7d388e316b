"""What the gateway costs: the same requests straight to vLLM and through `babelcap serve`'s
gateway, side by side in one run (interleaved rounds, so machine noise hits both alike).

    python -m benchmarks.gateway_overhead [--rounds 4] [--concurrency 64]

Starts the tiny-cpu profile's vLLM backends, runs the gateway in its own process (uvicorn, as
`babelcap serve` does), then for each round: ``--concurrency`` streaming image requests at once
(throughput) and ``--sequential`` single requests (latency), direct and via the gateway.
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

from benchmarks.environment import save_report

_BACKENDS_ENV = "BABELCAP_BENCH_BACKENDS"


def app_from_env() -> Any:
    """uvicorn factory: a gateway over the backends named in $BABELCAP_BENCH_BACKENDS."""
    from server.gateway import Backend, GatewayConfig, create_gateway

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
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks += 1
    return time.perf_counter() - started, chunks


async def _burst(base: str, concurrency: int) -> dict[str, float]:
    body = _body(stream=True)
    limits = httpx.Limits(max_connections=concurrency + 8)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        started = time.perf_counter()
        results = await asyncio.gather(*(_one(client, base, body) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"requests_per_s": concurrency / wall, "chunks": sum(c for _, c in results)}


async def _sequential(base: str, count: int) -> list[float]:
    body = _body(stream=True)
    async with httpx.AsyncClient(timeout=300) as client:
        await _one(client, base, body)
        return [(await _one(client, base, body))[0] for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the table, save JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sequential", type=int, default=30, help="single requests per round")
    parser.add_argument("--output", default="out/bench-gateway.json")
    args = parser.parse_args(argv)

    from server.profiles import load_profile
    from server.supervisor import Supervisor
    from server.vllm_process import free_port

    profile = load_profile("tiny-cpu")
    profile.models = [m for m in profile.models if m.role == "image"]
    supervisor = Supervisor(profile, Path("out/logs/bench-gateway"), echo=False)
    supervisor.start()
    port = free_port()
    urls = json.dumps({b.name: b.base_url for b in supervisor.backends})
    gateway = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "benchmarks.gateway_overhead:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log", "--no-proxy-headers", "--no-server-header"],
        env={**os.environ, _BACKENDS_ENV: urls},
    )  # fmt: skip
    direct, via = supervisor.backends[0].base_url, f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{via}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        asyncio.run(_burst(direct, 8))  # warm-up, both paths
        asyncio.run(_burst(via, 8))
        figures: dict[str, dict[str, list[float]]] = {
            "direct": {"throughput": [], "latency": []},
            "gateway": {"throughput": [], "latency": []},
        }
        gateway_cpu, gateway_requests = 0.0, 0
        for _ in range(args.rounds):
            for name, base in (("direct", direct), ("gateway", via)):
                cpu_before = _cpu_seconds(gateway.pid)
                burst = asyncio.run(_burst(base, args.concurrency))
                figures[name]["throughput"].append(burst["requests_per_s"])
                figures[name]["latency"] += asyncio.run(_sequential(base, args.sequential))
                if name == "gateway":
                    gateway_cpu += _cpu_seconds(gateway.pid) - cpu_before
                    gateway_requests += args.concurrency + args.sequential + 1
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
        supervisor.stop()

    summary = {
        name: {
            "requests_per_s_median": statistics.median(f["throughput"]),
            "latency_ms_median": 1000 * statistics.median(f["latency"]),
            "latency_ms_p90": 1000 * statistics.quantiles(f["latency"], n=10)[-1],
        }
        for name, f in figures.items()
    }
    loss = (
        1 - summary["gateway"]["requests_per_s_median"] / summary["direct"]["requests_per_s_median"]
    )
    added = summary["gateway"]["latency_ms_median"] - summary["direct"]["latency_ms_median"]
    cpu_ms = 1000 * gateway_cpu / gateway_requests
    print(
        f"{'path':<10}{'req/s @' + str(args.concurrency):>14}{'median ms @1':>14}{'p90 ms @1':>11}"
    )
    for name, row in summary.items():
        print(f"{name:<10}{row['requests_per_s_median']:>14.2f}{row['latency_ms_median']:>14.2f}"
              f"{row['latency_ms_p90']:>11.2f}")  # fmt: skip
    print(f"gateway throughput loss {100 * loss:.1f}%, added median latency {added:.2f} ms, "
          f"gateway CPU {cpu_ms:.2f} ms per request")  # fmt: skip
    save_report(args.output, "gateway_overhead", vars(args), summary=summary,
                throughput_loss=loss, added_median_latency_ms=added,
                gateway_cpu_ms_per_request=cpu_ms, raw=figures)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
