"""How long hostile requests stall the gateway's event loop: the latency of ``GET /health``, asked
back to back, while each hostile request is in flight, against the same with nothing else.

    python -m babelcap.benchmarks.gateway_stall [--output out/bench-gateway-stall.json]

The gateway runs in its own process (uvicorn, babelcap's HTTP protocol, as `babelcap serve`
runs it) with the real translator on the tiny NLLB stand-in and one image backend that is
never reached: every case here is refused, or answered, by the gateway itself. Target (issue
13): no case adds more than 100 ms to a ``/health`` answer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx

from babelcap.benchmarks.environment import save_report

_MODEL_ENV = "BABELCAP_BENCH_NLLB"


def app_from_env() -> Any:
    """uvicorn factory: a gateway with the translator at $BABELCAP_BENCH_NLLB and one backend
    on a port nothing listens on."""
    from babelcap.server.backends import Backend
    from babelcap.server.gateway import GatewayConfig, create_gateway
    from babelcap.server.translation import TranslationEngine, TranslationSettings

    backend = Backend("tiny", "image", "http://127.0.0.1:9", {"tile_size": 560, "max_tiles": 4})
    backend.state = "ready"
    engine = TranslationEngine(TranslationSettings(model=Path(os.environ[_MODEL_ENV])))
    return create_gateway([backend], GatewayConfig(), engine)


def _data_url(kind: str, data: bytes) -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode()


def _image(mode: str, size: tuple[int, int], fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, fmt)
    return buffer.getvalue()


def _chat(part: dict[str, Any]) -> bytes:
    content = [part, {"type": "text", "text": "Describe."}]
    return json.dumps(
        {"model": "tiny", "messages": [{"role": "user", "content": content}]}
    ).encode()


def _cases() -> dict[str, Callable[[httpx.AsyncClient], Coroutine[Any, Any, int]]]:
    png = _image("1", (13000, 13000), "PNG")
    frame = base64.b64encode(_image("RGB", (4000, 4000), "JPEG")).decode()
    frames = _chat({"type": "video_url", "video_url": {"url": "data:video/jpeg;base64," +
                                                       ",".join([frame] * 20)}})  # fmt: skip
    junk = _chat({"type": "image_url", "image_url": {"url": _data_url(
        "image/jpeg", _image("RGB", (64, 64), "JPEG") + os.urandom(45 * 2**20))}})  # fmt: skip
    nested = b'{"model": "tiny", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    text = "a" * 199_000

    def post(path: str, body: bytes) -> Callable[[httpx.AsyncClient], Coroutine[Any, Any, int]]:
        async def send(client: httpx.AsyncClient) -> int:
            answer = await client.post(
                path, content=body, headers={"content-type": "application/json"}
            )
            return answer.status_code

        return send

    async def chunked(client: httpx.AsyncClient) -> int:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(200 * 16):
                yield b"x" * 65536

        try:
            return (await client.post("/v1/chat/completions", content=body())).status_code
        except httpx.TransportError:  # refused mid-body: the connection was closed
            return 413

    async def scrape(client: httpx.AsyncClient) -> int:
        return (await client.get("/metrics")).status_code

    return {
        "13000x13000 1-bit PNG (26 KB)": post("/v1/chat/completions", _chat(
            {"type": "image_url", "image_url": {"url": _data_url("image/png", png)}})),
        "20 frames of 4000x4000 JPEG": post("/v1/chat/completions", frames),
        "45 MB image data URL": post("/v1/chat/completions", junk),
        "JSON nested 100000 deep": post("/v1/chat/completions", nested),
        "200 MB chunked chat body": chunked,
        "199,000 letters, no space or punctuation": post("/v1/translations", json.dumps(
            {"text": text, "target_languages": ["fra_Latn"]}).encode()),
        "/metrics after 20000 random 404s": scrape,
    }  # fmt: skip


async def _probe(base: str, busy: Callable[[], bool]) -> list[float]:
    """``/health`` latencies (ms), back to back, while ``busy()``."""
    latencies = []
    async with httpx.AsyncClient(base_url=base) as client:
        while busy():
            started = time.perf_counter()
            await client.get("/health")
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.005)
    return latencies


async def _flood(base: str) -> None:
    """20000 requests to random paths (each a 404)."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for n in range(0, 20_000, 200):
            await asyncio.gather(*(client.get(f"/random-{n + i}") for i in range(200)))


def _in_thread(
    case: Callable[[httpx.AsyncClient], Coroutine[Any, Any, int]], base: str
) -> asyncio.Future[int]:
    """Run ``case`` on its own event loop in a thread, so that the probe's loop only probes."""

    async def run() -> int:
        async with httpx.AsyncClient(base_url=base, timeout=300) as client:
            return await case(client)

    return asyncio.ensure_future(asyncio.to_thread(asyncio.run, run()))


async def _measure(base: str) -> list[dict[str, Any]]:
    rows = []
    idle_until = time.monotonic() + 3
    idle = await _probe(base, lambda: time.monotonic() < idle_until)
    rows.append({"case": "nothing else (baseline)", "status": 200, "seconds": 3.0,
                 "health_max_ms": max(idle),
                 "health_p50_ms": sorted(idle)[len(idle) // 2]})  # fmt: skip
    for name, case in _cases().items():
        if name.startswith("/metrics"):
            await _flood(base)
        started = time.monotonic()
        task = _in_thread(case, base)
        latencies = await _probe(base, lambda task=task: not task.done())  # type: ignore[misc]
        status = await task
        rows.append({
            "case": name, "status": status, "seconds": round(time.monotonic() - started, 2),
            "health_max_ms": max(latencies, default=0.0),
            "health_p50_ms": sorted(latencies)[len(latencies) // 2] if latencies else 0.0,
        })  # fmt: skip
        print(
            f"{name:45} {status:4} {rows[-1]['seconds']:7.2f} s   /health max "
            f"{rows[-1]['health_max_ms']:7.1f} ms  p50 {rows[-1]['health_p50_ms']:5.1f} ms"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every case and print and save the figures."""
    from babelcap.core.artifacts import stand_in
    from babelcap.server.process import free_port, stop_group, wait_healthy

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="out/bench-gateway-stall.json")
    args = parser.parse_args(argv)
    port = free_port()
    gateway = subprocess.Popen(
        [sys.executable, "-c",
         "from babelcap.benchmarks.gateway_stall import app_from_env;"
         "from babelcap.server.http_server import run;"
         f"run(app_from_env(), host='127.0.0.1', port={port})"],
        env={**os.environ, _MODEL_ENV: str(stand_in("nllb-ct2"))},
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(gateway, f"{base}/health", name="gateway", timeout=120)
        rows = asyncio.run(_measure(base))
    finally:
        stop_group(gateway, name="gateway")
    worst = max(row["health_max_ms"] for row in rows[1:])
    print(f"worst /health answer during a hostile request: {worst:.1f} ms "
          f"(baseline max {rows[0]['health_max_ms']:.1f} ms)")  # fmt: skip
    save_report(args.output, "gateway_stall", {"probe": "GET /health back to back"}, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
