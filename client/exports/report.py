"""``--format html``: an offline review report, one page plus a folder of previews.

``report.html`` holds the records as one JSON blob in ``<script type="application/json">``
(every ``<``, ``>`` and ``&`` escaped, so no text can close the tag) and a script that renders a
page of cards at a time with ``textContent`` only: model text is shown, never parsed as HTML. A
Content-Security-Policy allows that one script (by its hash), images from the page's folder, and
nothing from the network. ``report_files/`` holds the previews (``thumbnails``), made in a few
threads while the records stream through in order; the folder and the page are written under
temporary names and renamed when complete.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import html
import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from babelcap.client.exports.languages import direction, display_names
from babelcap.client.exports.report_page import SCRIPT, STYLE, TEMPLATE
from babelcap.client.exports.source import Exported, RecordSource
from babelcap.client.exports.thumbnails import image_thumbnail, pick_times, video_frames
from babelcap.client.records import ResultRecord
from babelcap.client.store import atomic_path

__all__ = ["escape_json", "write_report"]

_WORKERS = max(1, min(4, os.cpu_count() or 1))


def escape_json(data: Any) -> str:
    """``data`` as JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(raw, escaped)
    return text


def _size(size: Any) -> str | None:
    if not isinstance(size, int | float):
        return None
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return None


def _media_line(record: ResultRecord) -> str:
    media = record.media
    parts = []
    if media.get("width") and media.get("height"):
        parts.append(f"{media['width']}×{media['height']}")
    if record.kind == "video":
        if media.get("duration") is not None:
            parts.append(f"{media['duration']:.1f} s")
        if media.get("fps"):
            parts.append(f"{media['fps']:g} fps")
    if (size := _size(media.get("size"))) is not None:
        parts.append(size)
    return " · ".join(parts)


def page_record(index: int, record: ResultRecord, previews: list[str]) -> dict[str, Any]:
    """What the page knows of one record (short keys: 10,000 of them make one blob)."""
    texts, tags = [], []
    for name, task in record.tasks.items():
        tagged = task.tags is not None
        texts.append([name, ", ".join(task.tags or []) if tagged else task.text, int(tagged)])
        tags += task.tags or []
    error = record.error
    return {
        "i": index, "p": record.path, "n": Path(record.path).name, "k": record.kind or "unknown",
        "s": record.status, "e": [error.kind, error.message] if error else None,
        "m": record.model, "t": texts, "g": list(dict.fromkeys(tags)),
        "tr": {lang: list(map(list, t.items())) for lang, t in record.translations.items()},
        "l": record.seconds,
        "tk": sum(t.completion_tokens for t in record.tasks.values()),
        "tm": record.timings, "md": _media_line(record), "v": previews,
    }  # fmt: skip


class _Previews:
    """Makes the previews of records in a few threads; results come back in record order."""

    def __init__(self, source: RecordSource, folder: Path, link: str, size: int, frames: int):
        self.source, self.folder, self.link = source, folder, link
        self.size, self.frames = size, frames
        self.pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="babelcap-preview")

    def make(self, index: int, record: ResultRecord) -> list[str]:
        path = self.source.media_path(record)
        if not path.is_file() or record.kind not in ("image", "video"):
            return []
        if record.kind == "image":
            images = [image_thumbnail(path, self.size)]
        else:
            sampled = record.media.get("sampled_timestamps") or []
            times = pick_times(sampled, record.media.get("duration"), self.frames)
            images = list(video_frames(path, times, self.size // 2 or 1))
        names = []
        for number, data in enumerate(images):
            if data:
                name = f"{index:07d}-{number}.jpg"
                (self.folder / name).write_bytes(data)
                names.append(f"{self.link}/{name}")
        return names

    def ordered(self, records: Iterator[ResultRecord]) -> Iterator[tuple[ResultRecord, list[str]]]:
        window: collections.deque[tuple[ResultRecord, Future[list[str]]]] = collections.deque()
        for index, record in enumerate(records):
            window.append((record, self.pool.submit(self.make, index, record)))
            if len(window) >= 4 * _WORKERS:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _script_hash() -> str:
    return base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")


def _write_page(handle: IO[str], head: dict[str, Any], rows: Iterator[dict[str, Any]]) -> None:
    before, after = TEMPLATE.split("@RECORDS@")
    title = html.escape(head["title"])
    before = before.replace("@TITLE@", title).replace("@STYLE@", STYLE)
    before = before.replace("@SCRIPT_HASH@", _script_hash())
    handle.write(before)
    handle.write("[")
    for number, row in enumerate(rows):
        handle.write(("," if number else "") + escape_json(row) + "\n")
    handle.write("]")
    after = after.replace("@HEAD@", escape_json(head)).replace("@SCRIPT@", SCRIPT)
    handle.write(after)


def write_report(
    source: RecordSource,
    output: Path,
    *,
    thumbnail_size: int = 256,
    frames: int = 4,
    title: str | None = None,
) -> Exported:
    """Write ``output`` (the page) and ``<stem>_files/`` (its previews) beside it."""
    inventory = source.inventory()
    names = display_names(inventory.languages)
    head = {
        "title": title or f"babelcap review: {source.location.name}",
        "source": str(source.location),
        "summary": source.summary(),
        "languages": [[code, names[code], direction(code)] for code in inventory.languages],
        "tasks": list(inventory.tasks),
    }
    files = output.with_name(output.stem + "_files")
    staging = output.with_name(f".{files.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    previews = _Previews(source, staging, files.name, thumbnail_size, frames)
    count = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal count
        for record, made in previews.ordered(iter(source)):
            yield page_record(count, record, made)
            count += 1

    try:
        with atomic_path(output) as temporary:
            with temporary.open("w", encoding="utf-8") as handle:
                _write_page(handle, head, rows())
            previews.close()
            old = files.with_name(f".{files.name}.{os.getpid()}.old")
            if files.exists():
                os.replace(files, old)
            os.replace(staging, files)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        previews.close()
        with contextlib.suppress(OSError):
            shutil.rmtree(staging, ignore_errors=True)
    return Exported(count, [output, files])
