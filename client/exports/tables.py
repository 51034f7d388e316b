"""``--format csv`` and ``--format parquet``: one row per asset, one column per task, language and
figure. The columns come from the source's inventory (first pass), so rows stream out: CSV line
by line, Parquet in row groups of 2,000 with an explicit schema (tags as a list of strings)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from babelcap.client.exports.source import Inventory, RecordSource
from babelcap.client.records import ResultRecord
from babelcap.client.store import atomic_path
from babelcap.core.errors import ConfigurationError

__all__ = ["columns", "row", "write_csv", "write_parquet"]

_MEDIA = {"size": "int", "width": "int", "height": "int", "duration": "float", "fps": "float",
          "frame_count": "int"}  # fmt: skip
_BATCH = 2000


def columns(inventory: Inventory) -> dict[str, str]:
    """Column -> type (``str``, ``int``, ``float``, ``list``), in order."""
    types = {"path": "str", "kind": "str", "status": "str", "error_kind": "str",
             "error_message": "str", "model": "str", **_MEDIA}  # fmt: skip
    for name, tags in inventory.tasks.items():
        types[f"{name}_text"] = "str"
        if tags:
            types[name] = "list"
        types |= {f"{name}_completion_tokens": "int", f"{name}_ttft_s": "float",
                  f"{name}_latency_s": "float"}  # fmt: skip
    for name, language in inventory.translated():
        types[f"{name}_{language}"] = "str"
    types["seconds"] = "float"
    return types


def row(record: ResultRecord) -> dict[str, Any]:
    """The record's cells (columns it has no value for are absent)."""
    error = record.error
    cells: dict[str, Any] = {
        "path": record.path, "kind": record.kind, "status": record.status,
        "error_kind": error.kind if error else None,
        "error_message": error.message if error else None, "model": record.model,
    }  # fmt: skip
    cells |= {key: record.media.get(key) for key in _MEDIA}
    for name, task in record.tasks.items():
        cells[f"{name}_text"] = task.text
        if task.tags is not None:
            cells[name] = task.tags
        cells |= {f"{name}_completion_tokens": task.completion_tokens,
                  f"{name}_ttft_s": task.ttft_s, f"{name}_latency_s": task.latency_s}  # fmt: skip
    for language, texts in record.translations.items():
        for name, text in texts.items():
            cells[f"{name}_{language}"] = text
    cells["seconds"] = record.seconds
    return cells


def write_csv(source: RecordSource, output: Path) -> int:
    """The CSV (tags joined by ``; ``); returns the number of rows."""
    names = list(columns(source.inventory()))
    count = 0
    with atomic_path(output) as temporary, temporary.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        for record in source:
            cells = row(record)
            writer.writerow(
                {k: "; ".join(v) if isinstance(v, list) else v for k, v in cells.items()}
            )
            count += 1
    return count


def write_parquet(source: RecordSource, output: Path) -> int:
    """The Parquet file; returns the number of rows."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ConfigurationError(
            "Parquet export needs pyarrow: pip install 'babelcap[export]'"
        ) from error
    arrow = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(),
             "list": pa.list_(pa.string())}  # fmt: skip
    types = columns(source.inventory())
    schema = pa.schema([(name, arrow[kind]) for name, kind in types.items()])
    count = 0
    batch: list[dict[str, Any]] = []
    with atomic_path(output) as temporary, pq.ParquetWriter(temporary, schema) as writer:
        for record in source:
            cells = row(record)
            batch.append({name: _cast(cells.get(name), types[name]) for name in types})
            count += 1
            if len(batch) >= _BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch.clear()
        if batch or not count:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return count


def _cast(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "str":
        return str(value)
    return [str(v) for v in value]
