"""The busy server (benchmarks/busy_server.py) for real: fixed capacity with a FIFO queue, vLLM's
streaming format as babelcap's client and the openai SDK read it, and a real ``babelcap caption``
run against it. Timing margins are wide: these run on 2 loaded cores."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from babelcap.benchmarks.busy_server import (
    DEFAULT_ANSWER,
    IMAGE_MODEL,
    VIDEO_MODEL,
    BusyConfig,
    FifoGate,
    busy_servers,
    serve_in_thread,
    stats,
)
from babelcap.benchmarks.scale_out import sampled_rate, steady_rate
from babelcap.benchmarks.synthetic import write_image
from babelcap.client.requests import ServerPool, by_role, media_hints
from babelcap.core import defaults

WORDS = len(DEFAULT_ANSWER.split(" "))
MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "Describe."}]}]


def test_the_request_over_capacity_waits_one_latency_more():
    async def run(url: str) -> list[float]:
        pool = ServerPool([url], concurrency=8)
        try:
            answers = await asyncio.gather(*(
                pool.chat(IMAGE_MODEL, MESSAGES, max_tokens=64, temperature=0)
                for _ in range(3)
            ))  # fmt: skip
        finally:
            await pool.aclose()
        assert all(a.text == DEFAULT_ANSWER for a in answers)
        return sorted(a.latency_s for a in answers)

    with serve_in_thread(BusyConfig(capacity=2, latency_s=1.0)) as url:
        latencies = asyncio.run(run(url))
        served = stats(url)
    assert latencies[0] >= 0.9
    assert latencies[2] - latencies[1] >= 0.8  # the third waited for a place
    assert served["peak_in_flight"] == 2 and served["peak_waiting"] == 1
    assert served["completed"] == 3 and served["in_flight"] == 0


def test_the_client_reads_models_stream_usage_and_translations():
    async def run(url: str) -> None:
        pool = ServerPool([url], concurrency=4)
        try:
            listed = await pool.models()
            roles = by_role(listed)
            assert {r: e["id"] for r, e in roles.items()} == {
                "image": IMAGE_MODEL, "video": VIDEO_MODEL, "translation": "busy-nllb"
            }  # fmt: skip
            assert media_hints(roles["image"])["tile_size"] == defaults.IMAGE_TILE_SIZE
            assert media_hints(roles["video"])["frames"] == defaults.VIDEO_FRAMES
            answer = await pool.chat(VIDEO_MODEL, MESSAGES, max_tokens=64, temperature=0)
            assert answer.text == DEFAULT_ANSWER and answer.finish_reason == "stop"
            assert (answer.prompt_tokens, answer.completion_tokens) == (100, WORDS)
            assert len(answer.chunk_times_s) == WORDS
            assert 0.05 <= answer.ttft_s < answer.latency_s
            short = await pool.chat(IMAGE_MODEL, MESSAGES, max_tokens=3, temperature=0)
            assert short.finish_reason == "length" and short.completion_tokens == 3
            assert await pool.translate(["Hello.", "Bye."], ["fr", "spa_Latn"]) == {
                "fra_Latn": ["[fra_Latn] Hello.", "[fra_Latn] Bye."],
                "spa_Latn": ["[spa_Latn] Hello.", "[spa_Latn] Bye."],
            }
        finally:
            await pool.aclose()

    with serve_in_thread(BusyConfig(capacity=2, latency_s=0.3)) as url:
        asyncio.run(run(url))


def test_the_openai_sdk_reads_the_stream_and_the_plain_answer():
    openai = pytest.importorskip("openai")
    with serve_in_thread(BusyConfig(capacity=2, latency_s=0.2)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        chunks = list(client.chat.completions.create(
            model=IMAGE_MODEL, messages=MESSAGES, stream=True,
            stream_options={"include_usage": True},
        ))  # fmt: skip
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == DEFAULT_ANSWER
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == WORDS
        plain = client.chat.completions.create(model=VIDEO_MODEL, messages=MESSAGES)
        assert plain.choices[0].message.content == DEFAULT_ANSWER
        assert plain.usage is not None and plain.usage.prompt_tokens == 100
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="nope", messages=MESSAGES)


def test_the_gate_lets_waiters_in_in_order_and_forgets_cancelled_ones():
    async def run() -> list[int]:
        gate = FifoGate(1)
        order: list[int] = []
        await gate.acquire()

        async def wait(n: int) -> None:
            await gate.acquire()
            order.append(n)
            gate.release()

        tasks = [asyncio.create_task(wait(n)) for n in range(4)]
        await asyncio.sleep(0.01)
        tasks[1].cancel()
        await asyncio.sleep(0.01)
        gate.release()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert gate.free == 1 and not gate.waiters
        return order

    assert asyncio.run(run()) == [0, 2, 3]


def test_steady_rate_leaves_out_both_ends():
    times = [0.0] + [10.0 + i * 0.5 for i in range(18)] + [40.0]  # start-up and a tail
    assert steady_rate(times, 0.1) == pytest.approx(2.0)
    assert steady_rate([1.0, 2.0], 0.1) is None
    waves = [w * 2.0 for w in range(1, 11) for _ in range(8)]  # 8 every 2 s
    assert steady_rate(waves, 0.1) == pytest.approx(4.0, rel=0.05)
    counter = [(0.0, 0.0), (5.0, 0.0), *((5.0 + t, 3.0 * t) for t in range(1, 21)), (30.0, 60.0)]
    assert sampled_rate(counter, 0.1) == pytest.approx(3.0)
    assert sampled_rate([(0.0, 5.0), (1.0, 5.0), (2.0, 5.0)]) is None


@pytest.mark.slow
def test_a_real_caption_run_against_two_busy_servers(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    for i in range(8):
        write_image(media / f"ad-{i}.jpg", (160, 120), (20 * i, 90, 200), textured=True, seed=i)
    out = tmp_path / "out.jsonl"
    with busy_servers(2, BusyConfig(capacity=2, latency_s=0.3)) as urls:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "babelcap", "caption", str(media), "--server", urls[0],
             "--server", urls[1], "--tasks", "description,tags", "--languages", "fr",
             "--output", str(out), "--concurrency", "8", "--quiet"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        served = [stats(url)["completed"] for url in urls]
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 8 and {r["status"] for r in records} == {"ok"}
    assert all(r["tasks"]["description"]["text"] == DEFAULT_ANSWER for r in records)
    assert all(r["translations"]["fra_Latn"]["description"].startswith("[fra_Latn] ")
               for r in records)  # fmt: skip
    assert sum(served) == 16 and min(served) >= 2  # both servers took work
    assert time.monotonic() - started < 100
