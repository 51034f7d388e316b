"""The gateway's upstream connections, against a real local HTTP server on loopback."""

from __future__ import annotations

import asyncio
import json

import httpx

from babelcap.server.gateway import Backend, GatewayConfig, create_gateway

_ANSWER = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "tiny",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "red"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()

_CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "colour?"}], "stream": False}


async def _one_answer_per_connection() -> tuple[asyncio.Server, list[int]]:
    """Answers the first request on each connection (keep-alive), then closes the connection
    without an answer when the next request arrives on it: what a backend whose idle timeout
    fires just as a pooled connection is reused looks like to the gateway."""
    answered: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if served:
                    break
                served += 1
                answered.append(1)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(_ANSWER), _ANSWER)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), answered


def test_a_pooled_connection_closed_by_the_backend_is_retried_on_a_fresh_one() -> None:
    async def scenario() -> list[int]:
        server, answered = await _one_answer_per_connection()
        port = server.sockets[0].getsockname()[1]
        backend = Backend("tiny", "image", f"http://127.0.0.1:{port}")
        backend.state = "ready"
        app = create_gateway([backend], GatewayConfig())
        transport = httpx.ASGITransport(app=app)
        statuses = []
        try:
            # The app's lifespan, as uvicorn runs it: its end closes the upstream session.
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
            ):
                for _ in range(3):
                    response = await client.post("/v1/chat/completions", json=_CHAT)
                    statuses.append(response.status_code)
                    assert response.json()["choices"][0]["message"]["content"] == "red"
        finally:
            server.close()
            await server.wait_closed()
        assert len(answered) == 3  # one answer per fresh connection
        return statuses

    assert asyncio.run(scenario()) == [200, 200, 200]


def test_a_body_over_the_limit_is_refused_with_413_before_the_api_key_is_checked() -> None:
    async def scenario() -> list[httpx.Response]:
        app = create_gateway([], GatewayConfig(api_key="k", max_body_bytes=100))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            big = await client.post("/v1/chat/completions", content=b"x" * 101)
            small = await client.post("/v1/chat/completions", content=b"x" * 100)
        return [big, small]

    big, small = asyncio.run(scenario())
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    assert "101 bytes is over the 100-byte limit" in big.json()["error"]["message"]
    assert small.status_code == 401
