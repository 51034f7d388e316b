"""Training-data layouts: ``--format hf`` (a Hugging Face ``imagefolder`` / ``videofolder``) and
``--format webdataset`` (tar shards).

Both carry, per processed medium, one column per task (``description``, ``sentiment``, ...; the
tags task as a list of strings) and per task and language (``description_fra_Latn``), plus
``path``, ``kind``, ``model``, the media figures and ``seconds``. Failed records and media no
longer on disk are counted, not written.

- ``hf``: the media (hard links by default, else symbolic links or copies: ``--media``) under
  their names relative to the media's common folder, and ``metadata.jsonl`` whose ``file_name``
  is relative to it: ``datasets.load_dataset("imagefolder", data_dir=OUT)`` loads it as it is.
  A run with both kinds gets ``OUT/images`` (imagefolder) and ``OUT/videos`` (videofolder).
- ``webdataset``: ``OUT/shard-000000.tar``, ... with ``--shard-size`` samples each; a sample is
  ``<key>.<ext>`` (the medium's bytes), ``<key>.json`` (the columns) and ``<key>.txt`` (the English
  description), keys ``000000000``, ... in record order, as ``webdataset.WebDataset`` reads them.

The folder is built under a temporary name beside ``OUT`` and renamed into place when complete;
an existing ``OUT`` is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from babelcap.client.exports.source import Exported, Inventory, RecordSource
from babelcap.client.records import ResultRecord
from babelcap.core.errors import ConfigurationError

__all__ = ["MediaMode", "sample_columns", "write_hf", "write_webdataset"]

MediaMode = Literal["hardlink", "symlink", "copy"]
_MEDIA = ("size", "width", "height", "duration", "fps", "frame_count")


def sample_columns(record: ResultRecord, inventory: Inventory) -> dict[str, Any]:
    """The record's columns: the same keys for every record of ``inventory`` (None if absent)."""
    columns: dict[str, Any] = {"path": record.path, "kind": record.kind, "model": record.model}
    columns |= {key: record.media.get(key) for key in _MEDIA}
    for name, tags in inventory.tasks.items():
        task = record.tasks.get(name)
        if tags:
            columns[name] = task.tags if task and task.tags is not None else None
        else:
            columns[name] = task.text if task else None
    for name, language in inventory.translated():
        columns[f"{name}_{language}"] = record.translations.get(language, {}).get(name)
    columns["seconds"] = record.seconds
    return columns


@contextlib.contextmanager
def _staged_folder(output: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary folder beside ``output`` that becomes ``output`` when the block succeeds."""
    if output.exists() and not output.is_dir():
        raise ConfigurationError(f"--output {output} is a file; name a folder to write into")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise ConfigurationError(
            f"--output {output} already exists and is not empty; pass --overwrite to replace "
            "it, or name another folder"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = output.with_name(f".{output.name}.{os.getpid()}.old")
    if output.exists():
        os.replace(output, old)
    os.replace(staging, output)
    shutil.rmtree(old, ignore_errors=True)


def _place(medium: Path, target: Path, mode: MediaMode) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == "hardlink":
        try:
            os.link(medium, target)
            return
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    if mode == "symlink":
        target.symlink_to(medium.resolve())
        return
    shutil.copy2(medium, target)


def write_hf(
    source: RecordSource, output: Path, *, media: MediaMode = "hardlink", overwrite: bool = False
) -> Exported:
    """The ``imagefolder`` / ``videofolder`` (see the module docstring)."""
    inventory = source.inventory()
    kinds = [k for k in ("image", "video") if inventory.ok.get(k)]
    result = Exported(0, [output])
    with _staged_folder(output, overwrite) as staging, contextlib.ExitStack() as stack:
        folders = {k: staging / f"{k}s" if len(kinds) > 1 else staging for k in kinds}
        for folder in folders.values():
            folder.mkdir(exist_ok=True)
        metadata = {
            kind: stack.enter_context((folder / "metadata.jsonl").open("w", encoding="utf-8"))
            for kind, folder in folders.items()
        }
        for record in source:
            if record.status != "ok" or record.kind not in folders:
                result.skipped["failed"] += 1
                continue
            medium = source.media_path(record)
            if not medium.is_file():
                result.skipped["medium missing"] += 1
                continue
            name = source.relative_name(record)
            if name.name == "metadata.jsonl" or (folders[record.kind] / name).exists():
                result.skipped["name taken"] += 1
                continue
            _place(medium, folders[record.kind] / name, media)
            row = {"file_name": name.as_posix(), **sample_columns(record, inventory)}
            metadata[record.kind].write(json.dumps(row, ensure_ascii=False) + "\n")
            result.count += 1
    return result


def _extension(medium: Path) -> str:
    suffix = medium.suffix.lower().lstrip(".")
    return suffix if suffix.isalnum() else "bin"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_webdataset(
    source: RecordSource, output: Path, *, shard_size: int = 1000, overwrite: bool = False
) -> Exported:
    """The tar shards (see the module docstring)."""
    if shard_size < 1:
        raise ConfigurationError(f"--shard-size must be at least 1, not {shard_size}")
    inventory = source.inventory()
    result = Exported(0, [output])
    now = time.time()
    with _staged_folder(output, overwrite) as staging:
        tar: tarfile.TarFile | None = None
        try:
            for record in source:
                if record.status != "ok":
                    result.skipped["failed"] += 1
                    continue
                medium = source.media_path(record)
                if not medium.is_file():
                    result.skipped["medium missing"] += 1
                    continue
                if result.count % shard_size == 0:
                    if tar is not None:
                        tar.close()
                    shard = staging / f"shard-{result.count // shard_size:06d}.tar"
                    # One shard stays open across samples; the finally below closes it.
                    tar = tarfile.open(  # noqa: SIM115
                        shard, "w", format=tarfile.PAX_FORMAT, dereference=True
                    )
                assert tar is not None
                key = f"{result.count:09d}"
                tar.add(medium, arcname=f"{key}.{_extension(medium)}", recursive=False)
                columns = {"file_name": Path(record.path).name}
                columns |= sample_columns(record, inventory)
                text = json.dumps(columns, ensure_ascii=False).encode("utf-8")
                _add_bytes(tar, f"{key}.json", text, now)
                description = record.tasks.get("description")
                if description is not None:
                    _add_bytes(tar, f"{key}.txt", description.text.encode("utf-8"), now)
                result.count += 1
        finally:
            if tar is not None:
                tar.close()
    return result
