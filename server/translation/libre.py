"""LibreTranslate's API, so its clients (libretranslatepy, the web frontend, editor plugins)
work unchanged: ``POST /translate``, ``POST /detect``, ``GET /languages`` and
``GET /frontend/settings``.

As LibreTranslate does, bodies are JSON, ``application/x-www-form-urlencoded`` or
``multipart/form-data`` (libretranslatepy sends form data); for the latter two, query
parameters count too. ``api_key`` and ``secret`` may be in the body (the gateway's guard reads
the key from there, :func:`api_key_from`). Codes are ISO 639-1 where one exists (``ar``,
``zh-Hans``), else FLORES-200; FLORES-200 and ISO 639-3 codes are accepted everywhere.
Errors are ``{"error": "..."}``: 400 for a bad parameter or a text over a limit, 401 for a
missing key and 403 for a wrong one (gateway), 500 for a failure of the server's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.types import Message, Receive, Scope

from babelcap.core.errors import TranslationError
from babelcap.server.asgi import replay
from babelcap.server.translation.detect import Detection, LanguageDetector
from babelcap.server.translation.engine import TranslationEngine
from babelcap.server.translation.languages import LanguageCatalog
from babelcap.server.translation.limits import TranslationLimits
from babelcap.server.translation.responses import answer, documented

__all__ = ["api_key_from", "libre_router"]

#: LibreTranslate's web frontend waits this long (ms) after typing before it translates.
_FRONTEND_TIMEOUT_MS = 500


class LibreTranslateRequest(BaseModel):
    """``POST /translate``, as JSON or form fields."""

    model_config = ConfigDict(extra="forbid")

    q: str | list[str] = Field(description="text, or texts (a list; in a form, repeat q)")
    source: str = Field("auto", description="source language code, or auto to detect it")
    target: str = Field(description="target language code (ISO 639-1 such as ar, or FLORES-200)")
    format: str = Field("text", description="text (html is not supported)")
    alternatives: int = Field(0, ge=0, description="accepted; no alternative translations are made")
    api_key: str | None = Field(None, description="API key (when the server has one)")
    secret: str | None = Field(None, description="accepted and ignored")


class LibreDetectRequest(BaseModel):
    """``POST /detect``, as JSON or form fields."""

    model_config = ConfigDict(extra="forbid")

    q: str | list[str] = Field(description="text to identify")
    api_key: str | None = Field(None, description="API key (when the server has one)")
    secret: str | None = Field(None, description="accepted and ignored")


class DetectedLanguage(BaseModel):
    """One candidate language, confidence 0..100."""

    confidence: float
    language: str


class LibreTranslation(BaseModel):
    """``/translate``'s answer; ``detectedLanguage`` only for ``source: auto`` (a list for a
    list of texts), ``alternatives`` only when asked for (always empty here)."""

    translatedText: str | list[str]
    detectedLanguage: DetectedLanguage | list[DetectedLanguage] | None = None
    alternatives: list[str] | list[list[str]] | None = None


class LibreLanguage(BaseModel):
    """One entry of ``/languages``."""

    code: str
    name: str
    targets: list[str]


class FrontendSettings(BaseModel):
    """``/frontend/settings``: what LibreTranslate's web frontend reads first."""

    model_config = ConfigDict(extra="allow")

    charLimit: int
    frontendTimeout: int
    apiKeys: bool
    keyRequired: bool
    suggestions: bool
    filesTranslation: bool
    supportedFilesFormat: list[str]
    language: dict[str, dict[str, str]]


def _form_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    content = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")
    return {"requestBody": {"required": True, "content": {c: {"schema": schema} for c in content}}}


async def body_fields(request: Request) -> dict[str, Any]:
    """The request's parameters: a JSON object, or form fields (urlencoded or multipart) over
    the query's. A repeated ``q`` is a list; other repeated fields keep their first value."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if media.endswith(("/json", "+json")) or (not media and raw.lstrip()[:1] == b"{"):
        try:
            parsed = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TranslationError(f"Invalid JSON format: {error}") from None
        if not isinstance(parsed, dict):
            raise TranslationError('Invalid JSON format: send an object, e.g. {"q": "Hi"}')
        return cast(dict[str, Any], parsed)
    pairs = urllib.parse.parse_qsl(request.url.query, keep_blank_values=True)
    if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            async with request.form(max_files=0) as form:
                pairs += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        except (MultiPartException, HTTPException) as error:
            detail = getattr(error, "message", None) or getattr(error, "detail", error)
            raise TranslationError(f"Invalid request: the form body is broken ({detail})") from None
    elif raw.strip():
        raise TranslationError(
            f"Invalid request: a body of type {media or 'unknown'!r} is not read: send JSON "
            "(application/json) or form data"
        )
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key == "q" and key in fields:
            fields[key] = [*([fields[key]] if isinstance(fields[key], str) else fields[key]), value]
        else:
            fields.setdefault(key, value)
    return fields


def _parse(model: type[Any], fields: dict[str, Any], path: str) -> Any:
    if fields.get("q") in ("", [], None):
        raise TranslationError("Invalid request: missing q parameter")
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "body"
        if first["type"] == "missing":
            raise TranslationError(f"Invalid request: missing {name} parameter") from None
        if first["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            raise TranslationError(
                f"Invalid request: unknown parameter {name!r} ({path} takes {known})"
            ) from None
        raise TranslationError(f"Invalid request: {name}: {first['msg']}") from None


async def api_key_from(scope: Scope, body: bytes) -> str:
    """The ``api_key`` a LibreTranslate client sent in the body (JSON or form) or the query, or
    ""; for the gateway's guard, which has read the body itself."""
    request = Request(scope, replay(body))
    with contextlib.suppress(TranslationError):
        key = (await body_fields(request)).get("api_key")
        return key if isinstance(key, str) else ""
    return ""


