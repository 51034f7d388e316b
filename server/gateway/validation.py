"""Chat requests parsed into what babelcap supports, and their media checked, before any byte
reaches vLLM.

A body is parsed (pydantic's JSON parser: nesting is capped at 200 levels, NaN, Infinity, lone
surrogates and non-UTF-8 are refused) into :class:`ChatRequest`, whose models refuse unknown
fields by name; the fields in :data:`REFUSED_UNLESS_ALLOWED` make the backend run client code
or crash or starve it, so they are refused too unless a profile's ``allowed_request_fields``
names them. What was parsed is forwarded, re-serialized (:meth:`ChatRequest.forwarded`).

Media parts are checked by header only (:func:`check_media`): an image's size from Pillow's
``Image.open`` without loading it, each ``data:video/jpeg`` frame's JPEG header, against the
model's :class:`Limits`.
"""

from __future__ import annotations

import binascii
import io
import re
import string
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlparse

from PIL import Image
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)
from starlette.responses import Response

from babelcap.server.http_errors import openai_error

__all__ = [
    "REFUSED_UNLESS_ALLOWED",
    "ChatRequest",
    "Limits",
    "RequestRefused",
    "check_chat",
    "check_media",
    "parse_chat",
]

#: Fields vLLM accepts that babelcap refuses unless the profile's ``allowed_request_fields``
#: names them, and why.
REFUSED_UNLESS_ALLOWED: dict[str, str] = {
    "chat_template": "the backend renders client-sent Jinja (a loop can block it for seconds)",
    "chat_template_kwargs": "it is handed to the backend's template renderer",
    "mm_processor_kwargs": "it changes how the backend's processor expands media",
    "prompt_logprobs": "vLLM 0.9 crashes on it with media in the prompt",
    "truncate_prompt_tokens": "it fails inside the backend on multimodal prompts",
    "guided_json": "guided decoding compiles client grammars in the backend",
    "guided_regex": "guided decoding compiles client grammars in the backend",
    "guided_choice": "guided decoding compiles client grammars in the backend",
    "guided_grammar": "guided decoding compiles client grammars in the backend",
    "guided_decoding_backend": "guided decoding compiles client grammars in the backend",
    "guided_whitespace_pattern": "guided decoding compiles client grammars in the backend",
    "structural_tag": "guided decoding compiles client grammars in the backend",
    "response_format": "json_object and json_schema compile client grammars in the backend",
    "logit_bias": "unbounded per-token maps cost the backend per step",
    "logits_processors": "it names code for the backend to load",
    "use_beam_search": "beam search multiplies the backend's work per request",
    "best_of": "it multiplies the backend's work per request",
}


