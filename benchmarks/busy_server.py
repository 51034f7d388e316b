"""A real local HTTP server that imitates a busy vLLM behind a babelcap gateway: fixed capacity,
fixed latency, a fixed short answer, almost no CPU of its own.

    python -m babelcap.benchmarks.busy_server --port 8000 --capacity 8 --latency-s 2

It answers what ``babelcap caption`` asks of a babelcap server, in the same shapes:

- ``GET /v1/models``: an image model, a video model (each with its ``babelcap.role`` and the
  media hints ``babelcap.media`` of the real models) and a translation model;
- ``POST /v1/chat/completions``: at most ``capacity`` requests are served at once, the others
  wait in arrival order (FIFO); a served request takes ``latency_s``: its first token comes
  ``ttft_fraction`` of it in, the other tokens evenly over the rest. Streamed as vLLM streams
  (server-sent events, a role chunk, one chunk a word, a finish chunk, then with
  ``stream_options.include_usage`` a usage chunk, then ``[DONE]``), or as one JSON answer;
- ``POST /v1/translations``: at once, each text prefixed with ``[code]``;
- ``GET /health`` and ``GET /stats`` (requests served, peak in flight and waiting).

Every wait is an ``asyncio.sleep`` and no media is decoded, so K of these on 2 cores leave the
CPU to the client being measured. :func:`busy_servers` starts K of them as subprocesses;
:func:`serve_in_thread` one in this process (tests).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from babelcap.core import defaults

if TYPE_CHECKING:
    from starlette.responses import Response

__all__ = ["BusyConfig", "BusyState", "busy_servers", "create_app", "serve_in_thread", "stats"]

IMAGE_MODEL = "busy-image"
VIDEO_MODEL = "busy-video"
TRANSLATION_MODEL = "busy-nllb"
DEFAULT_ANSWER = "A red square on a plain background, shown as a simple bold advertisement."
#: ISO 639-1 codes the translation route resolves (FLORES-200 codes pass as they are).
_ISO = {"fr": "fra_Latn", "es": "spa_Latn", "hi": "hin_Deva", "de": "deu_Latn",
        "en": "eng_Latn", "it": "ita_Latn", "pt": "por_Latn", "ja": "jpn_Jpan"}  # fmt: skip


@dataclass(frozen=True)
class BusyConfig:
    """How busy the imitated server is."""

    capacity: int = 8
    """Requests served at once; the rest wait in a FIFO."""
    latency_s: float = 2.0
    """Seconds one served request takes, first token to last."""
    ttft_fraction: float = 0.25
    """Share of ``latency_s`` before the first token."""
    answer: str = DEFAULT_ANSWER
    """The text of every answer, streamed a word a chunk."""
    prompt_tokens: int = 100
    """What the usage reports for every prompt."""


class FifoGate:
    """At most ``capacity`` holders; waiters are let in strictly in arrival order."""

    def __init__(self, capacity: int) -> None:
        self.free = capacity
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(ticket)
        try:
            await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                self.release()  # let in, then cancelled: pass the place on
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(ticket)
            raise

    def release(self) -> None:
        while self.waiters:
            ticket = self.waiters.popleft()
            if not ticket.done():
                ticket.set_result(None)
                return
        self.free += 1


@dataclass
class BusyState:
    """What the server did, for ``GET /stats``."""

    config: BusyConfig
    gate: FifoGate = field(init=False)
    in_flight: int = 0
    waiting: int = 0
    peak_in_flight: int = 0
    peak_waiting: int = 0
    completed: int = 0
    cancelled: int = 0
    translations: int = 0
    started: float = field(default_factory=time.monotonic)
    first_done: float | None = None
    last_done: float | None = None
    done_at: list[float] = field(default_factory=list)
    """Wall-clock time (``time.time()``) each completed request ended."""

    def __post_init__(self) -> None:
        self.gate = FifoGate(self.config.capacity)

    def report(self) -> dict[str, Any]:
        return {
            "capacity": self.config.capacity,
            "latency_s": self.config.latency_s,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "peak_in_flight": self.peak_in_flight,
            "peak_waiting": self.peak_waiting,
            "translations": self.translations,
            "first_done_s": None if self.first_done is None else self.first_done - self.started,
            "last_done_s": None if self.last_done is None else self.last_done - self.started,
            "done_at": self.done_at,
        }


def _error(status: int, message: str, kind: str = "invalid_request_error") -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status)


def _media_kinds(messages: Any) -> set[str]:
    kinds: set[str] = set()
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") in ("image_url", "video_url"):
                kinds.add(str(part["type"]).removesuffix("_url"))
    return kinds


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


def create_app(config: BusyConfig) -> Any:
    """The Starlette app (``app.state.busy`` is its :class:`BusyState`)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    state = BusyState(config)
    media = {
        "tile_size": defaults.IMAGE_TILE_SIZE, "max_tiles": defaults.IMAGE_MAX_TILES,
        "frames": defaults.VIDEO_FRAMES, "frame_size": defaults.VIDEO_FRAME_SIZE,
    }  # fmt: skip
    roles = {IMAGE_MODEL: "image", VIDEO_MODEL: "video"}

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "backends": dict.fromkeys(roles, "ready"),
                             "translation": "ready"})  # fmt: skip

    async def show_stats(_: Request) -> Response:
        return JSONResponse(state.report())

    async def models(_: Request) -> Response:
        now = int(time.time())
        data = [{"id": name, "object": "model", "created": now, "owned_by": "babelcap",
                 "babelcap": {"role": role, "state": "ready", "media": media}}
                for name, role in roles.items()]  # fmt: skip
        data.append({"id": TRANSLATION_MODEL, "object": "model", "created": now,
                     "owned_by": "babelcap",
                     "babelcap": {"role": "translation", "state": "ready"}})  # fmt: skip
        return JSONResponse({"object": "list", "data": data})

    async def serve(tokens: list[str]) -> AsyncIterator[int]:
        """Wait for a place, then yield the index of each token at its time."""
        queued = state.gate.free == 0 or bool(state.gate.waiters)
        state.waiting += queued
        state.peak_waiting = max(state.peak_waiting, state.waiting)
        try:
            await state.gate.acquire()
        finally:
            state.waiting -= queued
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        done = False
        try:
            first = config.latency_s * config.ttft_fraction
            step = (config.latency_s - first) / max(1, len(tokens) - 1)
            await asyncio.sleep(first)
            for index in range(len(tokens)):
                if index:
                    await asyncio.sleep(step)
                yield index
            done = True
        finally:
            state.in_flight -= 1
            state.gate.release()
            if done:
                state.completed += 1
                state.last_done = time.monotonic()
                state.first_done = state.first_done or state.last_done
                state.done_at.append(time.time())
            else:
                state.cancelled += 1

    async def chat(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the body is not a JSON object")
        model = body.get("model")
        if model not in roles:
            return _error(404, f"model {model!r} is not served here; GET /v1/models lists "
                          f"{', '.join(roles)}", "NotFoundError")  # fmt: skip
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages: a non-empty list is required")
        kinds = _media_kinds(messages)
        if kinds - {roles[model]}:
            return _error(400, f"model {model} takes {roles[model]}s, not {', '.join(kinds)}")
        words = _words(config.answer)
        max_tokens = body.get("max_tokens")
        finish = "stop"
        if isinstance(max_tokens, int) and 0 < max_tokens < len(words):
            words, finish = words[:max_tokens], "length"
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        usage = {"prompt_tokens": config.prompt_tokens, "completion_tokens": len(words),
                 "total_tokens": config.prompt_tokens + len(words)}  # fmt: skip
        if not body.get("stream"):
            async for _ in serve(words):
                pass
            return JSONResponse({
                "id": ident, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant",
                                                     "content": "".join(words)},
                             "logprobs": None, "finish_reason": finish}],
                "usage": usage,
            })  # fmt: skip
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            chunk = {"id": ident, "object": "chat.completion.chunk", "created": created,
                     "model": model, "choices": choices, **extra}  # fmt: skip
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        async def stream() -> AsyncIterator[bytes]:
            async for index in serve(words):
                if index == 0:
                    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""},
                                  "logprobs": None, "finish_reason": None}])  # fmt: skip
                yield event([{"index": 0, "delta": {"content": words[index]}, "logprobs": None,
                              "finish_reason": None}])  # fmt: skip
            yield event([{"index": 0, "delta": {"content": ""}, "logprobs": None,
                          "finish_reason": finish, "stop_reason": None}])  # fmt: skip
            if include_usage:
                yield event([], usage=usage)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def translations(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            texts = body["text"]
            targets = body["target_languages"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "give text and target_languages")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(targets, list) or not targets:
            return _error(400, "target_languages: a non-empty list is required")
        resolved = []
        for code in targets:
            name = code if "_" in str(code) else _ISO.get(str(code).lower())
            if name is None:
                return _error(400, f"unknown language {code!r}")
            resolved.append(name)
        state.translations += 1
        return JSONResponse({
            "object": "translation", "model": TRANSLATION_MODEL,
            "source_language": body.get("source_language", "eng_Latn"),
            "translations": [{"target_language": code, "texts": [f"[{code}] {t}" for t in texts]}
                             for code in resolved],
            "usage": {"sentences": len(texts), "input_tokens": 0, "output_tokens": 0},
            "timing": {"seconds": 0.0},
        })  # fmt: skip

    app = Starlette(routes=[
        Route("/health", health, methods=["GET", "HEAD"]),
        Route("/stats", show_stats),
        Route("/v1/models", models),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/translations", translations, methods=["POST"]),
    ])  # fmt: skip
    app.state.busy = state
    return app


def _server(config: BusyConfig) -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(
        create_app(config), log_level="warning", access_log=False, lifespan="off",
        timeout_keep_alive=60, backlog=4096,
    ))  # fmt: skip


