"""Hostile chat requests against the real `babelcap serve --profile tiny-cpu`: each is a 4xx
that names what is wrong, and the backends still answer afterwards."""

from __future__ import annotations

import base64
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from tests.integration.serving import KEY, vllm_children

pytestmark = pytest.mark.vllm


def _b64(image: Image.Image, kind: str) -> str:
    buffer = io.BytesIO()
    image.save(buffer, kind)
    return base64.b64encode(buffer.getvalue()).decode()


def _image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def _chat(model: str, part: dict | None = None, **fields) -> dict:
    content = [part, {"type": "text", "text": "Describe."}] if part else "Describe."
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    return {**body, "max_tokens": 8, "temperature": 0, **fields}


VIDEO = "data:video/jpeg;base64,"
SMALL = "data:image/jpeg;base64," + _b64(Image.new("RGB", (64, 64), "red"), "JPEG")
FRAME = _b64(Image.new("RGB", (64, 64), "blue"), "JPEG")
BIG_FRAME = _b64(Image.new("RGB", (4000, 4000), "blue"), "JPEG")
HOSTILE = {
    "prompt_logprobs with an image": (
        _chat("tiny-mllama", _image(SMALL), prompt_logprobs=1), "prompt_logprobs"),
    "chat_template": (
        _chat("tiny-mllama", chat_template="{% for i in range(99999) %}{% endfor %}"),
        "chat_template"),
    "truncate_prompt_tokens on the video model": (
        _chat("tiny-llava-next-video", truncate_prompt_tokens=4), "truncate_prompt_tokens"),
    "a 13000x13000 1-bit PNG": (_chat("tiny-mllama", _image(
        "data:image/png;base64," + _b64(Image.new("1", (13000, 13000)), "PNG"))),
        "messages.0.content.0.image_url"),
    "20 frames of 4000x4000": (_chat("tiny-llava-next-video", {"type": "video_url",
        "video_url": {"url": "data:video/jpeg;base64," + ",".join([BIG_FRAME] * 20)}}),
        "messages.0.content.0.video_url"),
    "a PNG over Pillow's limit": (_chat("tiny-mllama", _image(
        "data:image/png;base64," + _b64(Image.new("1", (20000, 20000)), "PNG"))),
        "messages.0.content.0.image_url"),
    "messages of the wrong type": ({"model": "tiny-mllama", "messages": "hi"}, "messages"),
    "a malformed http URL": (_chat("tiny-mllama", _image("http://[::1")),
                             "messages.0.content.0.image_url"),
    "an image_embeds part": (
        _chat("tiny-mllama", {"type": "image_embeds", "image_embeds": "AAAA"}),
        "messages.0.content.0"),
    "an empty video data URL": (_chat("tiny-llava-next-video", {"type": "video_url",
        "video_url": {"url": "data:video/jpeg;base64,"}}), "messages.0.content.0.video_url"),
    "a broken video frame": (_chat("tiny-llava-next-video", {"type": "video_url",
        "video_url": {"url": "data:video/jpeg;base64," + FRAME + ",AAAA"}}),
        "messages.0.content.0.video_url"),
}  # fmt: skip
RAW = {
    "deep nesting": b'{"model": "tiny-mllama", "messages": ' + b"[" * 100000 + b"]" * 100000
    + b"}",
    "a lone surrogate": b'{"model": "tiny-mllama", "messages": [{"role": "user", '
    b'"content": "\\ud800"}], "max_tokens": 4}',
    "not UTF-8": b'{"model": "tiny-mllama", "messages": [{"role": "user", "content": "\xff"}]}',
    "temperature NaN": b'{"model": "tiny-mllama", "messages": [{"role": "user", "content": '
    b'"hi"}], "max_tokens": 4, "temperature": NaN}',
    "temperature Infinity": b'{"model": "tiny-mllama", "messages": [{"role": "user", '
    b'"content": "hi"}], "max_tokens": 4, "temperature": Infinity}',
}  # fmt: skip


def _post(base: str, raw: bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    return httpx.post(f"{base}/v1/chat/completions", content=raw, headers=headers, timeout=120)


def _rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes and all below them, in MB."""
    total = 0.0
    for pid in {*pids, *(p for root in pids for p in _descendants(root))}:
        try:
            with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
                rss = next(line for line in handle if line.startswith("VmRSS:"))
            total += int(rss.split()[1]) / 1024
        except (OSError, StopIteration):
            continue
    return total


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def test_hostile_requests_are_4xx_and_the_backends_still_answer(gateway):
    base, process = gateway
    backends = vllm_children(process.pid)
    baseline = _rss_mb(backends)
    cases = [(name, json.dumps(body).encode(), param) for name, (body, param) in HOSTILE.items()]
    cases += [(name, raw, None) for name, raw in RAW.items()]
    for name, raw, param in cases:
        answer = _post(base, raw)
        assert answer.status_code == 400, (name, answer.text)
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error", name
        if param is not None:
            assert error["param"] == param, name
        # After each: every backend healthy, none grown by more than the case could explain.
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.status_code == 200, (name, health.text)
        grown = _rss_mb(backends) - baseline
        assert grown < 300, f"{name}: the backends grew by {grown:.0f} MB"
    assert process.poll() is None
    for model, part in [
        ("tiny-mllama", _image(SMALL)),
        ("tiny-llava-next-video",
         {"type": "video_url", "video_url": {"url": VIDEO + ",".join([FRAME] * 3)}}),
    ]:  # fmt: skip
        answer = _post(base, json.dumps(_chat(model, part)).encode())
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200


def test_concurrent_videos_with_different_frame_counts_do_not_crash_the_engine(gateway):
    """vLLM batches the videos of concurrent requests into one tensor; LLaVA-NeXT-Video's engine
    died ("Sizes of tensors must match") when a damaged clip's 2 frames met another's 4. The
    gateway lets one frame count at a time through to a backend, so all of these are answered,
    each describing the frames it sent."""
    base, process = gateway
    counts = (2, 4, 3, 4, 2, 3, 4, 2)  # the stand-in was trained on 2 to 4 frames
    colours = ["red", "green", "blue", "yellow"]
    frames = [_b64(Image.new("RGB", (64, 64), c), "JPEG") for c in colours]
    bodies = [
        json.dumps(_chat("tiny-llava-next-video", {"type": "video_url", "video_url": {
            "url": VIDEO + ",".join(frames[:count])}}, max_tokens=48)).encode()
        for count in counts
    ]  # fmt: skip
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda raw: _post(base, raw), bodies))
    assert [a.status_code for a in answers] == [200] * len(bodies), [a.text for a in answers]
    for count, answer in zip(counts, answers, strict=True):
        text = answer.json()["choices"][0]["message"]["content"]
        assert text.strip() == f"The video shows {', '.join(colours[:count])}.", (count, text)
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    assert process.poll() is None
