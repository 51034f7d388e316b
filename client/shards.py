"""Results as a folder or object-storage prefix of shards, each written whole, exactly once.

The layout (``OUT`` a local folder or a URI such as ``s3://bucket/out``)::

    OUT/part-<run>-<n>.jsonl           records, one JSON line each, a shard per flush
    OUT/summary.json                   the last run's summary
    OUT/_babelcap/lock.json            the running job (host, pid, heartbeat)
    OUT/_babelcap/replaced/*.replaced.jsonl   records a resume set aside (never deleted)

Bookkeeping is per shard, in the img2dataset way, not Ray Data's row checkpoints: a shard is
written in one atomic step (a rename on disk, a single PUT in a bucket), so a killed job leaves
whole shards or none; its buffered records were never written and are redone. ``--resume`` reads
every shard, keeps one ok record per asset made with the same settings and the same content
(ETag and size for objects, a BLAKE2b hash for files), and rewrites, each in one step, the
shards that held anything else (failed records, other settings, a duplicate), after copying
those lines to ``_babelcap/replaced/``. So failed assets are redone, each asset appears once in
the output, and nothing is lost. (Ray's own checkpointing counts every written row as done, so
it would never redo a failed asset, and it ties the output to Ray: both engines share this.)
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babelcap.client.records import ResultRecord
from babelcap.client.storage import RemoteObject, filesystem, is_uri, local_path, probe
from babelcap.core.errors import ConfigurationError

__all__ = ["SHARD_GLOB", "Location", "ShardLock", "ShardStore", "fetch_shards", "is_sharded"]

log = logging.getLogger(__name__)

SHARD_GLOB = "part-*.jsonl"
_META = "_babelcap"
#: A lock whose heartbeat is older than this belongs to a dead job on another machine.
LOCK_STALE_S = 120.0


def is_sharded(output: str) -> bool:
    """Whether ``output`` names a folder or prefix of shards (a URI, a name ending in ``/``,
    or a folder that already holds shards) rather than one JSONL file. Any other existing
    folder is not taken for one: ``--output .`` must not scatter shards in the current folder."""
    if is_uri(output) and local_path(output) is None:
        return True
    path = Path(local_path(output) or output)
    return output.endswith("/") or (path / _META).is_dir() or any(path.glob(SHARD_GLOB))


class Location:
    """A folder on disk or a prefix in a bucket: list, read, write whole, remove."""

    def __init__(self, output: str) -> None:
        self.uri = output.rstrip("/")
        local = local_path(output)
        self.remote = is_uri(output) and local is None
        if self.remote:
            self.fs, path = filesystem(output)
            self.root = path.rstrip("/")
        else:
            self.fs = None
            self.root = str(Path(local or output))

    def __str__(self) -> str:
        return self.uri

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def shards(self) -> list[str]:
        """The shard names, sorted."""
        if self.remote:
            assert self.fs is not None
            try:  # not fs.glob: the prefix itself may hold "[", "*" or "?"
                found = self.fs.ls(self.root, detail=False, refresh=True)
            except FileNotFoundError:
                return []
            names = (str(p).rstrip("/").rsplit("/", 1)[-1] for p in found)
            return sorted(n for n in names if fnmatch.fnmatchcase(n, SHARD_GLOB))
        folder = Path(self.root)
        return sorted(p.name for p in folder.glob(SHARD_GLOB)) if folder.is_dir() else []

    def read(self, name: str) -> bytes | None:
        try:
            if self.remote:
                assert self.fs is not None
                data: bytes = self.fs.cat_file(self._path(name))
                return data
            return Path(self._path(name)).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        """Write ``name`` whole or not at all."""
        if self.remote:
            assert self.fs is not None
            self.fs.pipe_file(self._path(name), data)  # one PUT: atomic in S3 and GCS
            return
        target = Path(self._path(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

    def remove(self, name: str) -> None:
        if self.remote:
            assert self.fs is not None
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self._path(name))
            return
        Path(self._path(name)).unlink(missing_ok=True)

    def check_writable(self) -> None:
        """Fail now, in one line, when the prefix cannot be reached (nothing is written)."""
        if not self.remote:
            if Path(self.root).exists() and not Path(self.root).is_dir():
                raise ConfigurationError(f"{self.uri}: exists and is not a folder")
            parent = Path(self.root)
            while not parent.exists():
                parent = parent.parent
            if not os.access(parent, os.W_OK):
                raise ConfigurationError(f"{self.uri}: cannot write there (permission denied)")
            return
        probe(self.uri, self.fs, self.root + "/")


def fetch_shards(uri: str, folder: Path) -> Path:
    """Copy the shards (and summary) under ``uri`` into ``folder``, one at a time."""
    location = Location(uri)
    if location.remote:
        probe(uri, location.fs, location.root + "/")
    names = location.shards()
    if not names:
        raise ConfigurationError(
            f"{uri} holds no result shards ({SHARD_GLOB}); give the --output of a babelcap "
            "caption run"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name in [*names, "summary.json"]:
        data = location.read(name)
        if data is not None:
            (folder / name).write_bytes(data)
    return folder


def _record_path(line: bytes) -> tuple[str, dict[str, Any]] | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the limit
        return None
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        return None
    return record["path"], record


@dataclass
class ShardStore:
    """The shard-folder counterpart of :class:`~babelcap.client.store.ResultStore` (same
    methods: ``check``, ``open``, ``is_done``, ``append``, ``close``)."""

    output: str
    mode: str = "new"
    settings: str = ""
    shard_records: int = 500
    """Records per shard."""
    flush_s: float = 30.0
    """A shard is also written when its first record is this old (so a job killed after an
    hour loses at most this much work)."""
    current: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Path -> (content identity, shard) of the ok records kept from earlier runs."""
    kept: int = 0
    replaced: int = 0
    changed: int = 0
    written: int = 0
    run: str = field(default_factory=lambda: time.strftime("%Y%m%dT%H%M%S") + secrets.token_hex(3))
    _buffer: list[bytes] = field(default_factory=list)
    _first: float = 0.0
    _seq: int = 0
    _stale: dict[str, set[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _opened: bool = False
    _asides: int = 0

    def __post_init__(self) -> None:
        self.location = Location(self.output)

    def check(self) -> None:
        """Refuse to clobber earlier results without --resume or --overwrite; check access."""
        self.location.check_writable()
        if self.mode == "new" and self.location.shards():
            raise ConfigurationError(
                f"{self.location} already has results: pass --resume to continue that run "
                "(finished assets are skipped) or --overwrite to start again"
            )

    def open(self) -> None:
        self.check()
        if self.mode == "overwrite":
            for name in self.location.shards():
                self.location.remove(name)
            self.location.remove("summary.json")
        elif self.mode == "resume":
            self._compact()
        self._opened = True

    def _compact(self) -> None:
        """Keep one ok record per asset (this run's settings); set the rest aside."""
        for name in self.location.shards():

            def keeps(line: bytes, name: str = name) -> bool:
                parsed = _record_path(line)
                if parsed is None:
                    return False
                path, record = parsed
                ok = (
                    record.get("status") == "ok"
                    and record.get("settings_hash") == self.settings
                    and isinstance(record.get("content_hash"), str)
                    and path not in self.current
                )
                if ok:
                    self.current[path] = (record["content_hash"], name)
                return ok

            kept, dropped = self._rewrite(name, keeps)
            self.kept += kept
            self.replaced += dropped
        log.info("resume: %d finished assets kept, %d records to redo", self.kept, self.replaced)

    def _rewrite(self, shard: str, keeps: Callable[[bytes], bool]) -> tuple[int, int]:
        """Rewrite ``shard`` (in one step) with only the lines ``keeps`` accepts, after setting
        the others aside; blank lines go; returns (kept, set aside)."""
        data = self.location.read(shard)
        if data is None:
            return 0, 0
        keep: list[bytes] = []
        drop: list[bytes] = []
        for line in data.splitlines(keepends=True):
            if not line.strip():
                continue
            whole = line if line.endswith(b"\n") else line + b"\n"
            (keep if keeps(line) else drop).append(whole)
        if drop:
            self._set_aside(shard, drop)
            if keep:
                self.location.write(shard, b"".join(keep))
            else:
                self.location.remove(shard)
        return len(keep), len(drop)

    def _set_aside(self, shard: str, lines: list[bytes]) -> None:
        # Unique per call: compaction and close() may both set lines aside from one shard.
        self._asides += 1
        stem = f"{shard.removesuffix('.jsonl')}.{self.run}-{self._asides}"
        name = f"{_META}/replaced/{stem}.replaced.jsonl"
        self.location.write(name, b"".join(lines))

    def is_done(self, path: Path | RemoteObject | str, content: str) -> bool:
        kept = self.current.get(str(path))
        return kept is not None and kept[0] == content

    def append(self, record: ResultRecord) -> None:
        """Buffer one record; a full or old buffer is written as one shard."""
        if not self._opened:
            raise RuntimeError("ShardStore.open() first")
        line = json.dumps(record.to_json(), ensure_ascii=False, allow_nan=False) + "\n"
        with self._lock:
            if not self._buffer:
                self._first = time.monotonic()
            self._buffer.append(line.encode("utf-8"))
            kept = self.current.get(record.path)
            if kept is not None:
                self._stale.setdefault(kept[1], set()).add(record.path)
            due = len(self._buffer) >= self.shard_records
            due = due or time.monotonic() - self._first >= self.flush_s
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records as one shard."""
        with self._lock:
            lines, self._buffer = self._buffer, []
            if not lines:
                return
            self._seq += 1
            name = f"part-{self.run}-{self._seq:05d}.jsonl"
            self.location.write(name, b"".join(lines))
            self.written += len(lines)

    def close(self) -> None:
        """Write what is buffered; drop the kept records of assets redone because they changed."""
        if not self._opened:
            return
        self.flush()
        self._opened = False
        for shard, paths in self._stale.items():

            def current(line: bytes, paths: set[str] = paths) -> bool:
                parsed = _record_path(line)
                return parsed is None or parsed[0] not in paths

            self.changed += self._rewrite(shard, current)[1]

    def write_summary(self, summary: dict[str, Any]) -> str:
        self.location.write("summary.json", json.dumps(summary, indent=2).encode("utf-8"))
        return f"{self.location}/summary.json"


class ShardLock:
    """One job per output: ``_babelcap/lock.json`` names the holder (host, pid) and is renewed
    every 30 s. A lock is taken over when its holder is a dead process on this host or its
    heartbeat is older than :data:`LOCK_STALE_S` (a bucket has no ``flock``: two jobs started
    within the same second on different machines are not told apart)."""

    def __init__(self, output: str) -> None:
        self.location = Location(output)
        self.token = secrets.token_hex(8)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                           "token": self.token, "heartbeat": time.time()}).encode()  # fmt: skip

    def __enter__(self) -> ShardLock:
        data = self.location.read(f"{_META}/lock.json")
        if data is not None:
            try:
                holder = json.loads(data)
                age = time.time() - float(holder["heartbeat"])
                same_host = holder.get("host") == socket.gethostname()
                alive = same_host and _alive(int(holder["pid"]))
                if alive or (not same_host and age < LOCK_STALE_S):
                    raise ConfigurationError(
                        f"{self.location} is being written by another babelcap caption (pid "
                        f"{holder.get('pid')} on {holder.get('host')}, seen {age:.0f} s ago); "
                        "wait for it to finish or give another --output"
                    )
            except (ValueError, KeyError, TypeError):
                pass  # a torn lock file: take it over
        self.location.write(f"{_META}/lock.json", self._body())
        self._thread = threading.Thread(target=self._beat, name="babelcap-lock", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(30.0):
            with contextlib.suppress(Exception):
                self.location.write(f"{_META}/lock.json", self._body())

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            data = self.location.read(f"{_META}/lock.json")
            # Not a lock another job took over (after this one's heartbeat went stale).
            if data is not None and json.loads(data).get("token") == self.token:
                self.location.remove(f"{_META}/lock.json")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
