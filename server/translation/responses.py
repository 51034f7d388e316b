"""What the translation routes share: error bodies in two shapes, the statuses they document,
and :func:`answer`, which runs a route's work so that a client that leaves cancels it.

``/v1/translations`` answers errors in OpenAI's shape, LibreTranslate's routes as
``{"error": "..."}`` (what its clients parse). Either way: 400 for a request the server will not
take (bad code, field or body), 413 (LibreTranslate: 400, as it answers its own character limit)
for one over a limit, naming it and how to raise it, and 500 with a request id, logged, for a
failure of the server's own (an empty translation included).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from babelcap.core.errors import TranslationError
from babelcap.server.http_errors import openai_error
from babelcap.server.translation.languages import UnknownLanguageError
from babelcap.server.translation.limits import (
    EmptyTranslationError,
    EngineFailure,
    LimitExceededError,
)

__all__ = ["LIBRE_PATHS", "answer", "documented", "error_response"]

log = logging.getLogger(__name__)

#: LibreTranslate's routes: errors as ``{"error": "..."}``, the API key also in the body.
LIBRE_PATHS = ("/translate", "/detect", "/languages", "/frontend/settings")
#: What nginx logs for a request whose client closed the connection; nobody receives it.
CLIENT_CLOSED = 499


class OpenAIErrorDetail(BaseModel):
    """The error object of an OpenAI-shaped error."""

    message: str
    type: str
    code: str | None = None
    param: str | None = None


class OpenAIError(BaseModel):
    """An error on ``/v1/translations``."""

    error: OpenAIErrorDetail


class LibreError(BaseModel):
    """An error on LibreTranslate's routes, as LibreTranslate answers it."""

    error: str


_MEANING = {
    400: "the request is refused: unknown language code or field, bad body or text",
    401: "missing or wrong API key (only when the server has one): send 'Authorization: "
    "Bearer KEY'",
    403: "missing or wrong API key (only when the server has one): send api_key in the body "
    "or query, or 'Authorization: Bearer KEY'",
    408: "the request body did not arrive in time",
    413: "the body, its characters or its sentences x target languages are over the server's "
    "limit (the message names it and the flag that raises it)",
    422: "the model returned an empty translation for a text with letters (it cannot translate "
    "it; retrying will not help); the message names the text and has a request id",
    500: "the server failed (CTranslate2 failed); the message has a request id for the server log",
}


def documented(statuses: list[int], *, libre: bool) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each error status it answers, with its body's model."""
    model = LibreError if libre else OpenAIError
    meaning = dict(_MEANING)
    if libre:
        meaning[400] += "; also a text over the character or sentence limit"
        meaning[401] = "no API key (only when the server has one): send api_key in the body or "
        meaning[401] += "query, or 'Authorization: Bearer KEY'"
        meaning[403] = "a wrong API key"
        meaning[413] = "the body is over the server's byte limit"
    return {status: {"model": model, "description": meaning[status]} for status in statuses}


def error_response(
    path: str, status: int, message: str, kind: str, code: str | None, **headers: str
) -> Response:
    """An error for ``path`` in its API's shape (``server.asgi.ErrorFor`` for BodyLimit)."""
    if path in LIBRE_PATHS:
        return JSONResponse({"error": message}, status_code=status, headers=headers or None)
    return openai_error(status, message, kind, code, **headers)


class ClientDisconnected(Exception):
    """The client closed the connection before its answer was ready."""


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (the body is read by then: only a disconnect is left)."""
    while (await request.receive())["type"] != "http.disconnect":
        continue


async def _unless_disconnected(request: Request, work: Awaitable[Response]) -> Response:
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():  # the client left, or this request was cancelled
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise ClientDisconnected
    return task.result()


async def answer(
    request: Request, work: Callable[[], Awaitable[Response]], *, libre: bool
) -> Response:
    """Run ``work`` (the body is already read) until it answers or the client leaves, which
    cancels it; turn babelcap's errors into JSON errors in the route's shape."""
    path = request.url.path
    try:
        return await _unless_disconnected(request, work())
    except ClientDisconnected:
        log.info("%s: the client left; its translation was cancelled", path)
        return Response(status_code=CLIENT_CLOSED)
    except LimitExceededError as error:
        status = 400 if libre else 413
        return error_response(path, status, str(error), "invalid_request_error", error.code)
    except EmptyTranslationError as error:
        # The model, not the request, failed; but it fails the same way for the same text, so
        # a 4xx that clients do not retry (422), logged with a request id as a 500 would be.
        request_id = uuid.uuid4().hex
        log.warning("%s request %s: %s", path, request_id, error)
        message = f"{error} (request id {request_id})"
        return error_response(path, 422, message, "invalid_request_error", "empty_translation",
                              **{"x-request-id": request_id})  # fmt: skip
    except EngineFailure as error:
        return _server_failure(path, error)
    except UnknownLanguageError as error:
        return error_response(path, 400, str(error), "invalid_request_error", "unknown_language")
    except TranslationError as error:
        return error_response(path, 400, str(error), "invalid_request_error", "invalid_request")
    except Exception as error:
        return _server_failure(path, error)


def _server_failure(path: str, error: Exception) -> Response:
    request_id = uuid.uuid4().hex
    log.error("%s request %s failed: %s", path, request_id, error, exc_info=error)
    known = isinstance(error, TranslationError)
    message = (
        f"{error} (request id {request_id})"
        if known
        else f"internal error (request id {request_id}); the server log has the details"
    )
    return error_response(
        path, 500, message, "server_error", "server_error", **{"x-request-id": request_id}
    )
