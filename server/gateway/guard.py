"""The gateway's check of every request: API key, then request metrics around the app.

The body limit runs just before it (:class:`babelcap.server.asgi.BodyLimit`); ``POST
/v1/chat/completions`` is handed to the chat relay here, past the FastAPI router.
"""

from __future__ import annotations

import hmac
import time

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from babelcap.server.asgi import read_body
from babelcap.server.gateway.config import GatewayConfig
from babelcap.server.gateway.metrics import Metrics, route_label
from babelcap.server.gateway.relay import ChatRelay
from babelcap.server.http_errors import openai_error
from babelcap.server.translation.libre import api_key_from, replay_then
from babelcap.server.translation.responses import LIBRE_PATHS

__all__ = ["Guard"]


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
            libre = path in LIBRE_PATHS
            if not token and libre:
                # LibreTranslate's clients send the key as api_key: in a JSON or form body
                # (libretranslatepy: form data, even on GET /languages) or in the query.
                body = await read_body(receive)  # bounded: BodyLimit runs first
                token = await api_key_from(scope, body)
                receive = replay_then(body, receive)  # the route still sees a disconnect
            if not hmac.compare_digest(token.encode(), self.config.api_key.encode()):
                # LibreTranslate's shape on its routes: 401 without a key, 403 for a wrong one
                # (LibreTranslate's own answer to a wrong key).
                refusal = (
                    JSONResponse(
                        {"error": ("Invalid" if token else "Missing") + " API key: send it as "
                         "api_key (in the body or the query) or as 'Authorization: Bearer KEY'"},
                        status_code=403 if token else 401,
                    )
                    if libre
                    else openai_error(
                        401,
                        "missing or wrong API key: send 'Authorization: Bearer KEY'",
                        "authentication_error",
                        "invalid_api_key",
                    )
                )  # fmt: skip
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
            route = route_label(scope)
            self.metrics.requests.labels(route, model, str(status)).inc()
            self.metrics.latency.labels(route, model).observe(time.perf_counter() - started)
