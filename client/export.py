"""``babelcap export``: a results file (or a folder of result shards) in another shape.

Every format streams the records (memory stays flat in their number) and writes atomically: a
file under a temporary name renamed when complete, a folder built beside its final name. The
formats live in ``client/exports/`` (see its ``__init__``); this module declares the settings
and picks the writer.
"""

from __future__ import annotations

import os
import tempfile
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from babelcap.client.exports.source import Exported, RecordSource
from babelcap.client.shards import fetch_shards
from babelcap.client.storage import is_uri, local_path
from babelcap.core.errors import ConfigurationError
from babelcap.core.settings import POSITIONAL

__all__ = ["FORMATS", "ExportSettings", "Exported", "Format", "export", "run_export"]

Format = Literal["seed-json", "csv", "parquet", "html", "captions", "hf", "webdataset"]
FORMATS: tuple[Format, ...] = typing.get_args(Format)
_SUFFIXES: dict[Format, str] = {
    "seed-json": ".json", "csv": ".csv", "parquet": ".parquet", "html": ".html",
    "hf": "-hf", "webdataset": "-wds",
}  # fmt: skip


class ExportSettings(BaseSettings):
    """``babelcap export`` (also as ``BABELCAP_EXPORT_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_EXPORT_", extra="forbid")

    results: str = Field(
        description="the JSONL file written by babelcap caption, or a folder of result shards "
        "(every *.jsonl under it), or a prefix of shards in a bucket (s3://bucket/out)",
        json_schema_extra=POSITIONAL,
    )
    format: Format = Field(description="what to write (see the formats above)")
    output: Path | None = Field(
        None,
        description="file or folder to write (default: the results name with .json, .csv, "
        ".parquet, .html, -hf or -wds; captions: beside each medium)",
    )
    media_root: Path | None = Field(
        None,
        description="folder that relative media paths in the records are relative to, and "
        "that dataset and caption-tree names are made relative to (default: the current "
        "folder; names relative to the media's common folder)",
    )
    task: str = Field("description", description="captions: the task whose text is written")
    language: str | None = Field(
        None, description="captions: a FLORES-200 code to write that translation (default: English)"
    )
    extension: Literal["txt", "caption"] = Field("txt", description="captions: file extension")
    overwrite: bool = Field(
        False, description="captions, hf, webdataset: replace existing captions or folder"
    )
    media: Literal["hardlink", "symlink", "copy"] = Field(
        "hardlink", description="hf: how media enter the folder (hard links fall back to copies)"
    )
    shard_size: int = Field(1000, ge=1, description="webdataset: samples per tar shard")
    thumbnail_size: int = Field(
        256, ge=32, le=1024, description="html: longest side of thumbnails, in pixels"
    )
    frames: int = Field(4, ge=1, le=16, description="html: frames shown per video")
    title: str | None = Field(None, description="html: the page title (default: results name)")

    def destination(self) -> Path | None:
        """``output``, else the results name with the format's suffix (None: beside the media)."""
        if self.output is not None or self.format == "captions":
            return self.output
        suffix = _SUFFIXES[self.format]
        # A bucket's prefix: the file goes to the current folder, named after the prefix.
        results = Path(self.results.rstrip("/").rsplit("/", 1)[-1]) if self.remote() \
            else Path(self.results)  # fmt: skip
        if suffix.startswith("."):
            return results.with_suffix(suffix)
        return results.with_name(results.stem + suffix)

    def remote(self) -> bool:
        """Whether ``results`` is a prefix in object storage."""
        return is_uri(self.results) and local_path(self.results) is None

    @field_validator("results", mode="before")
    @classmethod
    def _results(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value


def run_export(settings: ExportSettings) -> Exported:
    """Write ``settings.results`` in ``settings.format``."""
    if settings.remote():
        # The shards are fetched one at a time into a scratch folder, then read as a folder.
        with tempfile.TemporaryDirectory(prefix="babelcap-export-") as scratch:
            local = fetch_shards(settings.results, Path(scratch) / "results")
            update = {"results": str(local), "output": settings.destination()}
            return run_export(settings.model_copy(update=update))
    source = RecordSource(Path(settings.results), settings.media_root)
    output = settings.destination()
    fmt = settings.format
    if fmt == "captions":
        from babelcap.client.exports.captions import write_captions

        return write_captions(
            source, output, task=settings.task, language=settings.language,
            extension=settings.extension, overwrite=settings.overwrite,
        )  # fmt: skip
    assert output is not None
    if fmt == "seed-json":
        from babelcap.client.exports.seed import write_seed_json

        outputs = write_seed_json(source, output)
        return Exported(source.inventory().records, outputs)
    if fmt in ("csv", "parquet"):
        from babelcap.client.exports.tables import write_csv, write_parquet

        writer = write_csv if fmt == "csv" else write_parquet
        return Exported(writer(source, output), [output])
    if fmt == "hf":
        from babelcap.client.exports.datasets import write_hf

        return write_hf(source, output, media=settings.media, overwrite=settings.overwrite)
    if fmt == "webdataset":
        from babelcap.client.exports.datasets import write_webdataset

        return write_webdataset(
            source, output, shard_size=settings.shard_size, overwrite=settings.overwrite
        )
    from babelcap.client.exports.report import write_report

    return write_report(
        source, output, thumbnail_size=settings.thumbnail_size, frames=settings.frames,
        title=settings.title,
    )  # fmt: skip


def export(results: Path, fmt: str, output: Path | None = None, **options: Any) -> Exported:
    """Write ``results`` as ``fmt`` to ``output``; ``options`` are :class:`ExportSettings`
    fields (``task``, ``language``, ``overwrite`` ...)."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    settings = ExportSettings(results=results, format=fmt, output=output, **options)
    return run_export(settings)
