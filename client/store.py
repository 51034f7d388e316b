"""The results file: one JSON line per asset, appended as each finishes, never half-written.

Each record is written with one ``write`` on an ``O_APPEND`` descriptor, so a killed client
leaves only whole lines (a power cut may leave a torn last line; it is dropped on resume).
``--resume`` keeps every ``ok`` record whose content hash and settings match this run, moves the
others (failures, other settings, torn lines) to ``<output>.replaced.jsonl`` so nothing is lost,
rewrites the file atomically, and reports which assets are done.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from babelcap.client.records import ResultRecord
from babelcap.core.errors import ConfigurationError

__all__ = [
    "Mode",
    "ResultStore",
    "atomic_path",
    "content_hash",
    "read_records",
    "settings_hash",
    "write_json",
]

log = logging.getLogger(__name__)

Mode = Literal["new", "resume", "overwrite"]


def content_hash(path: Path) -> str:
    """BLAKE2b-128 of the file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def settings_hash(fingerprint: dict[str, Any]) -> str:
    """A short stable hash of everything that changes an asset's result."""
    text = json.dumps(fingerprint, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def _key(path: str, content: str) -> str:
    return f"{content}:{path}"


@dataclass
class ResultStore:
    """Append-only JSONL results with resume."""

    path: Path
    mode: Mode = "new"
    settings: str = ""
    done: set[str] = field(default_factory=set)
    kept: int = 0
    replaced: int = 0
    _fd: int | None = None

    def open(self) -> None:
        """Prepare the file for this run (see the module docstring); raise if it would clobber."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists and self.mode == "new":
            raise ConfigurationError(
                f"{self.path} already has results: pass --resume to continue that run (finished "
                "assets are skipped) or --overwrite to start again"
            )
        if exists and self.mode == "resume":
            self._compact()
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        if self.mode == "overwrite":
            flags |= os.O_TRUNC
        self._fd = os.open(self.path, flags, 0o644)

    def _compact(self) -> None:
        keep: list[bytes] = []
        others: list[bytes] = []
        with self.path.open("rb") as handle:
            for line in handle:
                record = None
                if line.endswith(b"\n"):
                    try:
                        record = json.loads(line)
                    except ValueError:
                        record = None
                if (
                    isinstance(record, dict)
                    and record.get("status") == "ok"
                    and record.get("settings_hash") == self.settings
                    and record.get("content_hash")
                    and _key(record.get("path", ""), record["content_hash"]) not in self.done
                ):
                    self.done.add(_key(record["path"], record["content_hash"]))
                    keep.append(line)
                elif line.strip():
                    others.append(line if line.endswith(b"\n") else line + b"\n")
        self.kept, self.replaced = len(keep), len(others)
        if others:
            with (self.path.parent / (self.path.name + ".replaced.jsonl")).open("ab") as handle:
                handle.writelines(others)
                handle.flush()
                os.fsync(handle.fileno())
        with atomic_path(self.path) as temporary, temporary.open("wb") as handle:
            handle.writelines(keep)
        log.info("resume: %d finished assets kept, %d records to redo", self.kept, self.replaced)

    def is_done(self, path: Path, content: str) -> bool:
        """Whether ``path`` with this content was already finished with these settings."""
        return _key(str(path), content) in self.done

    def append(self, record: ResultRecord) -> None:
        """Write one record as one line, in one system call."""
        if self._fd is None:
            raise RuntimeError("ResultStore.open() first")
        line = record.to_json()
        data = (json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        """Flush to disk and close."""
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name next to ``path`` to write to. When the block ends normally the file is
    flushed to disk and renamed over ``path``; when it raises, the temporary file is removed.
    Readers see the old file or the whole new one, never a part of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    try:
        yield temporary
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> Path:
    """``data`` as indented UTF-8 JSON, written atomically (:func:`atomic_path`)."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    with atomic_path(path) as temporary:
        temporary.write_text(text, "utf-8")
    return path


def read_records(path: Path) -> list[ResultRecord]:
    """Every whole, valid record of a results file (torn, corrupt or incomplete lines skipped,
    counted in the log)."""
    records, bad = [], 0
    with path.open("rb") as handle:
        for line in handle:
            try:
                records.append(ResultRecord.model_validate_json(line))
            except ValidationError:
                bad += 1
    if bad:
        log.warning("%s: %d unreadable lines skipped", path, bad)
    return records
