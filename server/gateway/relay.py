"""``POST /v1/chat/completions`` as plain ASGI: parse and check the request
(:mod:`.validation`), route by ``model``, forward what was parsed, relay the backend's answer
(SSE chunk by chunk) untouched."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import aiohttp
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from babelcap.server.asgi import BodyProblem, read_body
from babelcap.server.backends import Backend
from babelcap.server.gateway.config import GatewayConfig
from babelcap.server.gateway.lanes import FrameLanes
from babelcap.server.gateway.metrics import Metrics, count_tokens
from babelcap.server.gateway.validation import Limits, RequestRefused, check_chat
from babelcap.server.http_errors import openai_error

__all__ = ["ChatRelay"]

log = logging.getLogger(__name__)

#: Bodies over this size are checked in a worker thread; over the second, in a worker process:
#: parsing and re-serializing 60 MB holds the GIL for over 100 ms at a time, which a thread
#: would not keep off the event loop.
_CHECK_IN_THREAD_BYTES = 512 * 1024
_CHECK_IN_PROCESS_BYTES = 4 * 2**20


class ChatRelay:
    """``POST /v1/chat/completions`` as plain ASGI: parse and check the request, route by
    ``model``, forward what was parsed, relay the backend's answer (SSE chunk by chunk)
    untouched; an unexpected error is logged and answered 500 with a request id.

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
        self.limits = {
            name: Limits.from_hints(
                backend.media,
                **(m.model_dump() if (m := config.media_limits.get(name)) is not None else {}),
            )
            for name, backend in by_name.items()
        }
        self.lanes = {name: FrameLanes() for name in by_name}
        self._pool: ProcessPoolExecutor | None = None

    def _workers(self) -> ProcessPoolExecutor:
        """The process that checks big bodies (started on first use)."""
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        return self._pool

    def close(self) -> None:
        """Stop the worker process, if one was started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def _refusal(
        self, raw: bytes, scope: Scope
    ) -> Response | tuple[Backend, bytes, bool, int]:
        check = (raw, self.config.allowed_request_fields, self.limits,
                 self.config.allowed_media_domains)  # fmt: skip
        try:
            if len(raw) > _CHECK_IN_PROCESS_BYTES:
                loop = asyncio.get_running_loop()
                try:
                    model, forwarded, stream, frames = await loop.run_in_executor(
                        self._workers(), check_chat, *check
                    )
                except BrokenProcessPool:  # the worker died (OOM): a new one for the next
                    self._pool = None
                    raise
            elif len(raw) > _CHECK_IN_THREAD_BYTES:
                model, forwarded, stream, frames = await asyncio.to_thread(check_chat, *check)
            else:
                model, forwarded, stream, frames = check_chat(*check)
        except RequestRefused as refused:
            if refused.model:
                scope.setdefault("state", {})["model"] = refused.model
            return refused.response()
        backend = self.by_name[model]
        scope.setdefault("state", {})["model"] = backend.name
        if backend.state == "failed":  # out of restarts: no retry promise
            return openai_error(
                503,
                f"model {backend.name} failed for good ({backend.last_error}); restart "
                "babelcap serve, and see its log and GET /health for why",
                "service_unavailable",
                "backend_failed",
            )
        if backend.state != "ready":
            return openai_error(
                503,
                f"model {backend.name} is {backend.state}; retry shortly",
                "service_unavailable",
                "backend_unavailable",
                **{"Retry-After": "5"},
            )
        return backend, forwarded, stream, frames

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
        started = False

        async def send_and_watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._relay(scope, receive, send_and_watch)
        except BodyProblem:  # too large or too slow: answered by BodyLimit
            raise
        except Exception:
            request_id = uuid.uuid4().hex
            log.exception("chat completion request %s failed", request_id)
            if started:  # the answer has begun: the client sees the stream end early
                return
            failure = openai_error(
                500,
                f"internal error (request id {request_id}); the gateway log has the details",
                "server_error",
                "internal_error",
                **{"x-request-id": request_id},
            )
            await failure(scope, receive, send)

    async def _relay(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_body(receive)
        checked = await self._refusal(raw, scope)
        if isinstance(checked, Response):
            await checked(scope, receive, send)
            return
        backend, forwarded, stream, frames = checked
        # The body is read, so the next message is the client's disconnect: one watcher per
        # request. A client that leaves ends the relay, streamed or not, and closing the
        # upstream request cancels its generation in vLLM.
        gone = asyncio.ensure_future(receive())
        lane = self.lanes[backend.name]
        try:
            if frames and not await _admitted(lane, frames, gone):
                log.info("%s: the client left while its video waited its turn", backend.name)
                return
            try:
                if stream:
                    await self._stream(backend, forwarded, scope, send, gone)
                else:
                    await self._whole(backend, forwarded, scope, send, gone)
            finally:
                lane.release(frames)
        finally:
            gone.cancel()

    async def _whole(
        self,
        backend: Backend,
        forwarded: bytes,
        scope: Scope,
        send: Send,
        gone: asyncio.Future[Message],
    ) -> None:
        """Relay a non-streamed answer; give up on it (cancelling it upstream) if the client
        leaves first."""

        async def exchange() -> tuple[int, bytes, bytes]:
            response = await self._post(f"{backend.base_url}/v1/chat/completions", forwarded)
            async with response:
                content = await response.read()
            kind = response.headers.get("content-type", "").encode("latin-1")
            return response.status, kind, content

        work = asyncio.ensure_future(exchange())
        await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            log.info("%s: the client left; its request was cancelled", backend.name)
            return
        try:
            status, kind, content = work.result()
        except (aiohttp.ClientError, TimeoutError) as error:
            await self._unavailable(backend, scope, send, f"{type(error).__name__}: {error}")
            return
        if status >= 500:
            await self._unavailable(backend, scope, send, f"{status}: {content[:300]!r}")
            return
        count_tokens(self.metrics, backend.name, content)
        headers = [(b"content-type", kind), (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _stream(
        self,
        backend: Backend,
        forwarded: bytes,
        scope: Scope,
        send: Send,
        gone: asyncio.Future[Message],
    ) -> None:
        """Relay a streamed answer chunk by chunk until it ends or the client leaves."""
        try:
            response = await self._post(f"{backend.base_url}/v1/chat/completions", forwarded)
        except (aiohttp.ClientError, TimeoutError) as error:
            await self._unavailable(backend, scope, send, f"{type(error).__name__}: {error}")
            return
        async with response:
            if response.status >= 500:
                detail = (await response.read())[:300]
                await self._unavailable(backend, scope, send, f"{response.status}: {detail!r}")
                return
            kind = response.headers.get("content-type", "").encode("latin-1")
            await send({"type": "http.response.start", "status": response.status,
                        "headers": [(b"content-type", kind)]})  # fmt: skip
            last = b""
            async for chunk in response.content.iter_any():
                if gone.done():
                    return
                if b'"usage"' in chunk:
                    last = chunk
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        # With stream_options.include_usage the last data chunk carries the usage.
        for line in last.splitlines():
            if line.startswith(b"data: {"):
                count_tokens(self.metrics, backend.name, line[6:])

    async def _unavailable(self, backend: Backend, scope: Scope, send: Send, detail: str) -> None:
        """503 with Retry-After for a backend that failed a request (it crashed, was killed
        or answered 5xx): logged with a request id, the backend's words kept out of the
        answer."""
        request_id = uuid.uuid4().hex
        log.warning("request %s: model %s failed it (%s)", request_id, backend.name, detail)
        refusal = openai_error(
            503,
            f"model {backend.name} failed this request (request id {request_id}); retry shortly",
            "service_unavailable",
            "backend_unavailable",
            **{"Retry-After": "5", "x-request-id": request_id},
        )
        await refusal(scope, _no_body, send)


async def _admitted(lane: FrameLanes, frames: int, gone: asyncio.Future[Message]) -> bool:
    """Wait for the request's turn in ``lane``; False (and no turn held) if the client left
    first."""
    turn = asyncio.ensure_future(lane.acquire(frames))
    await asyncio.wait((turn, gone), return_when=asyncio.FIRST_COMPLETED)
    if turn.done():
        turn.result()
        return True
    turn.cancel()
    await asyncio.gather(turn, return_exceptions=True)  # gives its place up
    return False


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
