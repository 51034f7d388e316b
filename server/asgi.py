"""Plain-ASGI pieces the gateway and the translation server share: the request body limit and
read deadlines, and reading a body once then handing it on.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware copies every
streamed chunk through an extra memory stream, which measurably slowed SSE relaying.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from babelcap.core import defaults
from babelcap.server.http_errors import openai_error

__all__ = ["BodyLimit", "BodyProblem", "ErrorFor", "body_too_large", "read_body", "replay"]

log = logging.getLogger(__name__)

#: An error response for a request path: ``(path, status, message, kind, code)``.
ErrorFor = Callable[[str, int, str, str, str | None], Response]


def _openai_error_for(
    path: str, status: int, message: str, kind: str, code: str | None
) -> Response:
    return openai_error(status, message, kind, code)


def body_too_large(size: int, limit: int, hint: str) -> str:
    """The 413 message: how big the body was, the limit, and what to do."""
    return f"request body of {size} bytes is over the {limit}-byte limit: {hint}"


class BodyProblem(Exception):
    """The body being read broke a limit: too large (413) or too slow (408)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BodyLimit:
    """Bound every request body, whoever reads it and however it is sent.

    A declared Content-Length over the path's limit is answered 413 before a byte is read; a
    chunked body is counted while it is read and answered 413 the moment it passes the limit
    (the reader never gets more). Reading is also bounded in time: each chunk must come within
    ``idle_timeout_s`` and the whole body within ``read_timeout_s``, else 408. Whatever the app
    makes of such an error (FastAPI turns it into a 400), the answer is this 413 or 408.
    ``limits`` sets a path's own (limit, hint): translation bodies are text, far smaller than
    chat's media.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        hint: str,
        error_for: ErrorFor = _openai_error_for,
        limits: Mapping[str, tuple[int, str]] | None = None,
        idle_timeout_s: float = defaults.BODY_IDLE_TIMEOUT_S,
        read_timeout_s: float = defaults.BODY_READ_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.limit = limit
        self.limits = dict(limits or {})
        self.hint = hint
        self.error_for = error_for
        self.idle_timeout_s = idle_timeout_s
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit, hint = self.limits.get(path, (self.limit, self.hint))
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            message = body_too_large(int(declared), limit, hint)
            await self._refuse(scope, receive, send, BodyProblem(413, "body_too_large", message))
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout_s
        received = 0
        finished = False
        started = False
        broken: BodyProblem | None = None

        async def bounded_receive() -> Message:
            nonlocal received, finished, broken
            if finished:  # the body is read: what is left is waiting for a disconnect
                return await receive()
            wait = min(self.idle_timeout_s, deadline - loop.time())
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    message = await receive()
            except TimeoutError:
                broken = BodyProblem(
                    408, "body_timeout",
                    f"the request body did not arrive in time ({received} bytes read; each "
                    f"part must come within {self.idle_timeout_s:g} s and the whole body "
                    f"within {self.read_timeout_s:g} s): send it at once",
                )  # fmt: skip
                raise broken from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refusal = body_too_large(received, limit, hint)
                    broken = BodyProblem(413, "body_too_large", refusal)
                    raise broken
                finished = not message.get("more_body", False)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if broken is not None:  # whatever the app made of the error, this one answers
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, watched_send)
        except Exception:
            if broken is None:
                raise
        if broken is None:
            return
        if started:  # too late to answer: the connection is closed instead
            log.warning("%s %s: %s", scope["method"], path, broken)
            return
        await self._refuse(scope, receive, send, broken)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, problem: BodyProblem
    ) -> None:
        error = self.error_for(
            scope["path"], problem.status, str(problem), "invalid_request_error", problem.code
        )
        # The rest of the body is not read: the connection is closed after the answer.
        error.headers["connection"] = "close"
        await error(scope, receive, send)


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
