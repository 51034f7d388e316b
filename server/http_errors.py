"""Errors as JSON in OpenAI's shape: ``{"error": {"message", "type", "code", "param"}}``."""

from __future__ import annotations

from fastapi.responses import JSONResponse

__all__ = ["openai_error"]


def openai_error(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    *,
    param: str | None = None,
    **headers: str,
) -> JSONResponse:
    """An OpenAI-style error response; ``param`` names the request field at fault; ``headers``
    such as ``Retry-After`` are added as given."""
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": code, "param": param}},
        status_code=status,
        headers=headers or None,
    )
