"""What ``/openapi.json`` says of the gateway: every route with each status it can answer, the
OpenAI error shape, the chat request babelcap relays (:class:`ChatRequest`, without the fields it
refuses), and the bearer key where one is required."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from babelcap.server.gateway.validation import REFUSED_UNLESS_ALLOWED, ChatRequest

__all__ = ["CHAT_BODY", "PROMETHEUS_TEXT", "ErrorAnswer", "HealthAnswer", "document", "errors"]


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorAnswer(BaseModel):
    """OpenAI's error shape, which every gateway error has."""

    error: ErrorDetail


class HealthAnswer(BaseModel):
    """``GET /health``: 200 when every backend is ready, else 503 with the same body."""

    status: str
    backends: dict[str, str]
    details: dict[str, dict[str, Any]]
    translation: str | None = None


_WHY = {
    400: "the request is malformed or refused; error.param names the field",
    401: "missing or wrong API key",
    404: "no such model or route",
    408: "the request body did not arrive in time",
    413: "the request body is over the limit",
    500: "an internal error; the message carries a request id for the log",
    503: "the model is down or restarting (Retry-After) or failed for good (no Retry-After)",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for these error statuses, plus the ones every route can answer
    (401, 408, 413, 500)."""
    every = sorted({*statuses, 401, 408, 413, 500})
    return {status: {"model": ErrorAnswer, "description": _WHY[status]} for status in every}


#: A Prometheus scrape's 200.
PROMETHEUS_TEXT: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text format", "content": {"text/plain": {}}}
}

#: The chat route's request body, as ``openapi_extra`` (the relay parses it, not FastAPI).
CHAT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}},
    }
}


def document(app: FastAPI, *, api_key: bool) -> None:
    """Have ``app.openapi()`` describe the chat body and, with ``api_key``, the bearer key on
    every route but ``/health``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        chat = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(chat.pop("$defs", {}))
        for refused in REFUSED_UNLESS_ALLOWED:  # refused unless a profile allows them
            chat["properties"].pop(refused, None)
        components["ChatRequest"] = chat
        if api_key:
            # LibreTranslate's routes also take the key as api_key in the query or the body (as
            # its clients send it), which OpenAPI's security schemes cannot say.
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            for path, operations in schema["paths"].items():
                for operation in operations.values():
                    if path == "/health":
                        operation["responses"].pop("401", None)
                    else:
                        operation["security"] = [{"bearer": []}]
        else:
            for operations in schema["paths"].values():
                for operation in operations.values():
                    operation["responses"].pop("401", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
