"""``--format seed-json``: the JSON the original scripts wrote, key for key (shared/FACTS.md).

One document per media kind, as the scripts wrote one per run and kind:
``{"descriptions": [...], "stats": {...}}`` with ``indent=4``.

- image items: ``image_file``, ``description_english``, ``translation_<language>`` (English
  language name, lower case: ``translation_french``; for any FLORES-200 code),
  ``generated_tokens`` (the description's), ``description_generation_time_sec``,
  ``total_processing_time_sec``.
- video items: ``video_file``, ``video_size_mb`` (MiB, 2 decimals), ``video_duration_sec``,
  ``video_fps`` (rounded to an integer), ``video_frames``, ``video_width``, ``video_height``,
  ``description_english``, ``translation_<language>``, ``total_processing_time_sec``.
- seconds have 3 decimals. babelcap's other figures follow the original keys, never replace them:
  ``tags_processed`` (the tags task's list, deduplicated and sorted), ``<task>_english`` and
  ``<task>_translation_<language>`` for the other tasks, ``path``, ``model``.
- ``stats``: ``model``, ``temperature``, ``total_batch_time_sec``, ``total_images`` /
  ``total_videos``, ``average_time_per_image_sec`` / ``average_time_per_video_sec``, then
  ``errors``. Only processed media count: failed files are neither items nor in the average
  (the original divided by every file in the folder, media or not).

A run of one kind is written to ``--output``; a mixed run to ``<stem>.images.json`` and
``<stem>.videos.json`` beside it. ``total_batch_time_sec`` is the run's wall-clock time from
``<results>.summary.json`` (in a mixed run, images and videos ran together: both documents carry
the whole run's time); without a summary, the sum of the kind's processing times.
"""

from __future__ import annotations

import contextlib
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from babelcap.client.exports.languages import key_names
from babelcap.client.exports.source import Inventory, RecordSource
from babelcap.client.records import ResultRecord
from babelcap.client.store import atomic_path

__all__ = ["KINDS", "seed_item", "write_seed_json"]

#: Media kind -> (item file key, stats count key, stats average key).
KINDS = {
    "image": ("image_file", "total_images", "average_time_per_image_sec"),
    "video": ("video_file", "total_videos", "average_time_per_video_sec"),
}


def _sec(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def seed_item(record: ResultRecord, names: dict[str, str]) -> dict[str, Any]:
    """One ``descriptions[]`` item; ``names`` maps each language code of the document to its key
    name (``fra_Latn`` -> ``french``)."""
    tasks, media = record.tasks, record.media
    description = tasks.get("description")
    item: dict[str, Any] = {KINDS[record.kind or "image"][0]: Path(record.path).name}
    if record.kind == "video":
        size = media.get("size")
        fps = media.get("fps")
        item |= {
            "video_size_mb": None if size is None else round(size / (1024 * 1024), 2),
            "video_duration_sec": _sec(media.get("duration")),
            "video_fps": None if fps is None else round(fps),
            "video_frames": media.get("frame_count"),
            "video_width": media.get("width"),
            "video_height": media.get("height"),
        }
    item["description_english"] = description.text if description else None
    for code, name in names.items():
        item[f"translation_{name}"] = record.translations.get(code, {}).get("description")
    tokens = description.completion_tokens if description else 0
    latency = _sec(description.latency_s) if description else None
    if record.kind == "image":
        item["generated_tokens"] = tokens
        item["description_generation_time_sec"] = latency
    item["total_processing_time_sec"] = _sec(record.seconds)
    if record.kind == "video":  # babelcap's own, after the original keys
        item["generated_tokens"] = tokens
        item["description_generation_time_sec"] = latency
    for task_name, task in tasks.items():
        if task_name == "description":
            continue
        if task.tags is not None:
            item["tags_processed"] = sorted(set(task.tags))
        else:
            item[f"{task_name}_english"] = task.text
    for code, name in names.items():
        for task_name, text in record.translations.get(code, {}).items():
            if task_name != "description":
                item[f"{task_name}_translation_{name}"] = text
    item["path"] = record.path
    item["model"] = record.model
    return item


@dataclass
class _Document:
    kind: str
    handle: IO[str]
    names: dict[str, str]
    times: list[float] = field(default_factory=list)
    models: Counter[str] = field(default_factory=Counter)
    temperatures: Counter[float] = field(default_factory=Counter)
    errors: int = 0

    def add(self, record: ResultRecord) -> None:
        if record.status != "ok":
            self.errors += 1
            return
        text = json.dumps(seed_item(record, self.names), indent=4, ensure_ascii=False)
        self.handle.write(("\n" if not self.times else ",\n") + _indent(text, 8))
        self.times.append(record.seconds)  # a float per medium: 8 bytes, for the average
        if record.model:
            self.models[record.model] += 1
        description = record.tasks.get("description")
        if description and description.temperature is not None:
            self.temperatures[description.temperature] += 1

    def finish(self, summary: dict[str, Any] | None) -> None:
        count_key, average_key = KINDS[self.kind][1:]
        batch = summary.get("seconds") if summary else None
        stats: dict[str, Any] = {
            "model": self.models.most_common(1)[0][0] if self.models else None,
            "temperature": self.temperatures.most_common(1)[0][0] if self.temperatures else None,
            "total_batch_time_sec": _sec(batch if batch is not None else sum(self.times)),
            count_key: len(self.times),
            average_key: _sec(statistics.fmean(self.times)) if self.times else None,
            "errors": self.errors,
        }
        if len(self.models) > 1:
            stats["models"] = dict(self.models)
        tail = json.dumps(stats, indent=4, ensure_ascii=False)
        self.handle.write(("\n    ]" if self.times else "]") + ',\n    "stats": ')
        self.handle.write(_indent(tail, 4).lstrip() + "\n}")


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line for line in text.splitlines())


def destinations(inventory: Inventory, output: Path) -> dict[str, Path]:
    """Media kind -> the document it is written to."""
    kinds = [k for k in KINDS if inventory.kinds.get(k)] or ["image"]
    if len(kinds) == 1:
        return {kinds[0]: output}
    return {k: output.with_name(f"{output.stem}.{k}s{output.suffix or '.json'}") for k in kinds}


def write_seed_json(source: RecordSource, output: Path) -> list[Path]:
    """Write the documents (see the module docstring); returns their paths."""
    inventory = source.inventory()
    names = key_names(lang for lang, tasks in inventory.languages.items() if "description" in tasks)
    targets = destinations(inventory, output)
    summary = source.summary()
    with contextlib.ExitStack() as stack:
        documents: dict[str, _Document] = {}
        for kind, path in targets.items():
            temporary = stack.enter_context(atomic_path(path))
            handle = stack.enter_context(temporary.open("w", encoding="utf-8"))
            handle.write('{\n    "descriptions": [')
            documents[kind] = _Document(kind, handle, names)
        for record in source:
            document = documents.get(record.kind or "")
            if document is not None:
                document.add(record)
        for document in documents.values():
            document.finish(summary)
    return list(targets.values())
