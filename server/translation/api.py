"""HTTP routes for translation: babelcap's ``/v1/translations``, and LibreTranslate's
``/translate``, ``/detect``, ``/languages`` and ``/frontend/settings`` (:mod:`.libre`), so
existing LibreTranslate clients work unchanged.

Mount :func:`router` in any FastAPI app (the gateway does); :func:`create_app` runs it alone.
Every request is bounded (body bytes by ``server/asgi.py``; characters and sentences x target
languages by :class:`~.limits.TranslationLimits`), and a client that disconnects cancels its
translation: sentences not yet sent to the model are dropped.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from babelcap.core import defaults
from babelcap.core.errors import TranslationError
from babelcap.core.version import __version__
from babelcap.server.asgi import BodyLimit
from babelcap.server.translation.detect import LanguageDetector
from babelcap.server.translation.engine import TranslationEngine
from babelcap.server.translation.languages import UnknownLanguageError
from babelcap.server.translation.libre import libre_router
from babelcap.server.translation.limits import TranslationLimits
from babelcap.server.translation.responses import answer, documented, error_response

__all__ = ["create_app", "install_error_handlers", "router"]


class TranslationRequest(BaseModel):
    """``POST /v1/translations``."""

    model_config = ConfigDict(extra="forbid")

    text: str | list[str] = Field(description="one text or a list; outputs keep this order")
    source_language: str = Field("eng_Latn", description="FLORES-200 or ISO 639 code")
    target_languages: list[str] = Field(min_length=1, description="FLORES-200 or ISO 639 codes")
    model: str | None = Field(None, description="accepted for OpenAI-style clients; ignored")


class _Outputs(BaseModel):
    target_language: str
    texts: list[str]


class TranslationResponse(BaseModel):
    """``POST /v1/translations``'s answer: per target language, one output per input text."""

    object: str = "translation"
    model: str
    source_language: str
    translations: list[_Outputs]
    usage: dict[str, int] = Field(description="sentences, input_tokens, output_tokens")
    timing: dict[str, float] = Field(description="seconds")


def _validated(raw: bytes, content_type: str) -> TranslationRequest:
    media = content_type.split(";")[0].strip().lower()
    if media and not media.endswith(("/json", "+json")):
        raise TranslationError(
            f"invalid request: a body of type {media!r} is not read: send JSON "
            "(Content-Type: application/json)"
        )
    try:
        return TranslationRequest.model_validate_json(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()
        )
        raise TranslationError(f"invalid request: {problems}") from None


def router(
    engine: TranslationEngine,
    model_id: str = defaults.TRANSLATION_MODEL_ID,
    *,
    limits: TranslationLimits | None = None,
    detector: LanguageDetector | None = None,
    api_key_required: bool = False,
) -> APIRouter:
    """The translation routes, bound to ``engine``. ``limits`` bound each request (defaults
    from :mod:`babelcap.core.defaults`); ``api_key_required`` is what ``/frontend/settings``
    tells LibreTranslate's web frontend."""
    limits = limits or TranslationLimits()
    routes = APIRouter()

    @routes.post(
        "/v1/translations",
        response_model=None,
        responses={200: {"model": TranslationResponse},
                   **documented([400, 401, 408, 413, 422, 500], libre=False)},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": TranslationRequest.model_json_schema()}}}},
    )  # fmt: skip
    async def translations(request: Request) -> Response:
        """Translate each text into each target language, sentence by sentence."""
        raw = await request.body()  # read here: a body over the limit is the body limit's 413

        async def work() -> Response:
            body = _validated(raw, request.headers.get("content-type", ""))
            texts = [body.text] if isinstance(body.text, str) else body.text
            result = await engine.translate(
                texts, body.target_languages, body.source_language, limits
            )
            return JSONResponse(
                {
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
            )

        return await answer(request, work, libre=False)

    detector = detector or LanguageDetector(engine.languages)
    routes.include_router(libre_router(engine, detector, limits, api_key_required=api_key_required))
    return routes


def install_error_handlers(app: FastAPI) -> None:
    """JSON errors in each route's shape for errors raised outside the translation routes'
    own handling (FastAPI's request validation of other routes, stray TranslationErrors)."""

    @app.exception_handler(UnknownLanguageError)
    async def unknown_language(request: Request, error: UnknownLanguageError) -> Response:
        path = request.url.path
        return error_response(path, 400, str(error), "invalid_request_error", "unknown_language")

    @app.exception_handler(TranslationError)
    async def translation_error(request: Request, error: TranslationError) -> Response:
        path = request.url.path
        return error_response(path, 400, str(error), "invalid_request_error", "invalid_request")

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
            for e in error.errors()
        )
        message = f"invalid request: {problems}"
        return error_response(request.url.path, 400, message, "invalid_request_error", None)


def create_app(
    engine: TranslationEngine,
    *,
    max_body_bytes: int = defaults.TRANSLATION_MAX_BODY_BYTES,
    model_id: str = defaults.TRANSLATION_MODEL_ID,
    limits: TranslationLimits | None = None,
    detector: LanguageDetector | None = None,
) -> FastAPI:
    """A stand-alone translation server (the gateway mounts :func:`router` instead)."""
    app = FastAPI(title="babelcap translation", version=__version__)
    app.add_middleware(
        BodyLimit,
        limit=max_body_bytes,
        hint="send less text per request, or raise --max-body-bytes",
        error_for=error_response,
    )
    install_error_handlers(app)
    app.include_router(router(engine, model_id, limits=limits, detector=detector))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    app.router.on_shutdown.append(engine.aclose)
    return app
