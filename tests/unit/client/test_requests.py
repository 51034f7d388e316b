"""Retries, failures and balancing against real local HTTP servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from babelcap.client.requests import RetryPolicy, ServerPool, retry_delay
from babelcap.core.errors import RequestFailedError, ServerUnavailableError
from babelcap.server.process import free_port
from tests.unit.client.fakes import ThreadedServer

FAST = RetryPolicy(max_retries=3, initial_delay_s=0.01, max_delay_s=0.05, unavailable_timeout_s=1.0)


def _sse(text: str):
    async def body():
        yield 'data: {"choices": [{"delta": {"role": "assistant"}}]}\n\n'
        for word in text.split(" "):
            chunk = {"choices": [{"delta": {"content": word + " "}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n"
            await asyncio.sleep(0.01)
        usage = {"prompt_tokens": 11, "completion_tokens": len(text.split(" "))}
        yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")


class Scripted(ThreadedServer):
    """A real HTTP server answering chat requests from a script of statuses."""

    def __init__(self, script: list[int | str]) -> None:
        self.script = deque(script)
        self.seen: list[float] = []

        async def chat(request: Request) -> Response:
            await request.body()
            self.seen.append(time.monotonic())
            step = self.script.popleft() if self.script else 200
            if step == 200:
                return _sse("a red car")
            if step == "die":  # a stream that breaks off mid-way

                async def broken():
                    yield 'data: {"choices": [{"delta": {"content": "a "}}]}\n\n'
                    raise RuntimeError("backend died")

                return StreamingResponse(broken(), media_type="text/event-stream")
            headers = {"Retry-After": "0"} if step in (429, 503) else {}
            return JSONResponse({"error": {"message": f"scripted {step}"}}, step, headers)

        super().__init__([Route("/v1/chat/completions", chat, methods=["POST"])])


async def _chat(pool: ServerPool):
    try:
        return await pool.chat("m", [{"role": "user", "content": "hi"}], max_tokens=8,
                               temperature=0)  # fmt: skip
    finally:
        await pool.aclose()


def test_streamed_completion_reports_usage_and_ttft():
    with Scripted([200]) as server:
        answer = asyncio.run(_chat(ServerPool([server.url], policy=FAST)))
    assert answer.text.strip() == "a red car"
    assert (answer.prompt_tokens, answer.completion_tokens) == (11, 3)
    assert 0 < answer.ttft_s < answer.latency_s
    assert answer.attempts == 1


@pytest.mark.parametrize("failures", [[429, 429], [500], [503, 502], ["die"], [408, 409]])
def test_retried_statuses_recover(failures):
    with Scripted(failures) as server:
        answer = asyncio.run(_chat(ServerPool([server.url], policy=FAST)))
    assert answer.text.strip() == "a red car"
    assert answer.attempts == len(failures) + 1


@pytest.mark.parametrize("status", [400, 401, 404, 413, 422])
def test_other_client_errors_are_never_retried(status):
    with Scripted([status]) as server:
        with pytest.raises(RequestFailedError, match=f"answered {status}: scripted {status}"):
            asyncio.run(_chat(ServerPool([server.url], policy=FAST)))
        assert len(server.seen) == 1


def test_too_many_retries_give_up_with_the_last_error():
    with (
        Scripted([429] * 10) as server,
        pytest.raises(RequestFailedError, match=r"4 attempts.*429"),
    ):
        asyncio.run(_chat(ServerPool([server.url], policy=FAST)))


def test_no_server_answering_stops_after_the_unavailable_deadline():
    started = time.monotonic()
    with pytest.raises(ServerUnavailableError, match=r"no server answered .*--resume"):
        asyncio.run(_chat(ServerPool([f"http://127.0.0.1:{free_port()}"], policy=FAST)))
    assert 0.5 < time.monotonic() - started < 5


def test_least_outstanding_spreads_load_over_servers():
    with Scripted([]) as first, Scripted([]) as second:
        pool = ServerPool([first.url, second.url], policy=FAST, concurrency=8)

        async def many():
            try:
                return await asyncio.gather(*(
                    pool.chat("m", [], max_tokens=4, temperature=0) for _ in range(16)
                ))  # fmt: skip
            finally:
                await pool.aclose()

        answers = asyncio.run(many())
    servers = [a.server for a in answers]
    assert servers.count(first.url) == servers.count(second.url) == 8


def test_a_dead_server_among_live_ones_is_routed_around():
    with Scripted([]) as live:
        dead = f"http://127.0.0.1:{free_port()}"
        pool = ServerPool([dead, live.url], policy=FAST)

        async def few():
            try:
                return [await pool.chat("m", [], max_tokens=4, temperature=0) for _ in range(4)]
            finally:
                await pool.aclose()

        answers = asyncio.run(few())
    assert {a.server for a in answers} == {live.url}


def test_retry_delay_honours_retry_after_and_backs_off_with_jitter():
    policy = RetryPolicy()
    assert retry_delay(0, "3", policy) == 3.0
    assert retry_delay(0, "600", policy) == 60.0
    assert retry_delay(0, "Wed, 21 Oct 2015 07:28:00 GMT", policy) == 0.0  # in the past
    delays = [retry_delay(n, None, policy) for n in range(8)]
    assert 0.375 <= delays[0] <= 0.5
    assert all(6.0 <= d <= 8.0 for d in delays[5:])  # capped at 8 s
