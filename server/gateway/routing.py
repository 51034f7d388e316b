"""The gateway app: its routes (``/health``, ``/metrics``, ``/metrics/backends/{model}``,
``/v1/models``, the translation routes) and the middleware and relay around them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send

from babelcap.core import defaults
from babelcap.core.version import __version__
from babelcap.server.asgi import BodyLimit
from babelcap.server.backends import Backend
from babelcap.server.gateway.config import BODY_LIMIT_HINT, GatewayConfig
from babelcap.server.gateway.guard import Guard
from babelcap.server.gateway.metrics import Metrics, TranslationCollector
from babelcap.server.gateway.openapi import (
    CHAT_BODY,
    PROMETHEUS_TEXT,
    HealthAnswer,
    document,
    errors,
)
from babelcap.server.gateway.relay import ChatRelay
from babelcap.server.http_errors import openai_error
from babelcap.server.translation.api import install_error_handlers
from babelcap.server.translation.api import router as translation_router
from babelcap.server.translation.detect import LanguageDetector
from babelcap.server.translation.responses import error_response

__all__ = ["TRANSLATION_PATHS", "create_gateway"]

TEXT_HINT = "send less text per request, or raise --max-translation-body-bytes"
#: The routes that carry text to translate: their bodies have the translation body limit.
TRANSLATION_PATHS = (
    "/v1/translations",
    "/translate",
    "/detect",
    "/languages",
    "/frontend/settings",
)


def create_gateway(
    backends: list[Backend],
    config: GatewayConfig,
    translation: Any | None = None,
    translation_id: str = defaults.TRANSLATION_MODEL_ID,
    detector: LanguageDetector | None = None,
) -> FastAPI:
    """The gateway app. ``translation`` is a TranslationEngine or None; ``detector`` (loaded at
    start-up by serve) serves ``/detect`` and ``source: auto``, else one is loaded on first use."""
    metrics = Metrics()
    by_name = {backend.name: backend for backend in backends}
    # One shared aiohttp session for every upstream call. Not httpx here: httpcore's pool scans
    # all its connections for every queued request, which cost 6.7 ms of CPU per proxied
    # request at 64 concurrent streams (benchmarks/gateway_overhead.py). Idle connections are
    # closed here before vLLM would close them (BACKEND_KEEP_ALIVE_S).
    sessions: list[aiohttp.ClientSession] = []

    def upstream() -> aiohttp.ClientSession:
        if not sessions:
            sessions.append(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(
                        limit=0, keepalive_timeout=defaults.BACKEND_KEEP_ALIVE_S - 15
                    ),
                    timeout=aiohttp.ClientTimeout(total=config.request_timeout_s, connect=10.0),
                    auto_decompress=False,
                )
            )
        return sessions[0]

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        chat.close()
        for session in sessions:
            await session.close()
        sessions.clear()

    app = FastAPI(title="babelcap gateway", version=__version__, lifespan=lifespan)
    app.state.backends = by_name
    app.state.metrics = metrics

    chat = ChatRelay(by_name, config, metrics, upstream)
    # The last added runs first: the body limit, then the API key and metrics.
    app.add_middleware(Guard, config=config, metrics=metrics, chat=chat)
    app.add_middleware(
        BodyLimit,
        limit=config.max_body_bytes,
        limits=dict.fromkeys(TRANSLATION_PATHS, (config.max_translation_body_bytes, TEXT_HINT)),
        hint=BODY_LIMIT_HINT,
        error_for=error_response,  # LibreTranslate's routes answer in LibreTranslate's shape
    )

    @app.api_route(
        "/health",
        methods=["GET", "HEAD"],
        response_model=HealthAnswer,
        responses={503: {"model": HealthAnswer, "description": "a backend is not ready"}},
    )
    async def health() -> Response:
        states = {name: backend.state for name, backend in by_name.items()}
        ready = all(state == "ready" for state in states.values())
        failed = any(state == "failed" for state in states.values())
        # "details": per backend, its state, the restarts it used and its last error.
        body: dict[str, Any] = {
            "status": "ok" if ready else "failed" if failed else "degraded",
            "backends": states,
            "details": {name: backend.report() for name, backend in by_name.items()},
        }
        if translation is not None:
            body["translation"] = "ready"
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", responses={**PROMETHEUS_TEXT, **errors()})
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/metrics/backends/{model}", responses={**PROMETHEUS_TEXT, **errors(404, 503)})
    async def backend_metrics(model: str) -> Response:
        """The vLLM backend's own Prometheus metrics (KV cache, prefix cache, queue time)."""
        backend = by_name.get(model)
        if backend is None:
            return openai_error(
                404, f"no backend {model!r}; served: {', '.join(by_name)}",
                "invalid_request_error", "model_not_found",
            )  # fmt: skip
        try:
            async with upstream().get(f"{backend.base_url}/metrics") as response:
                text = await response.text()
        except (aiohttp.ClientConnectionError, TimeoutError) as error:
            return openai_error(
                503, f"model {model} did not answer ({type(error).__name__})",
                "service_unavailable", "backend_unavailable",
            )  # fmt: skip
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/chat/completions",
        openapi_extra=CHAT_BODY,
        responses={
            200: {
                "description": "the completion (JSON), or with stream: true a text/event-stream "
                "of chunks",
                "content": {"application/json": {}, "text/event-stream": {}},
            },
            **errors(400, 404, 503),
        },
    )
    async def chat_completions() -> Response:
        """OpenAI's chat completions, relayed to the model's vLLM backend."""
        return _Relayed(chat)

    @app.get("/v1/models", responses=errors())
    async def models() -> dict[str, Any]:
        now = int(time.time())
        data = [
            {
                "id": b.name,
                "object": "model",
                "created": now,
                "owned_by": "babelcap",
                "babelcap": {"role": b.role, "state": b.state, "media": b.media},
            }
            for b in by_name.values()
        ]
        if translation is not None:
            data.append(
                {
                    "id": translation_id,
                    "object": "model",
                    "created": now,
                    "owned_by": "babelcap",
                    "babelcap": {"role": "translation", "state": "ready"},
                }
            )
        return {"object": "list", "data": data}

    if translation is not None:
        metrics.registry.register(TranslationCollector(translation))
        install_error_handlers(app)
        app.include_router(
            translation_router(
                translation,
                translation_id,
                limits=config.translation_limits,
                detector=detector,
                api_key_required=config.api_key is not None,
            )
        )

    document(app, api_key=bool(config.api_key))
    return app


class _Relayed(Response):
    """A response that is the chat relay itself: it reads the request body and answers.

    The guard hands ``POST /v1/chat/completions`` to the relay before the router (less work per
    request); this route documents it in OpenAPI, answers 405 to other methods, and relays
    anything that reaches it the same way."""

    def __init__(self, relay: ChatRelay) -> None:
        super().__init__()
        self.relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.relay(scope, receive, send)
