"""``babelcap export``: a results file as the original article's JSON, a CSV, or Parquet.

- ``seed-json``: ``{"descriptions": [...], "stats": {...}}`` as the original scripts wrote it
  (``description_english``, ``translation_<language>``, ``generated_tokens``, timings, video
  metadata), with babelcap's other tasks alongside; averages count only media that was actually
  processed (``ok`` records), never skipped or failed files.
- ``csv``: one row per asset, one column per task, language and figure.
- ``parquet``: the same rows with types (tags as a list); needs ``pyarrow``.
"""

from __future__ import annotations

import csv
import json
import statistics
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from babelcap.client.records import ResultRecord
from babelcap.client.store import atomic_path, read_records, write_json
from babelcap.core.errors import ConfigurationError
from babelcap.core.settings import POSITIONAL

__all__ = ["FORMATS", "ExportSettings", "Format", "export"]

Format = Literal["seed-json", "csv", "parquet"]
FORMATS: tuple[Format, ...] = typing.get_args(Format)
_SUFFIXES: dict[Format, str] = {"seed-json": ".json", "csv": ".csv", "parquet": ".parquet"}


class ExportSettings(BaseSettings):
    """``babelcap export`` (also as ``BABELCAP_EXPORT_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_EXPORT_", extra="forbid")

    results: Path = Field(
        description="the JSONL file written by babelcap caption", json_schema_extra=POSITIONAL
    )
    format: Format = Field(description="seed-json, csv or parquet")
    output: Path | None = Field(
        None, description="file to write (default: results name + .json/.csv/...)"
    )

    def destination(self) -> Path:
        """``output``, else the results file's name with the format's suffix."""
        return self.output or self.results.with_suffix(_SUFFIXES[self.format])


_VIDEO_KEYS = ("duration", "fps", "frame_count", "width", "height", "sampled_timestamps", "size")


def _seed_item(record: ResultRecord) -> dict[str, Any]:
    tasks = record.tasks
    timings = record.timings
    description = tasks.get("description")
    item: dict[str, Any] = {
        "file": Path(record.path).name,
        "path": record.path,
        "type": record.kind,
        "model": record.model,
        "description_english": description.text if description else None,
    }
    for language, texts in record.translations.items():
        if "description" in texts:
            item[f"translation_{language}"] = texts["description"]
        for name, text in texts.items():
            if name != "description":
                item[f"{name}_translation_{language}"] = text
    for name, task in tasks.items():
        if name == "description":
            continue
        item[name] = task.tags if task.tags is not None else task.text
    item |= {
        "generated_tokens": sum(t.completion_tokens for t in tasks.values()),
        "prompt_tokens": sum(t.prompt_tokens for t in tasks.values()),
        "preprocessing_time": timings.get("prepare_s"),
        "inference_time": timings.get("inference_s"),
        "translation_time": timings.get("translation_s"),
        "total_time": record.seconds,
    }
    if record.kind == "video":
        item["video_metadata"] = {key: record.media.get(key) for key in _VIDEO_KEYS}
    return item


def _seed_json(records: list[ResultRecord], summary: dict[str, Any] | None) -> dict[str, Any]:
    done = [r for r in records if r.status == "ok"]
    times = [r.seconds for r in done]
    temperatures = sorted(
        {t.temperature for r in done for t in r.tasks.values() if t.temperature is not None}
    )
    stats = {
        "model": ", ".join(sorted({r.model for r in done if r.model})) or None,
        "temperature": temperatures[0] if len(temperatures) == 1 else temperatures or None,
        "total_batch_time": summary["seconds"] if summary else round(sum(times), 3),
        "count": len(done),
        "average_time": round(statistics.fmean(times), 3) if times else None,
        "errors": len(records) - len(done),
        "generated_tokens": sum(_seed_item(r)["generated_tokens"] for r in done),
    }
    return {"descriptions": [_seed_item(r) for r in done], "stats": stats}


def _row(record: ResultRecord) -> dict[str, Any]:
    media = record.media
    error = record.error
    row: dict[str, Any] = {
        "path": record.path,
        "kind": record.kind,
        "status": record.status,
        "error_kind": error.kind if error else None,
        "error_message": error.message if error else None,
        "model": record.model,
        "size": media.get("size"),
        "width": media.get("width"),
        "height": media.get("height"),
        "duration": media.get("duration"),
        "fps": media.get("fps"),
        "frame_count": media.get("frame_count"),
    }
    for name, task in record.tasks.items():
        row[f"{name}_text"] = task.text
        if task.tags is not None:
            row[name] = task.tags
        row[f"{name}_completion_tokens"] = task.completion_tokens
        row[f"{name}_ttft_s"] = task.ttft_s
        row[f"{name}_latency_s"] = task.latency_s
    for language, texts in record.translations.items():
        for name, text in texts.items():
            row[f"{name}_{language}"] = text
    row["seconds"] = record.seconds
    return row


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def export(results: Path, fmt: str, output: Path) -> int:
    """Write ``results`` as ``fmt`` to ``output``; returns the number of records exported."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not results.is_file():
        raise ConfigurationError(f"{results} is not a results file (from babelcap caption)")
    # A resumed run may have superseded records: the last one for a path wins.
    records = list({r.path: r for r in read_records(results)}.values())
    if fmt == "seed-json":
        summary_file = results.with_name(results.name + ".summary.json")
        summary = json.loads(summary_file.read_text("utf-8")) if summary_file.exists() else None
        write_json(output, _seed_json(records, summary))
        return len(records)
    rows = [_row(r) for r in records]
    columns = _columns(rows)
    if fmt == "csv":
        with (
            atomic_path(output) as temporary,
            temporary.open("w", encoding="utf-8", newline="") as handle,
        ):
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {k: "; ".join(v) if isinstance(v, list) else v for k, v in row.items()}
                )
        return len(records)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ConfigurationError(
            "Parquet export needs pyarrow: pip install 'babelcap[export]'"
        ) from error
    table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
    with atomic_path(output) as temporary:
        pq.write_table(table, temporary)
    return len(records)
