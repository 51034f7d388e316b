"""``babelcap bench baseline``: the original pipeline (benchmarks/original_pipeline.py) in this
process against babelcap's measured levels, on the same files, with both sides' answers
checked against the colours the stand-ins are trained to name.

The original side runs after babelcap's server has stopped, so that on a GPU the two never
share the card's memory.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from babelcap.benchmarks.metrics import distribution
from babelcap.benchmarks.original_pipeline import (
    AssetAnswer,
    OriginalPipeline,
    PipelineConfig,
    Quantization,
)
from babelcap.core import defaults
from babelcap.core.errors import ConfigurationError

__all__ = [
    "answer_correct",
    "baseline_config",
    "baseline_media",
    "compare",
    "correctness",
    "media_key",
    "run_original",
    "wrong_answers",
]

_COLOUR = re.compile(r"[a-z]+")


def media_key(path: str | Path, folder: Path | None) -> str:
    """How both sides name one asset: its path under the media folder (``a/x.jpg`` for
    ``--media DIR`` with subfolders, ``image-0000.jpg`` for the generated media), or its file
    name when it is not under ``folder``."""
    if folder is not None:
        try:
            return Path(path).resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            pass
    return Path(path).name


def baseline_media(folder: Path, keys: list[str]) -> list[Path]:
    """The files the original pipeline gets: exactly those babelcap captioned (their
    :func:`media_key`), in a stable order; ConfigurationError when one is not in ``folder``."""
    paths = [folder / key for key in sorted(keys)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigurationError(
            f"bench baseline: babelcap captioned files the original pipeline cannot find in "
            f"{folder}: {', '.join(missing[:5])}"
        )
    return paths


def wrong_answers(baseline: dict[str, Any]) -> str | None:
    """Why ``babelcap bench baseline`` fails (a non-zero exit), or None: either side named the
    wrong colours of any checked asset. Your own media (nothing to check) never fails here."""
    wrong = {side: baseline[side]["correctness"]["wrong"] for side in ("original", "babelcap")}
    if not any(wrong.values()):
        return None
    return "bench baseline: wrong answers: " + "; ".join(
        f"{side} {', '.join(names)}" for side, names in wrong.items() if names
    )


def answer_correct(kind: str, text: str, colours: list[str]) -> bool:
    """Does the answer name the asset's colours? An image: its one colour and no other; a
    video: its segments' colours, in order (tests/integration/test_tiny_vllm.py's rule)."""
    from babelcap.core.artifacts import STAND_IN_COLOURS

    named = [word for word in _COLOUR.findall(text.lower()) if word in STAND_IN_COLOURS]
    if kind == "image":
        return set(named) == set(colours[:1])
    return [c for i, c in enumerate(named) if i == 0 or named[i - 1] != c] == colours


def correctness(answers: dict[str, str], kinds: dict[str, str],
                expected: dict[str, list[str]] | None) -> dict[str, Any]:  # fmt: skip
    """Per file name, whether its description is right; None figures when nothing is known
    to check against (your own media)."""
    if expected is None:
        return {"checked": 0, "correct": None, "all_correct": None, "wrong": []}
    checked = {name: answer_correct(kinds[name], text, expected[name])
               for name, text in answers.items() if name in expected}  # fmt: skip
    wrong = sorted(name for name, ok in checked.items() if not ok)
    return {"checked": len(checked), "correct": len(checked) - len(wrong),
            "all_correct": bool(checked) and not wrong, "wrong": wrong}  # fmt: skip


def baseline_config(settings: Any, frames: int) -> PipelineConfig:
    """The models, quantization and device of the baseline: the ``--baseline-*`` settings, or
    what ``--profile`` serves (the committed stand-ins in fp32 on CPU for tiny-cpu)."""
    from babelcap.core.artifacts import stand_in
    from babelcap.server.profiles import load_profile

    profile = load_profile(settings.profile)
    models = {m.role: m.backend for m in profile.models}
    tiny = not profile.hardware.gpu
    quantization: Quantization = "fp32"
    image = models.get("image")
    if image is not None and not tiny:
        nf4 = "bitsandbytes" in image.extra_args
        quantization = "nf4" if nf4 else "fp8" if "fp8" in str(image.model).lower() else "bf16"
    elif image is not None and image.dtype == "bfloat16":
        quantization = "bf16"
    translation = None
    if profile.translation is not None:
        translation = stand_in("nllb") if tiny else profile.translation.model
    return PipelineConfig(
        image_model=settings.baseline_image_model or (image.model if image else None),
        video_model=settings.baseline_video_model
        or (models["video"].model if "video" in models else None),
        translation_model=settings.baseline_translation_model or translation,
        quantization=settings.baseline_quantization or quantization,
        device=settings.baseline_device or ("cpu" if tiny else "cuda"),
        frames=frames,
        tasks=tuple(settings.tasks),
        languages=tuple(language for language in settings.languages if language),
    )


def profile_frames(profile_name: str) -> int:
    """The frames a video gets from the profile's video model (as babelcap's client sends)."""
    from babelcap.server.profiles import load_profile

    for model in load_profile(profile_name).models:
        if model.role == "video" and model.media.frames:
            return int(model.media.frames)
    return defaults.VIDEO_FRAMES


def run_original(config: PipelineConfig, paths: list[Path], warmup: int) -> dict[str, Any]:
    """The original pipeline over ``paths``, one asset at a time, after warming each model
    with an asset of its kind; returns its figures and answers."""
    from babelcap.benchmarks.original_pipeline import VIDEO_SUFFIXES

    pipeline = OriginalPipeline(config)
    kinds = sorted({"video" if p.suffix.lower() in VIDEO_SUFFIXES else "image" for p in paths})
    load_s = pipeline.load(tuple(kinds))
    if warmup:
        for kind in kinds:
            first = next(p for p in paths if (p.suffix.lower() in VIDEO_SUFFIXES) == (
                kind == "video"))  # fmt: skip
            pipeline.caption(first)
    answers: list[AssetAnswer] = []
    for path in paths:
        sys.stderr.write(f"bench baseline: original pipeline {path.name}\n")
        answers.append(pipeline.caption(path))
    wall = sum(a.seconds for a in answers) or float("nan")
    tokens = sum(a.output_tokens for a in answers)
    models = {"image": str(config.image_model), "video": str(config.video_model),
              "translation": str(config.translation_model)}  # fmt: skip
    return {
        "pipeline": "transformers generate, one asset/task/language at a time",
        "quantization": config.quantization,
        "device": config.device,
        "attention": pipeline.attention,
        "attention_reason": pipeline.attention_reason,
        "models": models,
        "frames_per_video": config.frames,
        "load_s": load_s,
        "assets": len(answers),
        "wall_s": wall,
        "output_tokens": tokens,
        "assets_per_min": 60 * len(answers) / wall,
        "output_tokens_per_s": tokens / wall,
        "asset_latency_s": distribution(a.seconds for a in answers).__dict__,
        "asset_inference_s": distribution(a.inference_s for a in answers).__dict__,
        "asset_translation_s": distribution(a.translation_s for a in answers).__dict__,
        "per_asset": [a.__dict__ for a in answers],
    }


def compare(original: dict[str, Any], profile: dict[str, Any],
            expected: dict[str, list[str]] | None,
            folder: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """The side-by-side section: babelcap's best level against the original, both checked.
    Assets are matched by :func:`media_key` under ``folder``."""
    best = max(profile["levels"], key=lambda lv: lv["client"]["assets_per_min"])
    client = best["client"]
    names = {media_key(a["path"], folder): a for a in original["per_asset"]}
    kinds = {name: a["kind"] for name, a in names.items()}
    original_check = correctness(
        {name: a["texts"].get("description", "") for name, a in names.items()}, kinds, expected
    )
    mine = best.pop("answers")
    for level in profile["levels"]:
        level.pop("answers", None)
    kinds.update({name: kind for name, (kind, _) in mine.items()})
    babelcap_check = correctness({n: text for n, (_, text) in mine.items()}, kinds, expected)
    same = sorted(mine) == sorted(names)
    single = [lv for lv in profile["levels"] if lv["concurrency"] == 1 and not lv["rate"]]
    return {
        "same_assets": same,
        "assets": sorted(names),
        "original": {**original, "correctness": original_check},
        "babelcap": {
            "profile": profile["name"],
            "concurrency": best["concurrency"],
            "assets": client["assets"],
            "errors": client["errors"],
            "assets_per_min": client["assets_per_min"],
            "output_tokens_per_s": client["output_tokens_per_s"],
            "asset_latency_s": client["asset_latency_s"],
            "asset_latency_c1_p50_s": (
                single[0]["client"]["asset_latency_s"]["p50"] if single else None
            ),
            "correctness": babelcap_check,
        },
        "ratio": {
            "assets_per_min": client["assets_per_min"] / original["assets_per_min"],
            "output_tokens_per_s": client["output_tokens_per_s"] / original["output_tokens_per_s"],
            "asset_latency_p50": (
                original["asset_latency_s"]["p50"] / client["asset_latency_s"]["p50"]
                if client["asset_latency_s"]["p50"]
                else None
            ),
        },
        "both_correct": bool(original_check["all_correct"] and babelcap_check["all_correct"]),
    }
