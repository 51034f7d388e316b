"""The gateway's check of every request: API key, then request metrics around the app.

The body limit runs just before it (:class:`babelcap.server.asgi.BodyLimit`); ``POST
/v1/chat/completions`` is handed to the chat relay here, past the FastAPI router.
"""

from __future__ import annotations

import hmac
import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from babelcap.server.asgi import read_body, replay
from babelcap.server.gateway.config import GatewayConfig
from babelcap.server.gateway.metrics import Metrics
from babelcap.server.gateway.relay import ChatRelay
from babelcap.server.http_errors import openai_error

__all__ = ["Guard"]


def _libre_api_key(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    key = body.get("api_key") if isinstance(body, dict) else None
    return key if isinstance(key, str) else ""


class Guard:
    """API key and request metrics as plain ASGI middleware.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware copies
    every streamed chunk through an extra memory stream, which measurably slowed SSE relaying.
    """

    def __init__(
        self, app: ASGIApp, config: GatewayConfig, metrics: Metrics, chat: ChatRelay
    ) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics
        self.chat = chat

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.config.api_key and path != "/health":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            given = headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else ""
            if not token and path == "/translate":  # LibreTranslate sends it in the body
                body = await read_body(receive)
                token = _libre_api_key(body)
                receive = replay(body)
            if not hmac.compare_digest(token.encode(), self.config.api_key.encode()):
                refusal = openai_error(
                    401,
                    "missing or wrong API key: send 'Authorization: Bearer KEY'",
                    "authentication_error",
                    "invalid_api_key",
                )
                await refusal(scope, receive, send)
                return
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            if path == "/v1/chat/completions" and scope["method"] == "POST":
                await self.chat(scope, receive, send_and_watch)
            else:
                await self.app(scope, receive, send_and_watch)
        finally:
            self.metrics.in_flight.dec()
            model = scope.get("state", {}).get("model", "")
            self.metrics.requests.labels(path, model, str(status)).inc()
            self.metrics.latency.labels(path, model).observe(time.perf_counter() - started)
