"""The gateway's bounds, each shown with real HTTP on loopback: bodies counted while read (chunked
ones too) on every route and before the API key is decided, slow bodies and slow headers cut
off, a client that leaves a non-streamed chat cancels it upstream, a backend that fails a
request is a 503 to retry (never its raw 500), and metrics labelled by route template."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from babelcap.server.asgi import BodyLimit
from babelcap.server.gateway import Backend, GatewayConfig, create_gateway
from babelcap.server.http_server import HeaderDeadlineProtocol
from babelcap.server.process import free_port
from babelcap.server.translation import TranslationEngine, TranslationSettings

_CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "colour?"}]}


class _Served:
    """An ASGI app served by uvicorn (babelcap's protocol) in a thread, on a free port."""

    def __init__(self, app: object, header_timeout_s: float = 30.0) -> None:
        protocol = type("Protocol", (HeaderDeadlineProtocol,), {})
        protocol.header_timeout_s = header_timeout_s
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, http=protocol, log_level="critical"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Served:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class _Backend:
    """A real HTTP backend on loopback that answers chat as told: ``hang`` (never answers),
    ``500`` (plain-text Internal Server Error) or ``drop`` (closes without an answer). It
    records when each connection it accepted was closed by the other side."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.closed_at: list[float] = []
        self.port = free_port()
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            if self.behaviour == "500":
                writer.write(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n"
                    b"content-length: 21\r\n\r\nInternal Server Error"
                )
                await writer.drain()
            if self.behaviour == "hang":
                await reader.read()  # returns once the gateway closes the connection
                self.closed_at.append(time.monotonic())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self.ready.set()
        self.loop.run_forever()
        server.close()

    def __enter__(self) -> _Backend:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def _gateway(backend_port: int, translation: object = None, **config: object) -> object:
    backend = Backend("tiny", "image", f"http://127.0.0.1:{backend_port}")
    backend.state = "ready"
    return create_gateway([backend], GatewayConfig(**config), translation)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def translator(artifacts):
    """The real translation engine on the tiny NLLB model."""
    return TranslationEngine(TranslationSettings(model=artifacts / "nllb-ct2"))


def _chunks(total: int, consumed: list[int]) -> Iterator[bytes]:
    """``total`` bytes in 64 KiB chunks, counting how many were taken."""
    chunk = b"x" * 65536
    for _ in range(total // len(chunk)):
        consumed.append(len(chunk))
        yield chunk


async def _achunks(total: int, consumed: list[int]) -> AsyncIterator[bytes]:
    for chunk in _chunks(total, consumed):
        yield chunk


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/translate", "/v1/translations"])
def test_a_chunked_body_is_refused_413_once_it_passes_the_limit_not_read_whole(
    path, translator
) -> None:
    async def scenario() -> tuple[httpx.Response, int]:
        app = _gateway(
            1, translator, api_key="k", max_body_bytes=1_000_000, max_translation_body_bytes=100
        )
        consumed: list[int] = []
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            # No Content-Length: a streamed body is sent chunked.
            headers = {"authorization": "Bearer k"}
            chunks = _achunks(200 * 2**20, consumed)
            answer = await client.post(path, content=chunks, headers=headers)
        return answer, sum(consumed)

    answer, sent = asyncio.run(scenario())
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    if path == "/translate":  # LibreTranslate's shape
        message = error
    else:
        assert error["code"] == "body_too_large"
        message = error["message"]
    limit = 1_000_000 if path == "/v1/chat/completions" else 100
    assert f"over the {limit}-byte limit" in message
    assert sent <= limit + 2 * 65536  # read up to the limit, not the 200 MB


def test_a_translation_body_over_its_limit_is_413_before_the_api_key_is_read_from_it(
    translator,
) -> None:
    async def scenario() -> httpx.Response:
        app = _gateway(1, translator, api_key="k", max_translation_body_bytes=1000)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            body = {"q": "x" * 5000, "target": "fr", "api_key": "k"}
            return await client.post("/translate", json=body)

    answer = asyncio.run(scenario())
    assert answer.status_code == 413
    assert "--max-translation-body-bytes" in answer.text


def test_a_body_that_stops_arriving_is_answered_408() -> None:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"bytes": len(await request.body())})

    limit = Middleware(BodyLimit, limit=10_000, hint="-", idle_timeout_s=0.3, read_timeout_s=5)
    app = Starlette(routes=[Route("/", echo, methods=["POST"])], middleware=[limit])
    with _Served(app) as served, socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc")
        sock.settimeout(5)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"body_timeout" in answer and b"3 bytes read" in answer and b"within 0.3 s" in answer


def test_headers_sent_slowly_or_never_have_the_connection_closed() -> None:
    app = Starlette(routes=[Route("/", lambda _: JSONResponse({}))])
    with _Served(app, header_timeout_s=0.5) as served:
        quiet = socket.create_connection(("127.0.0.1", served.port))
        slow = socket.create_connection(("127.0.0.1", served.port))
        started = time.monotonic()
        closed = None
        for byte in b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 40:
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                closed = time.monotonic() - started
                break
            time.sleep(0.05)
        quiet.settimeout(3)
        assert quiet.recv(1) == b""  # closed by the server
        assert closed is not None and closed < 2.5
        # A client that sends its request at once is served as before.
        assert httpx.get(served.url).status_code == 200
        quiet.close()
        slow.close()


def test_a_client_that_leaves_a_non_streamed_chat_cancels_it_upstream() -> None:
    with _Backend("hang") as backend, _Served(_gateway(backend.port)) as served:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{served.url}/v1/chat/completions", json=_CHAT, timeout=0.5)
        left = time.monotonic()
        deadline = left + 5
        while not backend.closed_at and time.monotonic() < deadline:
            time.sleep(0.05)
        assert backend.closed_at, "the gateway kept the upstream request after the client left"
        assert backend.closed_at[0] - left < 2


@pytest.mark.parametrize("behaviour", ["500", "drop"])
def test_a_backend_failing_a_request_is_a_503_to_retry_with_a_request_id(behaviour) -> None:
    with _Backend(behaviour) as backend, _Served(_gateway(backend.port)) as served:
        for stream in (False, True):
            answer = httpx.post(
                f"{served.url}/v1/chat/completions", json={**_CHAT, "stream": stream}
            )
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "5"
            error = answer.json()["error"]
            assert error["code"] == "backend_unavailable"
            assert answer.headers["x-request-id"] in error["message"]
            assert "Internal Server Error" not in error["message"]


def test_metrics_label_routes_by_template_so_random_paths_add_no_series() -> None:
    async def scenario() -> str:
        app = _gateway(1)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            for n in range(200):
                assert (await client.get(f"/random-{n}")).status_code == 404
            await client.get("/metrics/backends/nope")
            await client.get("/v1/models")
            return (await client.get("/metrics")).text

    metrics = asyncio.run(scenario())
    series = [line for line in metrics.splitlines() if line.startswith("babelcap_requests_total")]
    assert not any("random-" in line for line in series)
    assert any('route="unmatched"' in line and line.endswith(" 200.0") for line in series)
    assert any('route="/metrics/backends/{model}"' in line for line in series)
    assert any('route="/v1/models"' in line for line in series)


def test_a_big_body_is_checked_in_a_worker_process_and_refused_the_same_way() -> None:
    """Over 4 MB a chat body is parsed and checked in a worker process (off the event loop and
    its GIL); a refusal comes back whole: status, code and the field named."""
    padding = "x" * (5 * 2**20)
    bodies = {
        "chat_template": {**_CHAT, "user": "u", "chat_template": padding},
        "messages.0.content.0.image_url": {
            "model": "tiny",
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + padding}}
            ]}],
        },
    }  # fmt: skip

    async def scenario() -> list[httpx.Response]:
        app = _gateway(1)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with (
            app.router.lifespan_context(app),  # type: ignore[attr-defined]
            httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
        ):
            return [await client.post("/v1/chat/completions", json=b) for b in bodies.values()]

    for param, answer in zip(bodies, asyncio.run(scenario()), strict=True):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == param
