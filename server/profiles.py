"""Serving profiles: which models babelcap serves, and with which vLLM arguments.

A profile is validated data: built-in ones below, or a user's JSON file (``--config FILE``) of
the same shape. Every vLLM argument a model needs comes from here, never from code paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from babelcap.core import defaults
from babelcap.core.errors import ConfigurationError
from babelcap.server.translation.engine import TranslationSettings
from babelcap.server.vllm_process import VllmBackend

__all__ = [
    "BUILTIN_PROFILES",
    "DEFAULT_PROFILE",
    "PROFILE_NAMES",
    "MediaHints",
    "Profile",
    "TranslationBackend",
    "load_profile",
]

#: The profile ``babelcap serve`` starts when given neither ``--profile`` nor ``--config``.
DEFAULT_PROFILE = "tiny-cpu"


class TranslationBackend(TranslationSettings):
    """The CTranslate2 NLLB model the gateway hosts in-process: the translator's own settings
    (:class:`TranslationSettings`), plus the id it is listed under."""

    name: str = Field(defaults.TRANSLATION_MODEL_ID, description="id listed by /v1/models")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what the profile says: a profile is data, not read from the environment."""
        return (init_settings,)

    def engine_settings(self) -> TranslationSettings:
        """The engine's settings: what the profile sets, the rest from the environment
        (``BABELCAP_TRANSLATION_<FIELD>``) or the defaults, as for ``translation-server``."""
        return TranslationSettings(**self.model_dump(exclude={"name"}, exclude_unset=True))


class MediaHints(BaseModel):
    """What the model's processor really uses, so clients send no more pixels than it sees.

    Listed by ``/v1/models`` (under ``babelcap.media``); ``babelcap caption`` follows them.
    """

    model_config = ConfigDict(extra="forbid")

    tile_size: int = Field(
        defaults.IMAGE_TILE_SIZE, gt=0, description="image tile side in pixels (Mllama: 560)"
    )
    max_tiles: int = Field(
        defaults.IMAGE_MAX_TILES, gt=0, description="most tiles per image (Mllama: 4)"
    )
    frames: int = Field(
        defaults.VIDEO_FRAMES, gt=0, description="video frames per clip (LLaVA-NeXT-Video: 8)"
    )
    frame_size: int = Field(
        defaults.VIDEO_FRAME_SIZE, gt=0, description="video frame short side (LLaVA-NeXT: 336)"
    )


