"""``babelcap convert nllb``: a Hugging Face NLLB-200 model -> a CTranslate2 folder babelcap serves.

Wraps CTranslate2's own converter (see :mod:`converters.ct2`); adds what the runtime needs next
to the weights (the sentencepiece model), a manifest, and a proof: the converted model must
translate a sentence before the conversion is reported as done.
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from babelcap.core.errors import ConfigurationError

__all__ = ["MANIFEST", "ConvertNllbSettings", "convert_nllb"]

log = logging.getLogger(__name__)

MANIFEST = "babelcap-manifest.json"
_SPM = "sentencepiece.bpe.model"
_PROBE = "A small dog is sleeping in the park."


class ConvertNllbSettings(BaseSettings):
    """``babelcap convert nllb`` (also as ``BABELCAP_CONVERT_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_CONVERT_", extra="forbid")

    model: str = Field(
        description="hub id or folder, e.g. a local copy of facebook/nllb-200-distilled-600M"
    )
    output: Path = Field(description="folder to write (must be empty)")
    quantization: str = Field(
        "int8", description="int8 (CPU), int8_float16 or float16 (GPU), float32, ..."
    )
    force: bool = Field(False, description="replace a non-empty --output")


def _check_model(model: str) -> tuple[dict[str, Any], Path | None]:
    """The model's config (local folder or hub cache), or a clear error."""
    folder = Path(model).expanduser()
    if folder.exists():
        config_file = folder / "config.json"
        if not config_file.exists():
            raise ConfigurationError(
                f"{folder} has no config.json: point --model at a Hugging Face NLLB folder"
            )
        config: dict[str, Any] = json.loads(config_file.read_text(encoding="utf-8"))
        return config, folder
    try:
        from transformers import AutoConfig

        loaded = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise ConfigurationError(
            f"model {model!r} is neither a folder nor a reachable Hugging Face id ({error}); "
            "download it first (huggingface-cli download) and pass the folder"
        ) from error
    return loaded.to_dict(), None


def _free_bytes(path: Path) -> int:
    existing = path
    while not existing.exists():
        existing = existing.parent
    return shutil.disk_usage(existing).free


def convert_nllb(
    model: str, output: Path, *, quantization: str = "int8", force: bool = False
) -> dict[str, Any]:
    """Convert and verify; returns the manifest written to ``output``."""
    # CTranslate2 is the convert extra's: imported here so the command line starts without it.
    from babelcap.converters.ct2 import QUANTIZATIONS, convert_transformers

    if quantization not in QUANTIZATIONS:
        raise ConfigurationError(
            f"unknown quantization {quantization!r}: choose one of {', '.join(QUANTIZATIONS)} "
            "(int8 for CPUs, int8_float16 or float16 for GPUs)"
        )
    config, folder = _check_model(model)
    architectures = config.get("architectures") or []
    if (
        config.get("model_type") != "m2m_100"
        and "M2M100ForConditionalGeneration" not in architectures
    ):
        raise ConfigurationError(
            f"{model} is a {config.get('model_type')!r} model, not NLLB/M2M100: "
            "pass an NLLB-200 checkpoint such as facebook/nllb-200-distilled-600M"
        )
    if folder is not None and not (folder / _SPM).exists():
        raise ConfigurationError(f"{folder} has no {_SPM}: NLLB's tokenizer model is needed")
    if output.exists() and any(output.iterdir()) and not force:
        raise ConfigurationError(f"{output} exists and is not empty: pass --force to replace it")
    if folder is not None:
        needed = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        needed += sum(p.stat().st_size for p in folder.glob("*.bin"))
        if _free_bytes(output) < needed:
            raise ConfigurationError(
                f"not enough disk space at {output}: about {needed / 2**20:.0f} MiB needed, "
                f"{_free_bytes(output) / 2**20:.0f} MiB free"
            )
    log.info("converting %s to %s (%s)", model, output, quantization)
    convert_transformers(model, output, quantization=quantization, copy_files=[_SPM], force=True)
    probe = _prove(output)
    import ctranslate2

    manifest = {
        "source_model": model,
        "revision": _revision(folder),
        "quantization": quantization,
        "ctranslate2_version": ctranslate2.__version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "probe": probe,
    }
    (output / MANIFEST).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest


def _prove(output: Path) -> dict[str, str]:
    """Translate one sentence with the converted model; raise if it cannot."""
    import asyncio

    from babelcap.server.translation import TranslationEngine, TranslationSettings

    async def run() -> str:
        engine = TranslationEngine(TranslationSettings(model=output))
        try:
            result = await engine.translate([_PROBE], ["fra_Latn"])
        finally:
            await engine.aclose()
        return result.texts["fra_Latn"][0]

    translated = asyncio.run(run())
    if not translated.strip():
        raise ConfigurationError(f"the converted model at {output} translated the probe to nothing")
    return {"eng_Latn": _PROBE, "fra_Latn": translated}


def _revision(folder: Path | None) -> str | None:
    """The hub commit a snapshot folder came from, when the path says so."""
    if folder is not None and folder.parent.name == "snapshots":
        return folder.resolve().name
    return None
