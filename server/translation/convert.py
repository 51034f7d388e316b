"""Hugging Face NLLB-200 -> a CTranslate2 folder the translator loads, proven by a translation.

A thin wrapper over CTranslate2's own converter (its quantization list, its ``force``), plus
what the runtime needs beside the weights (the sentencepiece model), a manifest, and a probe
sentence the converted model must translate. ``babelcap convert nllb`` writes to a folder the
user names; :func:`nllb_ct2_folder` converts a profile's NLLB once into babelcap's cache and
reuses it after. CTranslate2's converter needs transformers and torch (the ``convert`` extra, or
vLLM's stack): imported only when a conversion runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from babelcap.core import defaults
from babelcap.core.errors import ConfigurationError
from babelcap.server.hub import ResolvedModel, babelcap_cache_dir, is_hub_id, resolve

__all__ = [
    "MANIFEST",
    "QUANTIZATIONS",
    "convert_nllb",
    "convert_transformers",
    "is_ct2_folder",
    "nllb_ct2_folder",
]

log = logging.getLogger(__name__)

#: The record written beside every converted model.
MANIFEST = "babelcap-manifest.json"
#: Weight types CTranslate2 can write (its converter's own list).
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                 "bfloat16", "float32")  # fmt: skip
_SPM = "sentencepiece.bpe.model"
_PROBE = "A small dog is sleeping in the park."


def _converter(model: str, copy_files: list[str]) -> Any:
    """CTranslate2's Hugging Face converter. CTranslate2 4.8 passes ``dtype=`` to
    ``from_pretrained``; transformers before 4.56 (the 4.53 the CPU vLLM stack pins) only knows
    ``torch_dtype=``: the subclass renames that one argument and changes nothing else."""
    import ctranslate2.converters

    class Converter(ctranslate2.converters.TransformersConverter):  # type: ignore[misc]
        def load_model(self, model_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
            import transformers

            major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
            if (major, minor) < (4, 56) and "dtype" in kwargs:
                kwargs["torch_dtype"] = kwargs.pop("dtype")
            return model_class.from_pretrained(model_name_or_path, **kwargs)

    return Converter(model, copy_files=copy_files)


def convert_transformers(
    model: str | Path,
    output: Path,
    *,
    quantization: str = "int8",
    copy_files: list[str] | None = None,
    force: bool = False,
) -> Path:
    """Convert a Hugging Face model (hub id or folder) to a CTranslate2 folder at ``output``."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}"
        )
    converter = _converter(str(model), copy_files or [])
    return Path(converter.convert(str(output), quantization=quantization, force=force))


def is_ct2_folder(folder: Path) -> bool:
    """Whether ``folder`` already holds a CTranslate2 model (its ``model.bin`` and vocabulary)."""
    return (folder / "model.bin").is_file() and any(folder.glob("shared_vocabulary.*"))


def _check_model(model: str) -> tuple[dict[str, Any], Path | None]:
    """The model's config (local folder, hub cache, or hub), or a clear error."""
    folder = Path(model).expanduser()
    if not folder.exists() and is_hub_id(model):
        # Not cached: transformers may still fetch it below.
        with contextlib.suppress(ConfigurationError):
            folder = resolve(model).path
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
            "download it first (babelcap models pull, or huggingface-cli download) and pass "
            "the folder"
        ) from error
    return loaded.to_dict(), None


def _free_bytes(path: Path) -> int:
    existing = path
    while not existing.exists():
        existing = existing.parent
    return shutil.disk_usage(existing).free


