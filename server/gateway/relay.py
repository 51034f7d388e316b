"""``POST /v1/chat/completions`` as plain ASGI: route by ``model``, refuse remote media, relay
the backend's answer (SSE chunk by chunk) untouched."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import aiohttp
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from babelcap.server.asgi import body_too_large, read_body
from babelcap.server.backends import Backend
from babelcap.server.gateway.config import BODY_LIMIT_HINT, GatewayConfig
from babelcap.server.gateway.metrics import Metrics, count_tokens
from babelcap.server.http_errors import openai_error

__all__ = ["ChatRelay"]


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


class ChatRelay:
    """``POST /v1/chat/completions`` as plain ASGI: route by ``model``, refuse remote media,
    relay the backend's answer (SSE chunk by chunk) untouched.

    Plain ASGI rather than a FastAPI route with a ``StreamingResponse``: the route machinery and
    the response's per-request task group were most of the gateway's CPU per proxied request.
    """

    def __init__(
        self,
        by_name: dict[str, Backend],
        config: GatewayConfig,
        metrics: Metrics,
        upstream: Callable[[], aiohttp.ClientSession],
    ) -> None:
        self.by_name, self.config, self.metrics, self.upstream = by_name, config, metrics, upstream

    def _refusal(self, raw: bytes, scope: Scope) -> Response | tuple[Backend, dict[str, Any]]:
        config, by_name = self.config, self.by_name
        if len(raw) > config.max_body_bytes:  # a chunked body has no Content-Length to check
            message = body_too_large(len(raw), config.max_body_bytes, BODY_LIMIT_HINT)
            return openai_error(413, message, "invalid_request_error", "body_too_large")
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
        raw = await read_body(receive)
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
                count_tokens(self.metrics, backend.name, content)
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
                count_tokens(self.metrics, backend.name, line[6:])
