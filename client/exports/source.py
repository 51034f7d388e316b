"""What an export reads: a results file, or a folder of result shards, one record at a time.

Two passes keep memory flat in the number of records: the first reads every line once for the
:class:`Inventory` (kinds, tasks, languages, the media's common folder) and an 8-byte hash of
each record's path; the second yields the records, skipping any that a later record of the same
path superseded (a resumed run's crash can leave two; the last one wins, as ``--resume`` decides).
Only paths whose hash repeats are compared in full, so duplicates are exact and cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from babelcap.client.records import ResultRecord
from babelcap.core.errors import ConfigurationError

__all__ = ["Exported", "Inventory", "RecordSource"]

log = logging.getLogger(__name__)


@dataclass
class Inventory:
    """What the first pass learnt: enough to fix columns and names before writing."""

    records: int = 0
    """Records after superseded ones are dropped."""
    kinds: Counter[str] = field(default_factory=Counter)
    """Records per kind (``image``, ``video``, ``unknown``)."""
    ok: Counter[str] = field(default_factory=Counter)
    """Ok records per kind."""
    tasks: dict[str, bool] = field(default_factory=dict)
    """Task name -> whether it gives tags, in the order first seen."""
    languages: dict[str, set[str]] = field(default_factory=dict)
    """Language code -> the tasks translated into it, languages in the order first seen."""
    folder: Path | None = None
    """The folder that holds every ok record's medium (their common parent)."""

    def translated(self) -> list[tuple[str, str]]:
        """Every (task, language) pair that has a translation, tasks in order."""
        return [
            (t, lang) for lang, tasks in self.languages.items() for t in self.tasks if t in tasks
        ]


@dataclass
class Exported:
    """What an export wrote: how many records, where, and what it left out and why."""

    count: int
    outputs: list[Path]
    skipped: Counter[str] = field(default_factory=Counter)
    """Reason -> records left out (failed records, missing media, existing captions ...)."""