class RequestRefused(Exception):
    """A request babelcap will not forward: a 400 (or 404) naming the field and what to do."""

    def __init__(
        self,
        message: str,
        code: str = "invalid_request",
        param: str | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.param, self.status = message, code, param, status
        self.model = ""  # the served model it was for, once known (for the request metrics)

    def __reduce__(self) -> tuple[object, tuple[str, str, str | None, int, str]]:
        # Whole across a process boundary (big bodies are checked in a worker process).
        return _refused, (self.message, self.code, self.param, self.status, self.model)

    def response(self) -> Response:
        """The OpenAI-shaped error answer."""
        return openai_error(
            self.status, self.message, "invalid_request_error", self.code, param=self.param
        )


def _whole(value: object) -> object:
    """JSON has one number type: 1.0 is the integer 1 (as JSON Schema and OpenAI take it)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


#: An integer field: whole numbers only (1 and 1.0), never true or "1".
Whole = Annotated[int, BeforeValidator(_whole)]


def _refused(message: str, code: str, param: str | None, status: int, model: str) -> RequestRefused:
    refused = RequestRefused(message, code, param, status)
    refused.model = model
    return refused


class _Strict(BaseModel):
    # strict: "0.5" is not a number and true is not 1; NaN and Infinity are not numbers at all.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class VideoURL(_Strict):
    url: str


class VideoPart(_Strict):
    type: Literal["video_url"]
    video_url: VideoURL


UserPart = Annotated[TextPart | ImagePart | VideoPart, Field(discriminator="type")]


class SystemMessage(_Strict):
    role: Literal["system"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Strict):
    role: Literal["user"]
    content: str | Annotated[list[UserPart], Field(min_length=1)]
    name: str | None = None


class AssistantMessage(_Strict):
    role: Literal["assistant"]
    content: str | list[TextPart]
    name: str | None = None


Message = Annotated[SystemMessage | UserMessage | AssistantMessage, Field(discriminator="role")]


class StreamOptions(_Strict):
    include_usage: bool | None = None
    continuous_usage_stats: bool | None = None


class ChatRequest(_Strict):
    """The OpenAI chat request babelcap relays; every number finite and in range."""

    model: str
    messages: Annotated[list[Message], Field(min_length=1, max_length=256)]
    max_tokens: Annotated[Whole, Field(ge=1, le=1_000_000)] | None = None
    max_completion_tokens: Annotated[Whole, Field(ge=1, le=1_000_000)] | None = None
    min_tokens: Annotated[Whole, Field(ge=0, le=1_000_000)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    top_k: Annotated[Whole, Field(ge=-1, le=1_000)] | None = None
    min_p: Annotated[float, Field(ge=0, le=1)] | None = None
    seed: Annotated[Whole, Field(ge=-(2**63), lt=2**63)] | None = None
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: Annotated[Whole, Field(ge=1, le=4)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0, le=2)] | None = None
    ignore_eos: bool | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[Whole, Field(ge=0, le=20)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    # Refused unless the profile allows them (REFUSED_UNLESS_ALLOWED), relayed as parsed then.
    chat_template: JsonValue = None
    chat_template_kwargs: JsonValue = None
    mm_processor_kwargs: JsonValue = None
    prompt_logprobs: JsonValue = None
    truncate_prompt_tokens: JsonValue = None
    guided_json: JsonValue = None
    guided_regex: JsonValue = None
    guided_choice: JsonValue = None
    guided_grammar: JsonValue = None
    guided_decoding_backend: JsonValue = None
    guided_whitespace_pattern: JsonValue = None
    structural_tag: JsonValue = None
    response_format: JsonValue = None
    logit_bias: JsonValue = None
    logits_processors: JsonValue = None
    use_beam_search: JsonValue = None
    best_of: JsonValue = None

    @model_validator(mode="after")
    def _consistent(self) -> ChatRequest:
        most = self.max_completion_tokens or self.max_tokens
        if self.min_tokens is not None and most is not None and self.min_tokens > most:
            raise ValueError(f"min_tokens ({self.min_tokens}) is over max_tokens ({most})")
        return self

    def forwarded(self) -> bytes:
        """The request as vLLM gets it: what was parsed, re-serialized."""
        return self.model_dump_json(exclude_unset=True).encode()


_TAGS = {"system", "user", "assistant", "text", "image_url", "video_url"}


def _where(loc: tuple[int | str, ...]) -> str:
    """A field's dotted path, without the union branches pydantic adds to it."""
    kept: list[str] = []
    for i, part in enumerate(loc):
        after_index = i > 0 and isinstance(loc[i - 1], int)
        if isinstance(part, str) and (
            "[" in part
            or part in ("str", "int", "float", "bool")
            or (after_index and part in _TAGS)
        ):
            continue
        kept.append(str(part))
    return ".".join(kept)


def _refusal(error: ValidationError) -> RequestRefused:
    # The deepest error is the most specific one (a union of str and parts fails both ways).
    first = max(error.errors(include_url=False), key=lambda e: len(e["loc"]))
    loc = _where(first["loc"])
    kind = first["type"]
    if kind == "json_invalid":
        return RequestRefused(f"body is not valid JSON: {first['msg']}", "invalid_json")
    if kind == "extra_forbidden":
        return RequestRefused(
            f"unknown field {loc!r}: babelcap relays only the chat fields it supports "
            "(see the README's gateway section)",
            "unknown_field",
            loc,
        )
    if kind == "model_type" and not first["loc"]:
        return RequestRefused("body must be a JSON object", "invalid_type")
    return RequestRefused(f"{loc or 'body'}: {first['msg']}", "invalid_value", loc or None)


def parse_chat(raw: bytes, allowed: frozenset[str] = frozenset()) -> ChatRequest:
    """The chat request in ``raw``; :class:`RequestRefused` says what is wrong with it."""
    try:
        request = ChatRequest.model_validate_json(raw)
    except ValidationError as error:
        raise _refusal(error) from None
    for name in request.model_fields_set & REFUSED_UNLESS_ALLOWED.keys():
        if name not in allowed:
            raise RequestRefused(
                f"field {name!r} is refused: {REFUSED_UNLESS_ALLOWED[name]}; a profile may "
                "allow it in allowed_request_fields",
                "field_not_allowed",
                name,
            )
    return request


@dataclass(frozen=True)
class Limits:
    """How much media one request may send one model (pixels are width x height)."""

    max_image_pixels: int
    max_video_frames: int
    max_frame_pixels: int
    max_request_pixels: int

    @classmethod
    def from_hints(cls, hints: dict[str, int], **chosen: int | None) -> Limits:
        """Limits derived from a model's media hints (what its processor keeps), with room for
        clients that do not resize; ``chosen`` (a profile's values) wins where not None."""
        tile, tiles = hints.get("tile_size", 560), hints.get("max_tiles", 4)
        frames, side = hints.get("frames", 8), hints.get("frame_size", 336)
        seen = max(tile * tile * tiles, frames * side * side)
        derived = {
            "max_image_pixels": 16 * tile * tile * tiles,
            "max_video_frames": 4 * frames,
            "max_frame_pixels": 32 * side * side,
            "max_request_pixels": 32 * seen,
        }
        derived.update({k: v for k, v in chosen.items() if v is not None})
        return cls(**derived)


_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,", re.ASCII)
_IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/jpg": "JPEG", "image/png": "PNG",
                  "image/webp": "WEBP"}  # fmt: skip