def convert_nllb(
    model: str,
    output: Path,
    *,
    quantization: str = "int8",
    force: bool = False,
    source: str | None = None,
) -> dict[str, Any]:
    """Convert ``model`` (an NLLB folder or hub id) to CTranslate2 at ``output``, prove it
    translates, and write the manifest; returns the manifest. ``source`` is the name the
    manifest records (default: ``model``)."""
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
    log.info("converting %s to %s (%s)", source or model, output, quantization)
    convert_transformers(
        str(folder or model), output, quantization=quantization, copy_files=[_SPM], force=True
    )
    probe = _prove(output)
    import ctranslate2

    manifest = {
        "source_model": source or model,
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
    from babelcap.server.translation.engine import TranslationEngine, TranslationSettings

    async def run() -> str:
        engine = TranslationEngine(TranslationSettings(model=output))
        try:
            result = await engine.translate([_PROBE], ["fra_Latn"])
        finally:
            await engine.aclose()
        return result.texts["fra_Latn"][0]

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        translated = asyncio.run(run())
    else:
        # Called from async code (serve's start-up): the probe gets a loop of its own.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            translated = pool.submit(asyncio.run, run()).result()
    if not translated.strip():
        raise ConfigurationError(f"the converted model at {output} translated the probe to nothing")
    return {"eng_Latn": _PROBE, "fra_Latn": translated}


def _revision(folder: Path | None) -> str | None:
    """The hub commit a snapshot folder came from, when the path says so."""
    if folder is not None and folder.parent.name == "snapshots":
        return folder.resolve().name
    return None


def _quantization(compute_type: str) -> str:
    if compute_type in ("default", "auto"):
        return defaults.NLLB_QUANTIZATION
    if compute_type not in QUANTIZATIONS:
        raise ConfigurationError(
            f"cannot convert NLLB for compute type {compute_type!r}: choose one of "
            f"{', '.join(QUANTIZATIONS)} (or default)"
        )
    return compute_type


def _cache_key(resolved: ResolvedModel, quantization: str) -> str:
    """``<org>--<name>--<revision>--<quantization>``; a local folder's revision is a digest of
    its path and its files' sizes and times, so an edited folder is converted again."""
    if resolved.repo_id is not None and resolved.revision is not None:
        return "--".join([*resolved.repo_id.split("/"), resolved.revision, quantization])
    digest = hashlib.sha256(str(resolved.path).encode())
    for file in sorted(p for p in resolved.path.iterdir() if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return "--".join(["local", resolved.path.name, digest.hexdigest()[:12], quantization])


def nllb_ct2_folder(
    ref: str | Path,
    compute_type: str = "default",
    *,
    profile: str | None = None,
    cache_root: Path | None = None,
) -> Path:
    """The CTranslate2 folder to serve for an NLLB reference, converting it once if needed.

    ``ref`` may be a CTranslate2 folder (returned as it is), a Hugging Face NLLB folder, or a
    hub id found in the Hugging Face cache (see :func:`babelcap.server.hub.resolve`; a missing
    one is a :class:`ConfigurationError` naming ``babelcap models pull``). The conversion goes
    to ``<cache_root or babelcap cache>/ct2/<org>--<name>--<revision>--<quantization>``,
    written under a temporary name and renamed when proven, so a crash never leaves a folder
    that looks done; later calls reuse it. ``compute_type`` is the translator's (``default``:
    int8). Blocking (a conversion takes a minute for the 600M model): from async code, call it
    through ``asyncio.to_thread``."""
    folder = Path(str(ref)).expanduser()
    if folder.is_dir() and is_ct2_folder(folder):
        return folder.resolve()
    resolved = resolve(ref, profile=profile)
    if is_ct2_folder(resolved.path):
        return resolved.path
    quantization = _quantization(compute_type)
    root = (cache_root or babelcap_cache_dir()) / "ct2"
    final = root / _cache_key(resolved, quantization)
    if (final / MANIFEST).is_file():
        return final
    if final.exists():
        raise ConfigurationError(
            f"{final} exists but holds no {MANIFEST}: it was not written by babelcap; "
            "remove it and start again"
        )
    root.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=root))
    temporary.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users
    try:
        convert_nllb(
            str(resolved.path), temporary, quantization=quantization, force=True, source=str(ref)
        )
        try:
            os.rename(temporary, final)
        except OSError:
            if not (final / MANIFEST).is_file():
                raise
            log.info("%s was converted meanwhile by another process; using it", final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    log.info("converted %s to %s", ref, final)
    return final
