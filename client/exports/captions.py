"""``--format captions``: one caption file per medium, as fine-tuning tools read them (kohya_ss,
OneTrainer, taggui: ``photo.jpg`` -> ``photo.txt`` beside it).

The text is one task's (``--task``, default ``description``) in English or a translation
(``--language fra_Latn``); the tags task's list is joined by ``", "`` (the kohya convention).
Files go beside each medium, or, with ``--output DIR``, into a tree under DIR that mirrors the
media's folders. An existing caption is never replaced without ``--overwrite``; two media that
would share a caption name (``a.jpg`` and ``a.png``) keep the first one's. Failed records and
media without that task or language are counted, not written.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Literal

from babelcap.client.exports.source import Exported, RecordSource
from babelcap.client.records import ResultRecord
from babelcap.core.errors import ConfigurationError

__all__ = ["caption_text", "write_captions"]


def caption_text(record: ResultRecord, task: str, language: str | None) -> str | None:
    """The caption of ``record``: ``task``'s text in ``language`` (None: English)."""
    if language:
        return record.translations.get(language, {}).get(task)
    result = record.tasks.get(task)
    if result is None:
        return None
    if result.tags is not None:
        return ", ".join(result.tags)
    return result.text


def _write(target: Path, text: str, *, overwrite: bool) -> None:
    """Write ``text`` to a temporary name and move it into place: readers never see a part;
    without ``overwrite`` the move is a hard link, which fails if ``target`` exists."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text + "\n", encoding="utf-8")
        if overwrite:
            os.replace(temporary, target)
        else:
            os.link(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_captions(
    source: RecordSource,
    output: Path | None,
    *,
    task: str = "description",
    language: str | None = None,
    extension: Literal["txt", "caption"] = "txt",
    overwrite: bool = False,
) -> Exported:
    """Write the caption files (see the module docstring)."""
    inventory = source.inventory()
    if inventory.tasks and task not in inventory.tasks:
        raise ConfigurationError(
            f"{source.location} has no {task!r} task; choose --task from "
            f"{', '.join(inventory.tasks)}"
        )
    if language and language not in inventory.languages:
        raise ConfigurationError(
            f"{source.location} has no translations into {language!r}; choose --language from "
            f"{', '.join(inventory.languages) or '(none: the run had no --languages)'}, or "
            "leave it out for English"
        )
    if output is not None and output.exists() and not output.is_dir():
        raise ConfigurationError(
            f"--output {output} is a file; captions go beside each medium (no --output) or "
            "into a folder that mirrors the media's tree"
        )
    started = time.time_ns()
    result = Exported(0, [output] if output else [])
    for record in source:
        if record.status != "ok":
            result.skipped["failed"] += 1
            continue
        text = caption_text(record, task, language)
        if text is None:
            result.skipped[f"no {task} in {language or 'English'}"] += 1
            continue
        medium = source.media_path(record)
        if output is None:
            target = medium.with_suffix("." + extension)
        else:
            target = (output / source.relative_name(record)).with_suffix("." + extension)
        if target.exists():
            if target.stat().st_mtime_ns >= started:
                result.skipped["caption name shared with another medium"] += 1
                continue
            if not overwrite:
                result.skipped["caption exists (pass --overwrite to replace)"] += 1
                continue
        try:
            _write(target, text, overwrite=overwrite)
        except FileExistsError:
            result.skipped["caption exists (pass --overwrite to replace)"] += 1
            continue
        except OSError as error:
            with contextlib.suppress(OSError):
                target.with_name(f".{target.name}.{os.getpid()}.tmp").unlink()
            raise ConfigurationError(
                f"cannot write {target}: {error.strerror}; choose a writable --output folder"
            ) from error
        result.count += 1
    return result
