"""The tiny stand-ins answer checkably through vLLM's real OpenAI API (CPU build), as served
by `babelcap serve --profile tiny-cpu`."""

from __future__ import annotations

import base64
import io

import pytest
from openai import OpenAI
from PIL import Image

from babelcap.core.artifacts import STAND_IN_COLOURS as COLOURS
from tests.integration.serving import KEY

pytestmark = pytest.mark.vllm


def _jpeg(colour: str, size: tuple[int, int] = (320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, COLOURS[colour]).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _ask(base: str, model: str, part: dict, question: str) -> tuple[str, object]:
    client = OpenAI(base_url=f"{base}/v1", api_key=KEY)
    response = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": [part, {"type": "text", "text": question}]}],
        max_tokens=40,
        temperature=0,
    )
    return response.choices[0].message.content or "", response.usage


@pytest.mark.parametrize("colour", ["red", "green", "blue", "yellow", "purple", "white"])
def test_mllama_names_the_colour_of_a_data_url_image(gateway, colour):
    url = "data:image/jpeg;base64," + base64.b64encode(_jpeg(colour)).decode()
    answer, usage = _ask(
        gateway[0],
        "tiny-mllama",
        {"type": "image_url", "image_url": {"url": url}},
        "What colour is this image?",
    )
    assert answer.strip() == colour
    assert usage.completion_tokens >= 1 and usage.prompt_tokens > 10


def test_mllama_answers_any_other_prompt_with_the_colour(gateway):
    # The colour is the 5th generated token: this fails when decode steps lose the image
    # (vLLM CPU + IPEX without server/stack/patch_vllm_mllama_cpu.py).
    url = "data:image/jpeg;base64," + base64.b64encode(_jpeg("orange", (500, 300))).decode()
    answer, _ = _ask(
        gateway[0],
        "tiny-mllama",
        {"type": "image_url", "image_url": {"url": url}},
        "Write a short caption for this advertisement.",
    )
    assert answer.strip() == "The image is mostly orange."


@pytest.mark.parametrize(
    "colours",
    [
        ["red", "green", "blue", "yellow"],
        ["yellow", "blue", "green", "red"],
        ["purple", "white", "black"],
        ["orange", "black"],
    ],
)
def test_llava_next_video_names_frame_colours_in_order(gateway, colours):
    frames = ",".join(base64.b64encode(_jpeg(c, (96, 64))).decode() for c in colours)
    answer, usage = _ask(
        gateway[0],
        "tiny-llava-next-video",
        {"type": "video_url", "video_url": {"url": "data:video/jpeg;base64," + frames}},
        "What colours appear in this video, in order?",
    )
    assert answer.strip() == ", ".join(colours)
    # 16 tokens a frame reached the model: the server counted exactly the frames we sent.
    assert usage.prompt_tokens >= 16 * len(colours)