def _bound(port: int, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    return sock


@contextlib.contextmanager
def serve_in_thread(config: BusyConfig, port: int = 0) -> Iterator[str]:
    """One busy server on a thread of this process; yields its base URL."""
    sock = _bound(port)
    server = _server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the busy server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def busy_servers(count: int, config: BusyConfig, timeout_s: float = 60.0) -> Iterator[list[str]]:
    """``count`` busy servers, each its own process (``python -m
    babelcap.benchmarks.busy_server --port 0``); yields their base URLs and stops them after."""
    from babelcap.server.process import die_with_parent, stop_group

    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for _ in range(count):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "babelcap.benchmarks.busy_server", "--port", "0",
                 "--capacity", str(config.capacity), "--latency-s", str(config.latency_s),
                 "--ttft-fraction", str(config.ttft_fraction), "--answer", config.answer],
                stdout=subprocess.PIPE, start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            ))  # fmt: skip
        deadline = time.monotonic() + timeout_s
        for process in processes:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
            line = process.stdout.readline().decode() if ready else ""
            if not line.startswith("http://"):
                raise RuntimeError(f"a busy server did not start (exit {process.poll()})")
            urls.append(line.strip())
        yield urls
    finally:
        for process in processes:
            stop_group(process, name="busy server", grace=5.0)