def replay_then(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over a body already read, then waits on the real one (so a
    route still learns when its client disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _listing(catalog: LanguageCatalog) -> list[dict[str, Any]]:
    codes = [catalog.public_code(code) for code in catalog.codes]
    return [
        {"code": public, "name": catalog.name(code), "targets": [c for c in codes if c != public]}
        for code, public in zip(catalog.codes, codes, strict=True)
    ]


def _detected(detection: Detection, engine: TranslationEngine) -> dict[str, Any]:
    language = engine.languages.public_code(detection.language)
    return {"confidence": detection.confidence, "language": language}


def libre_router(
    engine: TranslationEngine,
    detector: LanguageDetector,
    limits: TranslationLimits,
    *,
    api_key_required: bool = False,
) -> APIRouter:
    """LibreTranslate's routes, bound to ``engine``."""
    routes = APIRouter(tags=["LibreTranslate"])
    catalog = engine.languages
    listing: list[dict[str, Any]] = []

    @routes.post(
        "/translate", response_model=None, openapi_extra=_form_body(LibreTranslateRequest),
        responses={200: {"model": LibreTranslation},
                   **documented([400, 401, 403, 408, 413, 422, 500], libre=True)},
    )  # fmt: skip
    async def translate(request: Request) -> Response:
        """Translate ``q`` (a text or a list) from ``source`` (or ``auto``) into ``target``."""
        await request.body()  # read here: a body over the limit is the body limit's 413

        async def work() -> Response:
            fields = await body_fields(request)
            body: LibreTranslateRequest = _parse(LibreTranslateRequest, fields, "/translate")
            if body.format != "text":
                raise TranslationError(
                    f"{body.format} format is not supported: send format=text (HTML is not "
                    "parsed, its tags would be translated as words)"
                )
            texts = [body.q] if isinstance(body.q, str) else body.q
            source, detected = body.source, None
            if source == "auto":
                best = (await detector.detect("\n".join(texts), count=1))[0]
                source, detected = best.language, _detected(best, engine)
            result = await engine.translate(texts, [body.target], source, limits)
            outputs = next(iter(result.texts.values()))
            reply: dict[str, Any] = {
                "translatedText": outputs[0] if isinstance(body.q, str) else outputs
            }
            if detected is not None:
                reply["detectedLanguage"] = (
                    detected if isinstance(body.q, str) else [detected] * len(texts)
                )
            if body.alternatives:
                reply["alternatives"] = [] if isinstance(body.q, str) else [[] for _ in texts]
            return JSONResponse(reply)

        return await answer(request, work, libre=True)

    @routes.post(
        "/detect", response_model=None, openapi_extra=_form_body(LibreDetectRequest),
        responses={200: {"model": list[DetectedLanguage]},
                   **documented([400, 401, 403, 408, 413, 500], libre=True)},
    )  # fmt: skip
    async def detect(request: Request) -> Response:
        """The three likeliest languages of ``q``, confidence 0..100, best first (judged on
        the first 10,000 characters)."""
        await request.body()

        async def work() -> Response:
            fields = await body_fields(request)
            body: LibreDetectRequest = _parse(LibreDetectRequest, fields, "/detect")
            text = body.q if isinstance(body.q, str) else "\n".join(body.q)
            found = await detector.detect(text)
            return JSONResponse([_detected(d, engine) for d in found])

        return await answer(request, work, libre=True)

    @routes.get(
        "/languages", response_model=list[LibreLanguage],
        responses=documented([401, 403], libre=True),
    )  # fmt: skip
    async def languages() -> list[dict[str, Any]]:
        """Every language, by ISO 639-1 code where one exists, with the codes it translates
        into (all the others)."""
        if not listing:  # names come from langcodes' data: read once, off the event loop
            listing.extend(await asyncio.to_thread(_listing, catalog))
        return listing

    @routes.get(
        "/frontend/settings", response_model=FrontendSettings,
        responses=documented([401, 403], libre=True),
    )  # fmt: skip
    async def frontend_settings() -> dict[str, Any]:
        """What LibreTranslate's web frontend asks first: limits, whether a key is needed."""
        target = "fra_Latn" if "fra_Latn" in catalog.codes else catalog.codes[0]
        name = await asyncio.to_thread(catalog.name, target)
        return {
            "charLimit": limits.max_chars,
            "frontendTimeout": _FRONTEND_TIMEOUT_MS,
            "apiKeys": api_key_required,
            "keyRequired": api_key_required,
            "suggestions": False,
            "filesTranslation": False,
            "supportedFilesFormat": [],
            "language": {
                "source": {"code": "auto", "name": "Auto Detect"},
                "target": {"code": catalog.public_code(target), "name": name},
            },
        }

    return routes