class ServedModel(BaseModel):
    """A vision model: the vLLM backend and the media kind it takes."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["image", "video"] = Field(description="images go to Mllama, videos to LLaVA")
    backend: VllmBackend
    media: MediaHints = Field(default_factory=MediaHints)


class Profile(BaseModel):
    """Everything `babelcap serve` starts."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    models: list[ServedModel] = Field(min_length=1)
    translation: TranslationBackend | None = None
    allowed_media_domains: list[str] = Field(
        default_factory=list,
        description="hosts whose http(s) media URLs requests may name; empty = data: URLs only",
    )
    startup_timeout_s: float = Field(
        defaults.STARTUP_TIMEOUT_S, gt=0, description="per backend, to /health"
    )

    def gpu_memory_fraction(self) -> float:
        """The share of GPU memory the vLLM backends will claim together."""
        total = 0.0
        for served in self.models:
            args = list(served.backend.extra_args)
            if "--gpu-memory-utilization" in args:
                total += float(args[args.index("--gpu-memory-utilization") + 1])
        return total

    @model_validator(mode="after")
    def _fits_one_gpu(self) -> Profile:
        if self.gpu_memory_fraction() > 0.95:
            raise ValueError(
                f"the models' --gpu-memory-utilization values add up to "
                f"{self.gpu_memory_fraction():.2f}; keep the sum at 0.95 or less on one GPU"
            )
        names = [m.backend.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique: {names}")
        return self


def _tiny_cpu(dtype: str = "float32") -> Profile:
    from babelcap.core.artifacts import stand_in
    from babelcap.server.vllm_process import tiny_cpu_backends

    image, video = tiny_cpu_backends(dtype)
    suffix = "" if dtype == "float32" else "-bf16"
    return Profile(
        name=f"tiny-cpu{suffix}",
        description=f"the committed tiny stand-ins on the CPU vLLM build in {dtype} "
        + ("(tests, CI, demo)" if not suffix else "(compare with tiny-cpu)"),
        models=[
            # The stand-ins' processors: 56 px tiles (at most 4); 2-4 frames of 64 px.
            ServedModel(role="image", backend=image, media=MediaHints(tile_size=56)),
            ServedModel(role="video", backend=video, media=MediaHints(frames=4, frame_size=64)),
        ],
        translation=TranslationBackend(name="tiny-nllb", model=stand_in("nllb-ct2")),
    )


def _mllama(name: str, model: str, memory: float, extra: tuple[str, ...] = ()) -> ServedModel:
    # vLLM 0.10.2 + Mllama: one leading image per prompt, small batches, eager mode.
    return ServedModel(
        role="image",
        backend=VllmBackend(
            name=name,
            model=Path(model),
            dtype="bfloat16",
            max_model_len=8192,
            max_num_seqs=16,
            enforce_eager=True,
            limit_mm_per_prompt='{"image": 1}',
            extra_args=("--gpu-memory-utilization", str(memory), *extra),
        ),
    )


def _llava_video(memory: float) -> ServedModel:
    return ServedModel(
        role="video",
        backend=VllmBackend(
            name="llava-next-video-7b",
            model=Path("/models/LLaVA-NeXT-Video-7B-hf"),
            dtype="bfloat16",
            max_model_len=8192,
            max_num_seqs=32,
            enforce_eager=False,
            limit_mm_per_prompt='{"video": 1}',
            extra_args=("--gpu-memory-utilization", str(memory)),
        ),
    )


_FP8 = "/models/Llama-3.2-11B-Vision-Instruct-FP8-dynamic"
_NF4 = "/models/Llama-3.2-11B-Vision-Instruct-nf4"
_BF16 = "/models/Llama-3.2-11B-Vision-Instruct"
_NLLB_GPU = TranslationBackend(
    model=Path("/models/nllb-200-distilled-600M-ct2"), device="cuda", compute_type="int8_float16"
)

BUILTIN_PROFILES: dict[str, Profile] = {
    "h100-80gb": Profile(
        name="h100-80gb",
        description="FP8-dynamic Llama 3.2 Vision + LLaVA-NeXT-Video + NLLB on one 80 GB GPU",
        models=[_mllama("llama-3.2-11b-vision-fp8", _FP8, 0.45), _llava_video(0.40)],
        translation=_NLLB_GPU,
    ),
    "gpu-24gb-image": Profile(
        name="gpu-24gb-image",
        description="FP8-dynamic Llama 3.2 Vision alone on a 24 GB card (Ada or newer for FP8)",
        models=[_mllama("llama-3.2-11b-vision-fp8", _FP8, 0.85)],
        translation=_NLLB_GPU,
    ),
    "gpu-24gb-video": Profile(
        name="gpu-24gb-video",
        description="LLaVA-NeXT-Video-7B alone on a 24 GB card",
        models=[_llava_video(0.85)],
        translation=_NLLB_GPU,
    ),
    "llama-vision-nf4": Profile(
        name="llama-vision-nf4",
        description="bitsandbytes NF4 Llama 3.2 Vision, for quantization comparisons",
        models=[
            _mllama(
                "llama-3.2-11b-vision-nf4",
                _NF4,
                0.85,
                ("--quantization", "bitsandbytes", "--load-format", "bitsandbytes"),
            )
        ],
    ),
    "llama-vision-bf16": Profile(
        name="llama-vision-bf16",
        description="bf16 Llama 3.2 Vision (needs about 22 GB of weights), the reference",
        models=[_mllama("llama-3.2-11b-vision-bf16", _BF16, 0.90)],
    ),
}

#: Every built-in profile's name; the tiny ones are built on demand (their models are found
#: where the package is installed).
PROFILE_NAMES = ("tiny-cpu", "tiny-cpu-bf16", *BUILTIN_PROFILES)


def load_profile(name: str | None = None, config: Path | None = None) -> Profile:
    """A built-in profile by name, or a JSON profile file; clear errors for either."""
    if config is not None:
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigurationError(f"cannot read profile {config}: {error}") from error
        try:
            return Profile.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'profile'}: {e['msg']}"
                for e in error.errors()
            )
            raise ConfigurationError(f"profile {config} is invalid: {problems}") from error
    chosen = name or DEFAULT_PROFILE
    if chosen == "tiny-cpu":
        return _tiny_cpu()
    if chosen == "tiny-cpu-bf16":
        return _tiny_cpu("bfloat16")
    if chosen not in BUILTIN_PROFILES:
        known = ", ".join(PROFILE_NAMES)
        raise ConfigurationError(f"unknown profile {chosen!r}: choose one of {known}")
    return BUILTIN_PROFILES[chosen]
