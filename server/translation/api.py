"""HTTP routes for translation: babelcap's ``/v1/translations`` and LibreTranslate's
``/translate`` and ``/languages``, so existing LibreTranslate clients work unchanged.

Mount :func:`router` in any FastAPI app (the gateway does); :func:`create_app` runs it alone.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from babelcap.core import defaults
from babelcap.core.errors import TranslationError
from babelcap.core.version import __version__
from babelcap.server.asgi import BodyLimit
from babelcap.server.http_errors import openai_error
from babelcap.server.translation.engine import TranslationEngine
from babelcap.server.translation.languages import UnknownLanguageError

__all__ = ["create_app", "router"]

#: LibreTranslate routes answer errors as ``{"error": "..."}``; the /v1 routes in OpenAI's shape.
_LIBRE_PATHS = ("/translate", "/languages")


class TranslationRequest(BaseModel):
    """``POST /v1/translations``."""

    model_config = ConfigDict(extra="forbid")

    text: str | list[str] = Field(description="one text or a list; outputs keep this order")
    source_language: str = Field("eng_Latn", description="FLORES-200 or ISO 639 code")
    target_languages: list[str] = Field(min_length=1, description="FLORES-200 or ISO 639 codes")
    model: str | None = Field(None, description="accepted for OpenAI-style clients; ignored")


class LibreRequest(BaseModel):
    """``POST /translate`` in LibreTranslate's shape."""

    model_config = ConfigDict(extra="ignore")

    q: str | list[str]
    source: str = "auto"
    target: str
    format: str = "text"
    api_key: str | None = None


def _error(path: str, status: int, message: str, kind: str, code: str | None) -> Response:
    if path in _LIBRE_PATHS:
        return JSONResponse({"error": message}, status_code=status)
    return openai_error(status, message, kind, code)


def router(engine: TranslationEngine, model_id: str = defaults.TRANSLATION_MODEL_ID) -> APIRouter:
    """The translation routes, bound to ``engine``."""
    routes = APIRouter()

    @routes.post("/v1/translations")
    async def translations(body: TranslationRequest) -> dict[str, Any]:
        texts = [body.text] if isinstance(body.text, str) else body.text
        result = await engine.translate(texts, body.target_languages, body.source_language)
        return {
            "object": "translation",
            "model": model_id,
            "source_language": engine.languages.resolve(body.source_language),
            "translations": [
                {"target_language": target, "texts": outputs}
                for target, outputs in result.texts.items()
            ],
            "usage": {
                "sentences": result.sentences,
                "input_tokens": result.input_tokens,
                "output_tokens": result.output_tokens,
            },
            "timing": {"seconds": round(result.seconds, 4)},
        }

    @routes.post("/translate")
    async def translate(body: LibreRequest) -> dict[str, Any]:
        if body.format not in ("text", "html"):
            raise TranslationError(f"format {body.format!r} is not supported: use 'text'")
        # Captions are English: "auto" means English here (no language detection is done).
        source = "eng_Latn" if body.source == "auto" else body.source
        texts = [body.q] if isinstance(body.q, str) else body.q
        result = await engine.translate(texts, [body.target], source)
        outputs = next(iter(result.texts.values()))
        answer: dict[str, Any] = {
            "translatedText": outputs[0] if isinstance(body.q, str) else outputs
        }
        if body.source == "auto":
            answer["detectedLanguage"] = {"confidence": 0.0, "language": "en"}
        return answer

    @routes.get("/languages")
    async def languages() -> list[dict[str, Any]]:
        codes = engine.languages.codes
        return [{"code": code, "name": _name(code), "targets": codes} for code in codes]

    return routes


@functools.lru_cache(maxsize=512)
def _name(code: str) -> str:
    import langcodes

    try:
        script = langcodes.Language.get(code[:3]).display_name()
    except (LookupError, ValueError, ImportError):
        return code
    return f"{script} ({code[4:]})"


def install_error_handlers(app: FastAPI) -> None:
    """JSON errors with the right status: 400 for bad codes, bodies and texts."""

    @app.exception_handler(UnknownLanguageError)
    async def unknown_language(request: Request, error: UnknownLanguageError) -> Response:
        path = request.url.path
        return _error(path, 400, str(error), "invalid_request_error", "unknown_language")

    @app.exception_handler(TranslationError)
    async def translation_error(request: Request, error: TranslationError) -> Response:
        path = request.url.path
        return _error(path, 400, str(error), "invalid_request_error", "translation_error")

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
            for e in error.errors()
        )
        message = f"invalid request: {problems}"
        return _error(request.url.path, 400, message, "invalid_request_error", None)


def create_app(
    engine: TranslationEngine,
    *,
    max_body_bytes: int = defaults.TRANSLATION_MAX_BODY_BYTES,
    model_id: str = defaults.TRANSLATION_MODEL_ID,
) -> FastAPI:
    """A stand-alone translation server (the gateway mounts :func:`router` instead)."""
    app = FastAPI(title="babelcap translation", version=__version__)
    app.add_middleware(
        BodyLimit,
        limit=max_body_bytes,
        hint="send less text per request, or raise --max-body-bytes",
        error_for=_error,
    )
    install_error_handlers(app)
    app.include_router(router(engine, model_id))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.router.on_shutdown.append(engine.aclose)
    return app
