"""`babelcap serve --profile tiny-cpu`, used the way users use it: the official OpenAI SDK."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import signal
import time

import httpx
import openai
import pytest
from PIL import Image
from tokenizers import Tokenizer

from babelcap.benchmarks.metrics import prometheus_values
from babelcap.core.artifacts import STAND_IN_COLOURS as COLOURS
from babelcap.core.artifacts import STAND_INS as ARTIFACTS
from tests.integration.serving import KEY, cmdline, vllm_children

pytestmark = pytest.mark.vllm


def _image(colour: str) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), COLOURS[colour]).save(buffer, "JPEG")
    url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url}}


def _video(colours: list[str]) -> dict:
    frames = []
    for colour in colours:
        buffer = io.BytesIO()
        Image.new("RGB", (96, 64), COLOURS[colour]).save(buffer, "JPEG")
        frames.append(base64.b64encode(buffer.getvalue()).decode())
    return {"type": "video_url", "video_url": {"url": "data:video/jpeg;base64," + ",".join(frames)}}


def _messages(part: dict, text: str) -> list[dict]:
    return [{"role": "user", "content": [part, {"type": "text", "text": text}]}]


def test_sync_sdk_image_and_streamed_video(gateway):
    base, _ = gateway
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=KEY)
    response = client.chat.completions.create(
        model="tiny-mllama", messages=_messages(_image("red"), "Describe this image."),
        temperature=0, max_tokens=30,
    )  # fmt: skip
    assert response.choices[0].message.content == "The image is mostly red."
    tokenizer = Tokenizer.from_file(str(ARTIFACTS / "mllama" / "tokenizer.json"))
    answer_tokens = len(tokenizer.encode("The image is mostly red.", add_special_tokens=False).ids)
    assert response.usage.completion_tokens == answer_tokens + 1  # and <|eot_id|>
    stream = client.chat.completions.create(
        model="tiny-llava-next-video",
        messages=_messages(
            _video(["blue", "yellow", "red"]), "What colours appear in this video, in order?"
        ),
        temperature=0, max_tokens=30, stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "blue, yellow, red"
    assert chunks[-1].usage.completion_tokens > 3


def test_async_sdk_streaming_and_not(gateway):
    base, _ = gateway

    async def go():
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=KEY)
        plain = await client.chat.completions.create(
            model="tiny-llava-next-video",
            messages=_messages(_video(["green", "white"]), "Describe."),
            temperature=0, max_tokens=30,
        )  # fmt: skip
        stream = await client.chat.completions.create(
            model="tiny-mllama", messages=_messages(_image("blue"), "What colour is this image?"),
            temperature=0, max_tokens=30, stream=True,
        )  # fmt: skip
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()
        return plain.choices[0].message.content, text

    video_text, image_text = asyncio.run(go())
    assert video_text.strip() == "The video shows green, white."
    assert image_text == "blue"


def test_sixty_four_concurrent_streams_all_succeed(gateway):
    base, _ = gateway
    colours = list(COLOURS)

    async def one(client, i):
        colour = colours[i % len(colours)]
        stream = await client.chat.completions.create(
            model="tiny-mllama", messages=_messages(_image(colour), "What colour is this image?"),
            temperature=0, max_tokens=10, stream=True,
        )  # fmt: skip
        return colour, "".join(
            [c.choices[0].delta.content or "" async for c in stream if c.choices]
        )

    async def go():
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0)
        results = await asyncio.gather(*(one(client, i) for i in range(64)))
        await client.close()
        return results

    results = asyncio.run(go())
    assert len(results) == 64
    assert all(text == colour for colour, text in results)


def test_models_translation_health_and_metrics_on_one_port(gateway):
    base, _ = gateway
    headers = {"Authorization": f"Bearer {KEY}"}
    ids = [m["id"] for m in httpx.get(f"{base}/v1/models", headers=headers).json()["data"]]
    assert sorted(ids) == ["tiny-llava-next-video", "tiny-mllama", "tiny-nllb"]
    libre = httpx.post(
        f"{base}/translate",
        json={"q": "The image is mostly red.", "source": "en", "target": "fr", "api_key": KEY},
    )
    assert libre.json() == {"translatedText": "L'image est surtout rouge."}
    health = httpx.get(f"{base}/health").json()  # no key needed
    assert health["backends"] == {"tiny-mllama": "ready", "tiny-llava-next-video": "ready"}
    metrics = httpx.get(f"{base}/metrics", headers=headers).text
    assert 'babelcap_requests_total{model="tiny-mllama"' in metrics
    assert "babelcap_translation_sentences_total" in metrics
    # Streamed responses count their usage too (the video request above asked for it).
    assert 'babelcap_tokens_total{kind="completion",model="tiny-llava-next-video"}' in metrics


def test_errors_are_openai_shaped(gateway):
    base, _ = gateway
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0).models.list()
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    remote = {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest/meta-data"}}
    with pytest.raises(openai.BadRequestError, match="remote media URL refused"):
        client.chat.completions.create(model="tiny-mllama", messages=_messages(remote, "Describe."))


def test_a_client_that_leaves_mid_stream_cancels_the_backend_request(gateway):
    base, _ = gateway
    headers = {"Authorization": f"Bearer {KEY}"}

    def counters() -> dict[str, float]:
        text = httpx.get(f"{base}/metrics/backends/tiny-llava-next-video", headers=headers).text
        return prometheus_values(text)

    before = counters()
    body = {
        "model": "tiny-llava-next-video",
        "messages": _messages(_video(["red", "blue"]), "Describe this video."),
        "max_tokens": 1500, "ignore_eos": True, "stream": True,  # about 1,500 tokens
    }  # fmt: skip
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST", f"{base}/v1/chat/completions", json=body, headers=headers
        ) as response,
    ):
        assert response.status_code == 200
        next(response.iter_lines())  # the stream has started; now the client leaves
    # All 1,500 tokens take about 3.5 s here; after 6 s, a request that was not cancelled would
    # have produced them all. (vLLM's running-requests gauge only updates on engine steps.)
    time.sleep(6)
    generated = counters()["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    assert generated < 300, f"{generated} tokens generated for a client that left"


def test_a_crashed_backend_is_answered_503_then_restarted(gateway):
    base, process = gateway
    headers = {"Authorization": f"Bearer {KEY}"}
    mllama = [pid for pid in vllm_children(process.pid) if b"tiny-mllama" in cmdline(pid)]
    restarts = _restarts(base, headers)
    os.killpg(mllama[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/health").json()["backends"]["tiny-mllama"] == "ready":
        assert time.monotonic() < deadline, "the supervisor did not notice the crash"
        time.sleep(0.5)
    body = {"model": "tiny-mllama", "messages": _messages(_image("red"), "Describe this image.")}
    down = httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers)
    assert down.status_code == 503 and down.headers["retry-after"] == "5"
    assert down.json()["error"]["code"] == "backend_unavailable"
    deadline = time.monotonic() + 300
    while httpx.get(f"{base}/health").status_code != 200:
        assert time.monotonic() < deadline, "the backend did not come back"
        time.sleep(1)
    up = httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers)
    assert up.json()["choices"][0]["message"]["content"] == "The image is mostly red."
    assert _restarts(base, headers) == restarts + 1


def _restarts(base: str, headers: dict[str, str]) -> float:
    for line in httpx.get(f"{base}/metrics", headers=headers).text.splitlines():
        if line.startswith('babelcap_backend_restarts_total{model="tiny-mllama"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_client_that_leaves_a_non_streamed_chat_cancels_the_backend_request(gateway):
    base, _ = gateway
    headers = {"Authorization": f"Bearer {KEY}"}

    def generated() -> float:
        text = httpx.get(f"{base}/metrics/backends/tiny-llava-next-video", headers=headers).text
        return prometheus_values(text)["vllm:generation_tokens_total"]

    before = generated()
    body = {
        "model": "tiny-llava-next-video",
        "messages": _messages(_video(["red", "blue"]), "Describe this video."),
        "max_tokens": 1500, "ignore_eos": True,  # about 1,500 tokens, answered at the end
    }  # fmt: skip
    with pytest.raises(httpx.ReadTimeout):  # the client gives up before the answer
        httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=0.5)
    time.sleep(6)  # as above: long enough for all 1,500 tokens had it not been cancelled
    assert generated() - before < 1000, "the backend kept generating for a client that left"