def _path_hash(path: str) -> int:
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class RecordSource:
    """A results file (``results.jsonl``) or a folder of shards (every ``*.jsonl`` under it,
    ``*.replaced.jsonl`` excepted), read in name order. Relative media paths are resolved
    against ``media_root`` (default: the current folder)."""

    def __init__(self, location: Path, media_root: Path | None = None) -> None:
        self.location = location
        self.media_root = media_root
        if location.is_dir():
            self.files = sorted(
                p for p in location.rglob("*.jsonl")
                if p.is_file() and not p.name.endswith(".replaced.jsonl")
            )  # fmt: skip
            if not self.files:
                raise ConfigurationError(
                    f"{location} is a folder without result shards (*.jsonl); give a results "
                    "file written by babelcap caption, or the folder that holds its shards"
                )
        elif location.is_file():
            self.files = [location]
        else:
            raise ConfigurationError(
                f"{location} is not a results file (from babelcap caption) or a folder of "
                "shards; check the path (babelcap caption --output names the file)"
            )
        self._inventory: Inventory | None = None
        self._partial = Inventory()
        self._common: str | None = None
        self._repeated: dict[str, int] = {}
        """A path that has more than one record -> the line number of its last one."""
        self._hashes = array("q")
        """Per line, its path's hash (0: not a record)."""

    def media_path(self, record: ResultRecord) -> Path:
        """Where ``record``'s medium is on this machine."""
        return Path(self._absolute(record.path))

    def relative_name(self, record: ResultRecord) -> Path:
        """``record``'s medium relative to ``media_root`` when it lies under it, else to the
        folder common to every medium: the name it gets in a mirrored tree or a dataset."""
        path = self.media_path(record)
        for base in (self.media_root, self.inventory().folder):
            if base is not None:
                with contextlib.suppress(ValueError):
                    return path.relative_to(Path(self._absolute(str(base))))
        return Path(path.name)

    def summary(self) -> dict[str, Any] | None:
        """The run summary beside a results file (``<file>.summary.json``) or in a folder of
        shards (``summary.json``), if there is one."""
        if self.location.is_dir():
            summary = self.location / "summary.json"
        else:
            summary = self.location.with_name(self.location.name + ".summary.json")
        if not summary.is_file():
            return None
        try:
            data = json.loads(summary.read_text("utf-8"))
        except ValueError:
            log.warning("%s is not JSON; its run figures are left out", summary)
            return None
        return data if isinstance(data, dict) else None

    def _lines(self) -> Iterator[bytes]:
        for file in self.files:
            with file.open("rb") as handle:
                yield from handle

    def inventory(self) -> Inventory:
        """The first pass (once): counts, tasks, languages, duplicates."""
        if self._inventory is not None:
            return self._inventory
        found: list[dict[str, Any]] = []
        for line in self._lines():
            data = _load(line)
            if data is None:
                self._hashes.append(0)
                continue
            self._hashes.append(_path_hash(data["path"]))
            found.append(_facts(data))  # small: kind, status, task names, language names
            if len(found) >= 4096:
                self._fold(found)
                found.clear()
        self._fold(found)
        self._find_repeats()
        inventory = self._inventory_from_pass()
        self._inventory = inventory
        return inventory

    def _fold(self, found: list[dict[str, Any]]) -> None:
        partial, common = self._partial, self._common
        for facts in found:
            partial.kinds[facts["kind"]] += 1
            if facts["ok"]:
                partial.ok[facts["kind"]] += 1
                parent = os.path.dirname(self._absolute(facts["path"]))
                common = parent if common is None else _common(common, parent)
            for name, tags in facts["tasks"]:
                partial.tasks[name] = partial.tasks.get(name, False) or tags
            for language, tasks in facts["languages"]:
                partial.languages.setdefault(language, set()).update(tasks)
        self._common = common

    def _absolute(self, path: str) -> str:
        if os.path.isabs(path):
            return os.path.normpath(path)
        return os.path.normpath(os.path.join(self.media_root or Path.cwd(), path))

    def _find_repeats(self) -> None:
        import numpy as np

        hashes = np.frombuffer(self._hashes, dtype=np.int64)
        values, counts = np.unique(hashes[hashes != 0], return_counts=True)
        repeated = set(values[counts > 1].tolist())
        if not repeated:
            return
        last: dict[str, int] = {}
        for number, line in enumerate(self._lines()):
            if self._hashes[number] in repeated:
                data = _load(line)
                if data is not None:
                    last[data["path"]] = number
        self._repeated = last

    def _inventory_from_pass(self) -> Inventory:
        inventory = self._partial
        # Superseded records were counted too: take them out of the counts (kinds only; a
        # task or language they alone had still gets its column, empty).
        dropped = 0
        if self._repeated:
            for number, line in enumerate(self._lines()):
                data = _load(line) if self._hashes[number] != 0 else None
                if data is not None and self._repeated.get(data["path"], number) != number:
                    facts = _facts(data)
                    inventory.kinds[facts["kind"]] -= 1
                    inventory.ok[facts["kind"]] -= int(facts["ok"])
                    dropped += 1
        inventory.kinds = +inventory.kinds
        inventory.ok = +inventory.ok
        inventory.records = sum(inventory.kinds.values())
        inventory.folder = Path(self._common) if self._common else None
        if dropped:
            log.info("%s: %d superseded records left out", self.location, dropped)
        return inventory

    def __iter__(self) -> Iterator[ResultRecord]:
        """Every current, valid record, in file order (torn or foreign lines skipped)."""
        self.inventory()
        bad = 0
        for number, line in enumerate(self._lines()):
            if self._hashes[number] == 0:
                bad += bool(line.strip())
                continue
            try:
                record = ResultRecord.model_validate_json(line)
            except ValidationError:
                bad += 1
                continue
            if self._repeated.get(record.path, number) != number:
                continue
            yield record
        if bad:
            log.warning("%s: %d unreadable lines skipped", self.location, bad)


def _load(line: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("path"), str) and data["path"]:
        return data
    return None


def _facts(data: dict[str, Any]) -> dict[str, Any]:
    tasks = data.get("tasks") if isinstance(data.get("tasks"), dict) else {}
    translations = data.get("translations")
    translations = translations if isinstance(translations, dict) else {}
    return {
        "path": data["path"],
        "kind": data.get("kind") if data.get("kind") in ("image", "video") else "unknown",
        "ok": data.get("status", "ok") == "ok",
        "tasks": [
            (name, isinstance(task, dict) and task.get("tags") is not None)
            for name, task in (tasks or {}).items()
        ],
        "languages": [
            (language, list(texts))
            for language, texts in translations.items()
            if isinstance(texts, dict)
        ],
    }


def _common(a: str, b: str) -> str:
    try:
        return os.path.commonpath([a, b])
    except ValueError:  # different drives: no common folder
        return os.sep
