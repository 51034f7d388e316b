"""The results file: one JSON line per asset, appended as each finishes, never half-written;
one writer at a time; one current record per path.

Each record is written with one ``write`` on an ``O_APPEND`` descriptor, so a killed client
leaves only whole lines (a power cut may leave a torn last line; it is dropped on resume).

A run holds an exclusive lock (:class:`OutputLock`, ``flock`` on ``<output>.lock``) from before
it reads the file until its summary is written: a second run on the same output is refused at
once, naming the holder's pid, instead of interleaving records or renaming the file from under
the first.

``--resume`` is keyed by path and decided by content. The last record of each path is its
current one; earlier ones, and current ones that failed, were made with other settings or are
torn, move to ``<output>.replaced.jsonl``, so nothing is lost. A path whose current record has
the file's content hash is skipped; a changed file is redone, and when the run ends its old
record moves to the replaced file too, leaving exactly one record per path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pydantic import ValidationError

from babelcap.client.discover import open_regular
from babelcap.client.records import ResultRecord
from babelcap.client.storage import RemoteObject
from babelcap.core.errors import ConfigurationError

__all__ = [
    "Mode",
    "OutputLock",
    "ResultStore",
    "atomic_path",
    "content_hash",
    "read_records",
    "settings_hash",
    "write_json",
]

log = logging.getLogger(__name__)

Mode = Literal["new", "resume", "overwrite"]


def content_hash(path: Path | RemoteObject) -> str:
    """BLAKE2b-128 of the file's bytes (a regular file only: see
    :func:`~babelcap.client.discover.open_regular`); for a listed object, its ETag (or
    generation) and size, known without reading it."""
    if isinstance(path, RemoteObject):
        return path.identity
    with os.fdopen(open_regular(path), "rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def settings_hash(fingerprint: dict[str, Any]) -> str:
    """A short stable hash of everything that changes an asset's result."""
    text = json.dumps(fingerprint, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def sidecar(output: Path, suffix: str) -> Path:
    """``<output><suffix>``: the summary, replaced-records and lock files beside the results."""
    return output.with_name(output.name + suffix)


class OutputLock:
    """An exclusive ``flock`` on ``<output>.lock``, which holds the holder's pid.

    The file is removed on release, before the lock is let go; so a run that locked a file
    checks that it is still the one at that path, and tries again if not.
    """

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = sidecar(output, ".lock")
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        if self.output.is_dir():
            raise ConfigurationError(
                f"--output {self.output} is a folder; name a results file, e.g. "
                f"{self.output / 'results.jsonl'}"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            while self._fd is None:
                self._fd = self._try_lock()
        except OSError as error:
            raise ConfigurationError(
                f"--output {self.output}: cannot create {self.path}: {error.strerror}; choose a "
                "writable location"
            ) from error
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())
        return self

    def _try_lock(self) -> int | None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ConfigurationError(
                f"{self.output} is being written by another babelcap caption run (pid "
                f"{holder}); wait for it to finish, or give this run another --output"
            ) from None
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        locked = os.fstat(fd)
        if current is None or (current.st_dev, current.st_ino) != (locked.st_dev, locked.st_ino):
            os.close(fd)  # the holder finished and removed it meanwhile: lock the new one
            return None
        return fd

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def _holder(fd: int) -> str:
    for _ in range(20):  # the holder writes its pid just after locking
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "unknown"


@dataclass
class ResultStore:
    """Append-only JSONL results with resume; open it under an :class:`OutputLock`."""

    path: Path
    mode: Mode = "new"
    settings: str = ""
    current: dict[str, str] = field(default_factory=dict)
    """Path -> content hash of the finished records kept from earlier runs."""
    kept: int = 0
    replaced: int = 0
    changed: int = 0
    """Kept records whose file had changed, so were redone and replaced in this run."""
    _stale: set[str] = field(default_factory=set)
    _kept_bytes: int = 0
    _fd: int | None = None

    def check(self) -> None:
        """Refuse to clobber earlier results without --resume or --overwrite."""
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists and self.mode == "new":
            raise ConfigurationError(
                f"{self.path} already has results: pass --resume to continue that run (finished "
                "assets are skipped) or --overwrite to start again"
            )

    def open(self) -> None:
        """Prepare the file for this run (see the module docstring); raise if it would clobber."""
        self.check()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.mode == "resume" and self.path.exists():
            self._compact()
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        if self.mode == "overwrite":
            flags |= os.O_TRUNC
        self._fd = os.open(self.path, flags, 0o644)

    def _compact(self) -> None:
        last: dict[str, int] = {}
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle):
                record = _parse(line)
                if record is not None:
                    last[record["path"]] = number
        keep: list[bytes] = []
        others: list[bytes] = []
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle):
                record = _parse(line)
                if (
                    record is not None
                    and last[record["path"]] == number
                    and record.get("status") == "ok"
                    and record.get("settings_hash") == self.settings
                    and isinstance(record.get("content_hash"), str)
                ):
                    self.current[record["path"]] = record["content_hash"]
                    keep.append(line)
                elif line.strip():
                    others.append(line if line.endswith(b"\n") else line + b"\n")
        self.kept, self.replaced = len(keep), len(others)
        self._set_aside(others)
        with atomic_path(self.path) as temporary, temporary.open("wb") as handle:
            handle.writelines(keep)
        self._kept_bytes = sum(map(len, keep))
        log.info("resume: %d finished assets kept, %d records to redo", self.kept, self.replaced)

    def _set_aside(self, lines: list[bytes]) -> None:
        if lines:
            with sidecar(self.path, ".replaced.jsonl").open("ab") as handle:
                handle.writelines(lines)
                handle.flush()
                os.fsync(handle.fileno())

    def is_done(self, path: Path | RemoteObject | str, content: str) -> bool:
        """Whether ``path`` with this content was already finished with these settings."""
        return self.current.get(str(path)) == content

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
        if record.path in self.current:
            self._stale.add(record.path)  # its kept record now describes an older file

    def close(self) -> None:
        """Move the records this run superseded to the replaced file, flush, close."""
        if self._fd is None:
            return
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        if self._stale:
            self._drop_stale()

    def _drop_stale(self) -> None:
        """Rewrite the file without the kept records of files that changed (a crash here
        leaves both records; the next resume keeps the later one)."""
        stale: list[bytes] = []
        with (
            self.path.open("rb") as source,
            atomic_path(self.path) as temporary,
            temporary.open("wb") as target,
        ):
            offset = 0
            for line in source:
                old = offset < self._kept_bytes
                offset += len(line)
                record = _parse(line) if old else None
                if record is not None and record["path"] in self._stale:
                    stale.append(line)
                else:
                    target.write(line)
        self._set_aside(stale)
        self.changed = len(stale)
        self._stale.clear()


def _parse(line: bytes) -> dict[str, Any] | None:
    """A whole line's record as a dict with a string ``path``; None for a torn or foreign one."""
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict) and isinstance(record.get("path"), str):
        return record
    return None


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
