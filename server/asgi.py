"""Plain-ASGI pieces the gateway and the translation server share: the request body limit, and
reading a body once then handing it on.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware copies every
streamed chunk through an extra memory stream, which measurably slowed SSE relaying.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from babelcap.server.http_errors import openai_error

__all__ = ["BodyLimit", "ErrorFor", "body_too_large", "read_body", "replay"]

#: An error response for a request path: ``(path, status, message, kind, code)``.
ErrorFor = Callable[[str, int, str, str, str | None], Response]


def _openai_error_for(
    path: str, status: int, message: str, kind: str, code: str | None
) -> Response:
    return openai_error(status, message, kind, code)


def body_too_large(size: int, limit: int, hint: str) -> str:
    """The 413 message: how big the body was, the limit, and what to do."""
    return f"request body of {size} bytes is over the {limit}-byte limit: {hint}"


class BodyLimit:
    """Answer 413 to a request whose Content-Length is over ``limit``, before reading its body.

    A chunked body has no Content-Length: an app that reads one whole checks its size itself
    (the gateway's chat relay does, with :func:`body_too_large`).
    """

    def __init__(
        self, app: ASGIApp, *, limit: int, hint: str, error_for: ErrorFor = _openai_error_for
    ) -> None:
        self.app = app
        self.limit = limit
        self.hint = hint
        self.error_for = error_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.limit:
                message = body_too_large(int(declared), self.limit, self.hint)
                refusal = self.error_for(scope["path"], 413, message, "invalid_request_error",
                                         "body_too_large")  # fmt: skip
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def read_body(receive: Receive) -> bytes:
    """The whole request body."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def replay(body: bytes) -> Receive:
    """A ``receive`` that hands an app a body already read, then a disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
