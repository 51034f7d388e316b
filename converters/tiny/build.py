"""Build the tiny stand-ins into ``converters/tiny/artifacts`` and verify the committed copies.

Each model folder gets a ``BUILD.json``: the builder's settings, how far training got (steps,
loss, held-out exact-answer rate), and the SHA-256 of every file, so ``babelcap tiny check`` can
tell a committed artifact that no longer matches its record.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from babelcap.converters.tiny.common import ARTIFACTS, file_digests, write_build_record
from babelcap.core.errors import EXIT_FAILED, EXIT_OK
from babelcap.core.settings import REPEATABLE, split_list

__all__ = ["MODEL_NAMES", "ModelName", "TinySettings", "build_models", "check_models"]

log = logging.getLogger(__name__)

ModelName = Literal["mllama", "llava-next-video", "nllb"]
#: Artifact folders, in build order. The NLLB build also writes ``nllb-ct2``.
MODEL_NAMES: tuple[ModelName, ...] = typing.get_args(ModelName)


class TinySettings(BaseSettings):
    """``babelcap tiny build|check`` (also as ``BABELCAP_TINY_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_TINY_", extra="forbid")

    only: Annotated[list[ModelName], NoDecode] = Field(
        [], description="only this model (repeat for several; default: all)",
        json_schema_extra=REPEATABLE,
    )  # fmt: skip
    output: Path | None = Field(
        None, description="folder to write into (default: the committed artifacts)"
    )

    @field_validator("only", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return split_list(value)


def _build_one(name: str, root: Path) -> None:
    folder = root / name
    if folder.exists():
        shutil.rmtree(folder)
    record: dict[str, Any]
    if name == "mllama":
        from babelcap.converters.tiny import mllama

        record = mllama.build(folder)
    elif name == "llava-next-video":
        from babelcap.converters.tiny import llava_next_video

        record = llava_next_video.build(folder)
    else:
        from babelcap.converters.tiny import nllb

        ct2 = root / "nllb-ct2"
        if ct2.exists():
            shutil.rmtree(ct2)
        record = nllb.build(folder, ct2_output=ct2)
        write_build_record(
            ct2, {"source": "nllb", "quantization": "int8", **_subset(record, "ct2")}
        )
    write_build_record(folder, record)
    log.info("built %s: %s", name, json.dumps(_subset(record, ""), ensure_ascii=False))


def _subset(record: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k.startswith(prefix) and not isinstance(v, dict)}


def build_models(only: Sequence[str] | None = None, *, output: Path | None = None) -> int:
    """Retrain the named models (default: all) into ``output`` (default: the committed folder)."""
    root = output or ARTIFACTS
    root.mkdir(parents=True, exist_ok=True)
    for name in only or MODEL_NAMES:
        _build_one(name, root)
    return EXIT_OK


def check_models(only: Sequence[str] | None = None, root: Path | None = None) -> int:
    """Compare each artifact folder with its ``BUILD.json``; print what differs; 0 if all match."""
    root = root or ARTIFACTS
    names = list(only or MODEL_NAMES)
    if "nllb" in names:
        names.append("nllb-ct2")
    failures = 0
    for name in names:
        folder = root / name
        record_file = folder / "BUILD.json"
        if not record_file.exists():
            sys.stdout.write(f"{name}: missing {record_file}; run 'babelcap tiny build'\n")
            failures += 1
            continue
        recorded = json.loads(record_file.read_text(encoding="utf-8"))["files"]
        actual = file_digests(folder)
        changed = sorted(
            path
            for path in recorded.keys() | actual.keys()
            if recorded.get(path) != actual.get(path)
        )
        if changed:
            failures += 1
            sys.stdout.write(f"{name}: differs from BUILD.json in {', '.join(changed)}\n")
        else:
            sys.stdout.write(f"{name}: ok ({len(actual)} files)\n")
    return EXIT_FAILED if failures else EXIT_OK