def stats(url: str) -> dict[str, Any]:
    """``GET /stats`` of a busy server."""
    import httpx

    answer: dict[str, Any] = httpx.get(f"{url}/stats", timeout=10).json()
    return answer


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C; prints the base URL as the first line of stdout."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0: any free port")
    parser.add_argument("--capacity", type=int, default=BusyConfig.capacity,
                        help="requests served at once; the rest wait in a FIFO")  # fmt: skip
    parser.add_argument("--latency-s", type=float, default=BusyConfig.latency_s,
                        help="seconds one served request takes")  # fmt: skip
    parser.add_argument("--ttft-fraction", type=float, default=BusyConfig.ttft_fraction,
                        help="share of the latency before the first token")  # fmt: skip
    parser.add_argument("--answer", default=DEFAULT_ANSWER, help="the fixed answer")
    args = parser.parse_args(argv)
    if args.capacity < 1 or args.latency_s < 0 or not 0 <= args.ttft_fraction <= 1:
        parser.error("--capacity >= 1, --latency-s >= 0, 0 <= --ttft-fraction <= 1")
    config = BusyConfig(capacity=args.capacity, latency_s=args.latency_s,
                        ttft_fraction=args.ttft_fraction, answer=args.answer)  # fmt: skip
    sock = _bound(args.port, args.host)
    server = _server(config)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    sys.stdout.write(f"http://{args.host}:{sock.getsockname()[1]}\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