#: Base64 characters of a payload decoded to read an image header (96 KiB: a JPEG's EXIF block
#: comes before its size); the rest is only checked to be base64, as decoding costs ~5 us/KiB.
_HEAD_CHARS = 128 * 1024
_BASE64 = (string.ascii_letters + string.digits + "+/").encode()
_UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _size(payload: str, expected: str, param: str) -> tuple[int, int]:
    """An image's (width, height) from its header, refusing payloads that are not base64 or
    not ``expected`` (Pillow's format name) images."""
    body = payload.rstrip("=")
    if not payload:
        raise RequestRefused(f"{param}: the data URL is empty", "invalid_media", param)
    if (
        len(payload) % 4
        or len(payload) - len(body) > 2
        or not body.isascii()
        or body.encode("ascii").translate(None, _BASE64)
    ):
        raise RequestRefused(f"{param}: the data URL is not valid base64", "invalid_media",
                             param)  # fmt: skip
    head = payload[:_HEAD_CHARS]
    try:
        return _header_size(binascii.a2b_base64(head, strict_mode=True), expected)
    except _UNREADABLE as error:
        problem: Exception = error
        if len(head) < len(payload):  # a header longer than the head: read it all
            try:
                return _header_size(binascii.a2b_base64(payload, strict_mode=True), expected)
            except _UNREADABLE as again:
                problem = again
    raise RequestRefused(f"{param}: not a readable {expected} image ({problem})",
                         "invalid_media", param)  # fmt: skip


def _header_size(data: bytes, expected: str) -> tuple[int, int]:
    with Image.open(io.BytesIO(data), formats=[expected]) as image:  # the header only
        width, height = image.size
        return width, height


def _over(param: str, what: str, value: int, limit: int) -> RequestRefused:
    return RequestRefused(
        f"{param}: {what} is {value}, over this model's limit of {limit}; resize it first "
        "(babelcap caption does), or raise the limit in the profile's model limits",
        "media_too_large",
        param,
    )


def _remote(url: str, allowed_hosts: list[str], param: str) -> None:
    try:
        host = urlparse(url).hostname
    except ValueError:
        host = None
    if host is None or host not in allowed_hosts:
        raise RequestRefused(
            f"remote media URL refused: {url[:200]}; send the media as a data: URL, or allow "
            "its host in the profile's allowed_media_domains",
            "remote_media_refused",
            param,
        )


