"""Real local HTTP servers that show faults a real babelcap server cannot be made to show."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time

import numpy as np
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from babelcap.core.artifacts import STAND_IN_COLOURS as COLOURS
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


def _colour(jpeg: bytes) -> str:
    """The stand-in colour most of an image's pixels are nearest to."""
    image = Image.open(io.BytesIO(jpeg)).convert("RGB").resize((16, 16))
    names = list(COLOURS)
    centres = np.array([COLOURS[n] for n in names], dtype=float)
    pixels = np.asarray(image, dtype=float).reshape(-1, 1, 3)
    nearest = ((pixels - centres) ** 2).sum(axis=2).argmin(axis=1)
    return names[int(np.bincount(nearest, minlength=len(names)).argmax())]


def describe_media(body: dict) -> str:
    """What the tiny stand-ins answer about the media in a chat body: its colours."""
    for part in body["messages"][-1]["content"]:
        if part.get("type") == "image_url":
            data = part["image_url"]["url"].split(",", 1)[1]
            return f"The image is mostly {_colour(base64.b64decode(data))}."
        if part.get("type") == "video_url":
            frames = part["video_url"]["url"].split(",")[1:]
            names = [_colour(base64.b64decode(f)) for f in frames]
            names = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
            return f"The video shows {', '.join(names)}."
    return "nothing"


class FakeBabelcap(ThreadedServer):
    """Speaks babelcap's API (models with roles and media hints, streamed chat, translations)
    and can vanish for good after ``die_after`` chat requests. With ``describe`` it answers as
    the tiny stand-ins do (the media's colours); with ``languages`` it refuses other codes."""

    def __init__(
        self, die_after: int | None = None, delay_s: float = 0.0, *, describe: bool = False,
        languages: set[str] | None = None,
    ) -> None:  # fmt: skip
        self.die_after = die_after
        self.delay_s = delay_s
        self.describe = describe
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
            text = describe_media(body) if self.describe else f"answer from {body['model']}"

            async def stream():
                chunk = {"choices": [{"delta": {"content": text}, "finish_reason": "stop"}]}
                yield f"data: {json.dumps(chunk)}\n\n"
                usage = {"prompt_tokens": 10, "completion_tokens": 3}
                yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(stream(), media_type="text/event-stream")

        async def translations(request: Request) -> Response:
            body = await request.json()
            unknown = [c for c in body["target_languages"] if languages and c not in languages]
            if unknown:
                error = {"message": f"unknown language code {unknown[0]!r}", "type": "invalid"}
                return JSONResponse({"error": error}, status_code=400)
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
