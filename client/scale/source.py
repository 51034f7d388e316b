"""The pipeline's first stage: every source listed as a stream, one read task per source.

A read task walks its source with the local engine's :class:`~babelcap.client.discover.Walk`
(local files, ``file://`` and object-store URIs alike) and yields blocks of
:data:`BLOCK_ROWS` rows as it goes, so neither the driver nor a worker ever holds the whole
listing. Its last row carries what the walk passed over (hidden files, non-media...), for the
run summary.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from babelcap.client.discover import Found, Walk, read_file_list
from babelcap.client.storage import RemoteObject

__all__ = ["BLOCK_ROWS", "ListingSource", "row_of"]

#: Rows per block the listing yields.
BLOCK_ROWS = 64

_SCHEMA = pa.schema([
    ("path", pa.string()), ("kind", pa.string()), ("error", pa.string()),
    ("size", pa.int64()), ("version", pa.string()), ("skipped", pa.string()),
])  # fmt: skip


def row_of(found: Found) -> dict[str, Any]:
    """A walked file or object as a pipeline row."""
    remote = found.path if isinstance(found.path, RemoteObject) else None
    return {
        "path": str(found.path),
        "kind": found.kind or "",
        "error": found.error or "",
        "size": remote.size if remote else -1,
        "version": remote.version if remote else "",
        "skipped": "",
    }


def _blocks(sources: list[str], include_hidden: bool) -> Iterator[pa.Table]:
    walk = Walk(sources, include_hidden=include_hidden)
    rows: list[dict[str, Any]] = []
    for found in walk:
        rows.append(row_of(found))
        if len(rows) >= BLOCK_ROWS:
            yield pa.Table.from_pylist(rows, schema=_SCHEMA)
            rows = []
    rows.append({"path": "", "kind": "", "error": "", "size": -1, "version": "",
                 "skipped": json.dumps(dict(walk.skipped))})  # fmt: skip
    yield pa.Table.from_pylist(rows, schema=_SCHEMA)


class ListingSource(Datasource):
    """One read task per command-line source (and one for a ``--files-from`` list)."""

    def __init__(self, sources: list[str], files_from: str | None, include_hidden: bool) -> None:
        self.sources = sources
        self.files_from = files_from
        self.include_hidden = include_hidden

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        groups: list[list[str]] = [[source] for source in self.sources]
        listing = self.files_from
        hidden = self.include_hidden
        tasks = []
        for group in groups:
            tasks.append(_task(lambda group=group: _blocks(group, hidden)))
        if listing is not None:
            tasks.append(_task(lambda: _blocks(list(read_file_list(_path(listing))), hidden)))
        return tasks


def _path(text: str) -> Any:
    from pathlib import Path

    return Path(text)


def _task(read: Any) -> ReadTask:
    return ReadTask(read, BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None,
                                        input_files=None), schema=_SCHEMA)  # fmt: skip
