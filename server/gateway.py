"""The gateway: one OpenAI-compatible base URL in front of the vLLM backends and the translator.

``/v1/chat/completions`` is routed by ``model`` to the vLLM process serving it, streaming (SSE)
passed through chunk by chunk; ``/v1/models`` lists every served model; the translation routes
are mounted from :mod:`server.translation.api`; ``/health`` reports each backend; ``/metrics`` is
Prometheus. An optional API key guards everything but ``/health``; bodies are size-limited; media
URLs that are not ``data:`` URLs are refused unless the profile allows their host.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import aiohttp
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from babelcap.server.http_errors import openai_error
from babelcap.server.translation.api import install_error_handlers
from babelcap.server.translation.api import router as translation_router
from babelcap.server.vllm_process import BACKEND_KEEP_ALIVE_S

__all__ = ["Backend", "GatewayConfig", "create_gateway"]


class Backend:
    """What the gateway knows of one vLLM backend: its model id, base URL and state."""

    def __init__(
        self, name: str, role: str, base_url: str, media: dict[str, int] | None = None
    ) -> None:
        self.name = name
        self.role = role
        self.media = media or {}
        self.base_url = base_url.rstrip("/")
        self.state = "starting"  # starting | ready | restarting | failed


class GatewayConfig:
    """Settings the gateway enforces."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        max_body_bytes: int = 64 * 2**20,
        allowed_media_domains: list[str] | None = None,
        request_timeout_s: float = 600.0,
    ) -> None:
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.allowed_media_domains = allowed_media_domains or []
        self.request_timeout_s = request_timeout_s


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "babelcap_requests_total",
            "Requests by route, model and status",
            ["route", "model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "babelcap_request_seconds",
            "Request latency by route and model",
            ["route", "model"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "babelcap_requests_in_flight", "Requests being served", registry=self.registry
        )
        self.tokens = Counter(
            "babelcap_tokens_total",
            "Tokens by model and kind (prompt, completion)",
            ["model", "kind"],
            registry=self.registry,
        )
        self.restarts = Counter(
            "babelcap_backend_restarts_total", "Backend restarts", ["model"], registry=self.registry
        )


def _libre_api_key(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    key = body.get("api_key") if isinstance(body, dict) else None
    return key if isinstance(key, str) else ""


def _remote_media(body: dict[str, Any]) -> list[str]:
    """Every media URL in a chat request that is not a data: URL."""
    urls = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict):
                continue
            for key in ("image_url", "video_url", "audio_url"):
                value = part.get(key)
                url = value.get("url") if isinstance(value, dict) else value
                if isinstance(url, str) and not url.startswith("data:"):
                    urls.append(url)
    return urls


class _Guard:
    """API key, body limit and request metrics as plain ASGI middleware.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware copies
    every streamed chunk through an extra memory stream, which measurably slowed SSE relaying.
    """

    def __init__(
        self, app: ASGIApp, config: GatewayConfig, metrics: _Metrics, chat: _ChatRelay
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
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.config.max_body_bytes:
            limit = self.config.max_body_bytes
            await openai_error(413, f"request body over {limit} bytes", "invalid_request_error",
                         "body_too_large")(scope, receive, send)  # fmt: skip
            return
        if self.config.api_key and path != "/health":
            given = headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else ""
            if not token and path == "/translate":  # LibreTranslate sends it in the body
                body = await _read_body(receive)
                token = _libre_api_key(body)
                receive = _replay(body)
            if not hmac.compare_digest(token.encode(), self.config.api_key.encode()):
                refusal = openai_error(
                    401,
                    "missing or wrong API key: send 'Authorization: Bearer KEY'",
                    "authentication_error",
                    "invalid_api_key",
                )
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
            self.metrics.requests.labels(path, model, str(status)).inc()
            self.metrics.latency.labels(path, model).observe(time.perf_counter() - started)


class _ChatRelay:
    """``POST /v1/chat/completions`` as plain ASGI: route by ``model``, refuse remote media,
    relay the backend's answer (SSE chunk by chunk) untouched.

    Plain ASGI rather than a FastAPI route with a ``StreamingResponse``: the route machinery and
    the response's per-request task group were most of the gateway's CPU per proxied request.
    """

    def __init__(
        self,
        by_name: dict[str, Backend],
        config: GatewayConfig,
        metrics: _Metrics,
        upstream: Callable[[], aiohttp.ClientSession],
    ) -> None:
        self.by_name, self.config, self.metrics, self.upstream = by_name, config, metrics, upstream

    def _refusal(self, raw: bytes, scope: Scope) -> Response | tuple[Backend, dict[str, Any]]:
        config, by_name = self.config, self.by_name
        if len(raw) > config.max_body_bytes:  # a chunked body has no Content-Length to check
            return openai_error(413, f"request body over {config.max_body_bytes} bytes",
                                "invalid_request_error", "body_too_large")  # fmt: skip
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return openai_error(400, f"body is not JSON: {error}", "invalid_request_error")
        model = body.get("model") if isinstance(body, dict) else None
        backend = by_name.get(model) if isinstance(model, str) else None
        if backend is None:
            return openai_error(
                404,
                f"model {model!r} is not served here; GET /v1/models lists {', '.join(by_name)}",
                "invalid_request_error",
                "model_not_found",
            )
        scope.setdefault("state", {})["model"] = backend.name
        remote = [
            u
            for u in _remote_media(body)
            if urlparse(u).hostname not in config.allowed_media_domains
        ]
        if remote:
            return openai_error(
                400,
                f"remote media URL refused: {remote[0][:200]}; send the media as a "
                "data: URL, or allow its host in the profile's allowed_media_domains",
                "invalid_request_error",
                "remote_media_refused",
            )
        if backend.state != "ready":
            return openai_error(
                503,
                f"model {backend.name} is {backend.state}; retry shortly",
                "service_unavailable",
                "backend_unavailable",
                **{"Retry-After": "5"},
            )
        return backend, body

    async def _post(self, url: str, raw: bytes) -> aiohttp.ClientResponse:
        """POST upstream; once more on a fresh connection if a pooled one was closed under it.

        A keep-alive connection the backend closes just as the request goes out fails before
        any answer (the backend never read the request), so sending it again is safe.
        """
        headers = {"content-type": "application/json"}
        try:
            return await self.upstream().post(url, data=raw, headers=headers)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
            if isinstance(error, aiohttp.ClientConnectorError):  # a fresh connect failed
                raise
            return await self.upstream().post(url, data=raw, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await _read_body(receive)
        checked = self._refusal(raw, scope)
        if isinstance(checked, Response):
            await checked(scope, receive, send)
            return
        backend, body = checked
        try:
            response = await self._post(f"{backend.base_url}/v1/chat/completions", raw)
        except (aiohttp.ClientConnectionError, TimeoutError) as error:
            refusal = openai_error(
                503,
                f"model {backend.name} did not answer ({type(error).__name__}); retry shortly",
                "service_unavailable",
                "backend_unavailable",
                **{"Retry-After": "5"},
            )
            await refusal(scope, receive, send)
            return
        headers = [(b"content-type", response.headers.get("content-type", "").encode("latin-1"))]
        async with response:
            if not body.get("stream"):
                content = await response.read()
                _count_tokens(self.metrics, backend.name, content)
                headers.append((b"content-length", str(len(content)).encode()))
                await send({"type": "http.response.start", "status": response.status,
                            "headers": headers})  # fmt: skip
                await send({"type": "http.response.body", "body": content})
                return
            await send({"type": "http.response.start", "status": response.status,
                        "headers": headers})  # fmt: skip
            last = b""
            # The body is read, so the next message is the client's disconnect: one watcher per
            # stream. A client that leaves ends the relay, and closing the upstream response
            # cancels the request in vLLM.
            gone = asyncio.ensure_future(receive())
            try:
                async for chunk in response.content.iter_any():
                    if gone.done():
                        return
                    if b'"usage"' in chunk:
                        last = chunk
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            finally:
                gone.cancel()
        # With stream_options.include_usage the last data chunk carries the usage.
        for line in last.splitlines():
            if line.startswith(b"data: {"):
                _count_tokens(self.metrics, backend.name, line[6:])


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def create_gateway(
    backends: list[Backend],
    config: GatewayConfig,
    translation: Any | None = None,
    translation_id: str = "nllb",
) -> FastAPI:
    """The gateway app. ``translation`` is a TranslationEngine or None."""
    metrics = _Metrics()
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
                        limit=0, keepalive_timeout=BACKEND_KEEP_ALIVE_S - 15
                    ),
                    timeout=aiohttp.ClientTimeout(total=config.request_timeout_s, connect=10.0),
                    auto_decompress=False,
                )
            )
        return sessions[0]

    app = FastAPI(title="babelcap gateway", version="0.1.0")
    app.state.backends = by_name
    app.state.metrics = metrics

    chat = _ChatRelay(by_name, config, metrics, upstream)
    app.add_middleware(_Guard, config=config, metrics=metrics, chat=chat)

    @app.get("/health")
    async def health() -> Response:
        states = {name: backend.state for name, backend in by_name.items()}
        ready = all(state == "ready" for state in states.values())
        body = {"status": "ok" if ready else "degraded", "backends": states}
        if translation is not None:
            body["translation"] = "ready"
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/metrics/backends/{model}")
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

    @app.get("/v1/models")
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
        metrics.registry.register(_TranslationCollector(translation))
        install_error_handlers(app)
        app.include_router(translation_router(translation, translation_id))

    @app.on_event("shutdown")
    async def close() -> None:
        for session in sessions:
            await session.close()

    return app


class _TranslationCollector:
    """Exposes the translation engine's own sentence count at scrape time."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Any:
        yield CounterMetricFamily(
            "babelcap_translation_sentences",
            "Sentences x languages translated",
            value=self.engine.sentences_total,
        )


def _count_tokens(metrics: _Metrics, model: str, content: bytes) -> None:
    try:
        usage = json.loads(content).get("usage") or {}
    except (json.JSONDecodeError, AttributeError):
        return
    metrics.tokens.labels(model, "prompt").inc(usage.get("prompt_tokens") or 0)
    metrics.tokens.labels(model, "completion").inc(usage.get("completion_tokens") or 0)