def check_media(request: ChatRequest, limits: Limits, allowed_hosts: list[str]) -> int:
    """Refuse (:class:`RequestRefused`) media that is remote and not allowed, broken, of a kind
    the gateway cannot check, or over ``limits``; only headers are decoded. Returns the frame
    count of the request's videos (0: none), which must be one count: vLLM batches the videos
    of a step into one tensor (see :mod:`babelcap.server.gateway.lanes`)."""
    total = 0
    counts: set[int] = set()
    for m, message in enumerate(request.messages):
        if not isinstance(message, UserMessage) or isinstance(message.content, str):
            continue
        for p, part in enumerate(message.content):
            if isinstance(part, TextPart):
                continue
            param = f"messages.{m}.content.{p}.{part.type}"
            url = part.image_url.url if isinstance(part, ImagePart) else part.video_url.url
            found = _DATA_URL.match(url)
            if found is None:
                if url.startswith("data:"):
                    raise RequestRefused(f"{param}: expected data:<type>;base64,<data>",
                                         "invalid_media", param)  # fmt: skip
                _remote(url, allowed_hosts, param)
                continue
            mime, payload = found.group(1).lower(), url[found.end() :]
            if isinstance(part, ImagePart):
                if mime not in _IMAGE_FORMATS:
                    raise RequestRefused(f"{param}: {mime} is not taken; send JPEG, PNG or WebP",
                                         "unsupported_media", param)  # fmt: skip
                width, height = _size(payload, _IMAGE_FORMATS[mime], param)
                if width * height > limits.max_image_pixels:
                    pixels = f"{width}x{height}"
                    raise _over(param, f"the image's pixel count ({pixels})", width * height,
                                limits.max_image_pixels)  # fmt: skip
                total += width * height
            else:
                if mime != "video/jpeg":
                    raise RequestRefused(
                        f"{param}: {mime} is not taken; send videos as data:video/jpeg;base64, "
                        "with comma-separated JPEG frames",
                        "unsupported_media",
                        param,
                    )
                frames = payload.split(",")
                if len(frames) > limits.max_video_frames:
                    raise _over(param, "the frame count", len(frames), limits.max_video_frames)
                sizes = {_size(f, "JPEG", param) for f in frames}
                if len(sizes) > 1:
                    raise RequestRefused(f"{param}: frames differ in size: {sorted(sizes)}",
                                         "invalid_media", param)  # fmt: skip
                width, height = sizes.pop()
                if width * height > limits.max_frame_pixels:
                    raise _over(param, f"a frame's pixel count ({width}x{height})",
                                width * height, limits.max_frame_pixels)  # fmt: skip
                total += width * height * len(frames)
                counts.add(len(frames))
                if len(counts) > 1:
                    raise RequestRefused(
                        f"{param}: the videos of one request must have one frame count (they "
                        f"have {sorted(counts)}); send them in separate requests",
                        "invalid_media",
                        param,
                    )
            if total > limits.max_request_pixels:
                raise _over(param, "the request's pixel count", total, limits.max_request_pixels)
    return counts.pop() if counts else 0


def check_chat(
    raw: bytes, allowed: frozenset[str], limits: dict[str, Limits], hosts: list[str]
) -> tuple[str, bytes, bool, int]:
    """A chat body parsed and checked for one of the served models (``limits``' keys): (model,
    the body to forward, streamed?, its videos' frame count or 0), or :class:`RequestRefused`
    (404 for a model not served). A plain function of plain values, so that a worker process
    can run it."""
    request = parse_chat(raw, allowed)
    if request.model not in limits:
        raise RequestRefused(
            f"model {request.model!r} is not served here; GET /v1/models lists {', '.join(limits)}",
            "model_not_found",
            "model",
            404,
        )
    try:
        frames = check_media(request, limits[request.model], hosts)
    except RequestRefused as refused:
        refused.model = request.model
        raise
    return request.model, request.forwarded(), bool(request.stream), frames
