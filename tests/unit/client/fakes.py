"""Real local HTTP servers that show faults a real babelcap server cannot be made to show."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from babelcap.server.process import free_port


class ThreadedServer:
    """A Starlette app served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, routes: list[Route]) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            Starlette(routes=routes), host="127.0.0.1", port=self.port, log_level="critical"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop at once (callable from a request handler: does not wait for the thread)."""
        self.server.should_exit = True
        self.server.force_exit = True

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.thread.join()


class FakeBabelcap(ThreadedServer):
    """Speaks babelcap's API (models with roles and media hints, streamed chat, translations)
    and can vanish for good after ``die_after`` chat requests."""

    def __init__(self, die_after: int | None = None, delay_s: float = 0.0) -> None:
        self.die_after = die_after
        self.delay_s = delay_s
        self.chats = 0

        async def models(_: Request) -> Response:
            hints = {"tile_size": 56, "max_tiles": 4, "frames": 4, "frame_size": 64}
            data = [
                {"id": "img", "babelcap": {"role": "image", "media": hints}},
                {"id": "vid", "babelcap": {"role": "video", "media": hints}},
            ]
            return JSONResponse({"object": "list", "data": data})

        async def chat(request: Request) -> Response:
            body = await request.json()
            self.chats += 1
            if self.die_after is not None and self.chats >= self.die_after:
                threading.Thread(target=self.stop, daemon=True).start()
            await asyncio.sleep(self.delay_s)
            text = f"answer from {body['model']}"

            async def stream():
                chunk = {"choices": [{"delta": {"content": text}, "finish_reason": "stop"}]}
                yield f"data: {json.dumps(chunk)}\n\n"
                usage = {"prompt_tokens": 10, "completion_tokens": 3}
                yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(stream(), media_type="text/event-stream")

        async def translations(request: Request) -> Response:
            body = await request.json()
            texts = body["text"] if isinstance(body["text"], list) else [body["text"]]
            return JSONResponse({"translations": [
                {"target_language": code, "texts": [f"[{code}] {t}" for t in texts]}
                for code in body["target_languages"]
            ]})  # fmt: skip

        super().__init__([
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/translations", translations, methods=["POST"]),
        ])  # fmt: skip
