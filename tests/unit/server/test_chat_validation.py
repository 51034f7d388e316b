"""The gateway's chat request model and media checks: what is relayed, and what is refused."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from babelcap.server.gateway.validation import (
    REFUSED_UNLESS_ALLOWED,
    ChatRequest,
    Limits,
    RequestRefused,
    check_media,
    parse_chat,
)
from babelcap.server.profiles import Profile, load_profile

LIMITS = Limits.from_hints({"tile_size": 56, "max_tiles": 4, "frames": 4, "frame_size": 64})


TEXT = {"type": "text", "text": "Describe this image."}


def _jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def _image_part(data: bytes, mime: str = "image/jpeg") -> dict:
    url = f"data:{mime};base64," + base64.b64encode(data).decode()
    return {"type": "image_url", "image_url": {"url": url}}


def _video_part(frames: list[bytes]) -> dict:
    url = "data:video/jpeg;base64," + ",".join(base64.b64encode(f).decode() for f in frames)
    return {"type": "video_url", "video_url": {"url": url}}


def _body(part: dict | None = None, **fields) -> dict:
    content = [part, {"type": "text", "text": "Describe."}] if part else "Hello"
    return {"model": "m", "messages": [{"role": "user", "content": content}], **fields}


def _refusal(body: dict | bytes, allowed: frozenset[str] = frozenset()) -> RequestRefused:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(RequestRefused) as caught:
        check_media(parse_chat(raw, allowed), LIMITS, [])
    return caught.value


def test_babelcaps_own_client_request_is_relayed_as_parsed():
    body = {
        "model": "tiny-mllama",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    _image_part(_jpeg((112, 112))),
                    {"type": "text", "text": "Describe this image."},
                ],
            },
        ],
        "max_tokens": 64,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    request = parse_chat(json.dumps(body).encode())
    check_media(request, LIMITS, [])
    assert json.loads(request.forwarded()) == body


@pytest.mark.parametrize("field", ["temperature", "top_p", "presence_penalty", "frequency_penalty"])
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(field, value):
    raw = json.dumps(_body()).encode()[:-1] + f', "{field}": {value}}}'.encode()
    refused = _refusal(raw)
    assert refused.status == 400 and refused.param == field


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", 3), ("top_p", 0), ("n", 5), ("top_logprobs", 21), ("max_tokens", 0),
     ("temperature", "0.5"), ("stream", "yes"), ("top_k", 1.5)],
)  # fmt: skip
def test_out_of_range_or_wrong_type_is_refused(field, value):
    assert _refusal(_body(**{field: value})).param == field


@pytest.mark.parametrize("field", sorted(REFUSED_UNLESS_ALLOWED))
def test_risky_fields_are_refused_by_name_unless_allowed(field):
    refused = _refusal(_body(**{field: 1}))
    assert (refused.code, refused.param) == ("field_not_allowed", field)
    assert field in refused.message and "allowed_request_fields" in refused.message
    request = parse_chat(json.dumps(_body(**{field: 1})).encode(), frozenset({field}))
    assert json.loads(request.forwarded())[field] == 1


def test_unknown_fields_are_refused_by_name():
    refused = _refusal(_body(frobnicate=True))
    assert (refused.code, refused.param) == ("unknown_field", "frobnicate")
    nested = _refusal({"model": "m", "messages": [{"role": "user", "content": "x", "z": 1}]})
    assert nested.param == "messages.0.z"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "m", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"model": "m", "messages": [{"role": "user", "content": "\\ud800"}]}',
        b'{"model": "m", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        b'{"model": "m", "messages": "hello"}',
        b'{"model": "m", "messages": []}',
        b'{"model": "m", "messages": [{"role": "tool", "content": "x"}]}',
        b"[1, 2]",
        b"",
        b"not json",
    ],
)
def test_malformed_bodies_are_400s(raw):
    assert _refusal(raw).status == 400


def test_image_embeds_parts_are_refused():
    refused = _refusal(_body({"type": "image_embeds", "image_embeds": "AAAA"}))
    assert refused.param == "messages.0.content.0"


def test_min_tokens_over_max_tokens_is_refused():
    assert "min_tokens" in _refusal(_body(min_tokens=10, max_tokens=5)).message


def test_an_image_over_the_pixel_limit_is_refused_from_its_header():
    big = Image.new("1", (13000, 13000))
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    refused = _refusal(_body(_image_part(buffer.getvalue(), "image/png")))
    assert (refused.code, refused.param) == ("media_too_large", "messages.0.content.0.image_url")
    assert str(LIMITS.max_image_pixels) in refused.message


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:image/jpeg;base64,", "invalid_media"),
        ("data:image/jpeg;base64,@@@@", "invalid_media"),
        ("data:image/jpeg;base64," + base64.b64encode(b"not an image").decode(), "invalid_media"),
        ("data:image/png;base64," + base64.b64encode(_jpeg((8, 8))).decode(), "invalid_media"),
        ("data:image/tiff;base64,AAAA", "unsupported_media"),
        ("data:image/jpeg,rawbytes", "invalid_media"),
        ("http://[::1", "remote_media_refused"),
        ("https://example.com/a.jpg", "remote_media_refused"),
    ],
)
def test_broken_or_remote_image_urls_are_refused(url, code):
    part = {"type": "image_url", "image_url": {"url": url}}
    assert _refusal(_body(part)).code == code


def test_remote_media_from_an_allowed_host_passes():
    part = {"type": "image_url", "image_url": {"url": "https://cdn.example/a.jpg"}}
    check_media(parse_chat(json.dumps(_body(part)).encode()), LIMITS, ["cdn.example"])


def test_an_image_past_pillows_own_limit_is_a_400():
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, "PNG")
    refused = _refusal(_body(_image_part(buffer.getvalue(), "image/png")))
    assert refused.status == 400 and refused.code == "invalid_media"


def test_a_large_jpeg_is_sized_from_its_head():
    data = _jpeg((2000, 1500))
    refused = _refusal(_body(_image_part(data)))
    assert "2000x1500" in refused.message


def test_videos_are_checked_frame_by_frame():
    check_media(parse_chat(json.dumps(_body(_video_part([_jpeg((96, 64))] * 4))).encode()),
                LIMITS, [])  # fmt: skip
    too_many = _refusal(_body(_video_part([_jpeg((16, 16))] * (LIMITS.max_video_frames + 1))))
    assert too_many.code == "media_too_large" and "frame count" in too_many.message
    too_big = _refusal(_body(_video_part([_jpeg((4000, 4000))])))
    assert too_big.code == "media_too_large"
    assert _refusal(_body(_video_part([_jpeg((16, 16)), b""]))).code == "invalid_media"
    mixed = _refusal(_body(_video_part([_jpeg((16, 16)), _jpeg((32, 16))])))
    assert "differ" in mixed.message
    empty = {"type": "video_url", "video_url": {"url": "data:video/jpeg;base64,"}}
    assert _refusal(_body(empty)).code == "invalid_media"
    mp4 = {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}}
    assert _refusal(_body(mp4)).code == "unsupported_media"


def test_limits_derive_from_hints_and_a_profile_overrides_them():
    assert LIMITS.max_image_pixels == 16 * 56 * 56 * 4
    chosen = Limits.from_hints({}, max_image_pixels=10, max_video_frames=None)
    assert chosen.max_image_pixels == 10 and chosen.max_video_frames == 32


def test_profiles_name_only_fields_the_gateway_refuses():
    data = load_profile("tiny-cpu").model_dump(mode="json")
    Profile.model_validate({**data, "allowed_request_fields": ["chat_template"]})
    with pytest.raises(ValueError, match="not fields the gateway refuses"):
        Profile.model_validate({**data, "allowed_request_fields": ["temperature"]})


def test_every_supported_field_is_typed():
    assert "chat_template" in ChatRequest.model_fields
    assert ChatRequest.model_config["extra"] == "forbid"


def test_the_frame_count_is_reported_and_one_request_has_one():
    """The gateway admits videos by frame count (server/gateway/lanes.py); so one request's
    videos must share one."""
    four = parse_chat(json.dumps(_body(_video_part([_jpeg((16, 16))] * 4))).encode())
    assert check_media(four, LIMITS, []) == 4
    assert check_media(parse_chat(json.dumps(_body()).encode()), LIMITS, []) == 0
    frame = _jpeg((16, 16))
    parts = [_video_part([frame] * 2), _video_part([frame] * 3), TEXT]
    two_videos = {"model": "m", "messages": [{"role": "user", "content": parts}]}
    refused = _refusal(two_videos)
    assert refused.code == "invalid_media" and "one frame count" in refused.message


def test_tiny_cpu_takes_and_refuses_the_pixels_the_gpu_profiles_do():
    """The stand-ins' tiny media hints would derive 0.2 MP an image: every real photo refused."""

    def pixel_limits(profile: str) -> dict[str, tuple[int, int, int]]:
        found = {}
        for model in load_profile(profile).models:
            limits = Limits.from_hints(model.media.model_dump(), **model.limits.model_dump())
            found[model.role] = (limits.max_image_pixels, limits.max_frame_pixels,
                                 limits.max_request_pixels)  # fmt: skip
        return found

    assert pixel_limits("tiny-cpu") == pixel_limits("h100-80gb")
    assert pixel_limits("tiny-cpu")["image"][0] >= 4000 * 3000  # a 12 MP photo, sent whole
