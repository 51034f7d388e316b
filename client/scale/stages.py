"""The pipeline's two working stages, each a callable class that Ray Data runs in actors.

- :class:`Prepare` (CPU): decides resume from the listing (an object's ETag and size; a file's
  content hash), then decodes the asset with the local engine's :class:`MediaPool` (one worker
  process per actor, so a hung or crashing decoder is killed and costs that asset only).
- :class:`Ask` (I/O, a fraction of a CPU, many assets at once): the local engine's request pool
  (least-outstanding over every ``--server``, streaming, retries) and :class:`Asker`, with the
  translation batcher shared by the assets in flight; it emits each asset's finished record.

A failure is a row with an error, never an exception: Ray would retry the block and then fail
the job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from babelcap.client.asking import Asker
from babelcap.client.config import CaptionSettings
from babelcap.client.media import MediaOptions, MediaPool, Prepared
from babelcap.client.plan import Models
from babelcap.client.records import RecordError, ResultRecord, TaskResult, make_record
from babelcap.client.requests import Completion
from babelcap.client.storage import RemoteObject
from babelcap.client.store import content_hash
from babelcap.core.errors import BabelcapError, ConfigurationError, ServerUnavailableError
from babelcap.prompts import TaskPrompt

__all__ = ["Ask", "Prepare"]

log = logging.getLogger(__name__)

Batch = dict[str, Any]


def _rows(batch: Batch) -> list[dict[str, Any]]:
    keys = list(batch)
    count = len(batch[keys[0]]) if keys else 0
    return [{key: _plain(batch[key][i]) for key in keys} for i in range(count)]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _batch(rows: list[dict[str, Any]]) -> Batch:
    keys = list(rows[0]) if rows else []
    return {key: [row[key] for row in rows] for key in keys}


def _source(row: dict[str, Any]) -> Path | RemoteObject:
    if row["version"]:
        return RemoteObject(row["path"], int(row["size"]), row["version"])
    return Path(row["path"])


def _error_record(
    row: dict[str, Any], kind: str, message: str, model: str | None = None,
    hashes: tuple[str, str] | None = None,
) -> str:  # fmt: skip
    record = make_record(row["path"], row["kind"] or None, model=model, hashes=hashes,
                         error=RecordError(kind=kind, message=message))  # fmt: skip
    return json.dumps(record.to_json(), ensure_ascii=False)


class Prepare:
    """Resume check and decoding, one asset per call."""

    def __init__(
        self, settings: CaptionSettings, models: Models, settings_hash: str,
        done: dict[str, str],
    ) -> None:  # fmt: skip
        self.settings, self.models, self.settings_hash = settings, models, settings_hash
        self.done = done
        self.media = MediaPool(1, settings.decode_timeout_s)

    def __call__(self, batch: Batch) -> Batch:
        return _batch([self._one(row) for row in _rows(batch)])

    def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {"path": row["path"], "kind": row["kind"], "skipped": row["skipped"],
               "identity": "", "part": "", "meta": "", "prepare_s": 0.0, "model": "",
               "record": "", "resumed": False}  # fmt: skip
        if row["skipped"] or not row["path"]:
            return out
        if row["error"]:
            out["record"] = _error_record(row, "input", row["error"])
            return out
        started = time.perf_counter()
        model: str | None = None
        hashes: tuple[str, str] | None = None
        try:
            source = _source(row)
            identity = content_hash(source)
            out["identity"] = identity
            if self.done.get(row["path"]) == identity:
                out["resumed"] = True
                return out
            hashes = (identity, self.settings_hash)
            image = row["kind"] == "image"
            model = self.models.image if image else self.models.video
            if model is None:
                raise ConfigurationError(
                    f"{row['path']}: no {row['kind']} model is served; start a profile that has "
                    f"one or pass --{row['kind']}-model"
                )
            options: MediaOptions = (
                self.models.image_options if image else self.models.video_options
            )
            prepared = self.media.prepare_blocking(row["kind"], source, options)
        except (BabelcapError, OSError) as error:
            kind = error.kind if isinstance(error, BabelcapError) else "input"
            out["record"] = _error_record(row, kind, str(error), model, hashes)
            return out
        except Exception as error:  # a bug costs one asset, not the job
            log.exception("%s: unexpected failure", row["path"])
            out["record"] = _error_record(row, "internal", f"{type(error).__name__}: {error}")
            return out
        out.update(part=json.dumps(prepared.part), meta=json.dumps(prepared.meta), model=model,
                   prepare_s=time.perf_counter() - started)  # fmt: skip
        return out

    def __del__(self) -> None:
        media = getattr(self, "media", None)
        if media is not None:
            media.close()


class Ask:
    """Every task of an asset, then its translations: one asset per call, many calls at once."""

    def __init__(
        self, settings: CaptionSettings, tasks: list[TaskPrompt], languages: list[str],
        settings_hash: str, concurrency: int,
    ) -> None:  # fmt: skip
        self.settings = settings.model_copy(update={"concurrency": concurrency})
        self.tasks, self.languages, self.settings_hash = tasks, languages, settings_hash
        self._asker: Asker | None = None
        self._reported = (0, 0)  # the pool's retries and translation requests already reported

    def _ready(self) -> Asker:
        # Made on first use, inside the actor's event loop (the pool's client belongs to it).
        if self._asker is None:
            from babelcap.client.runner import make_pool
            from babelcap.client.translate import TranslationBatcher

            pool = make_pool(self.settings)
            self._asker = Asker(self.settings, self.tasks, pool,
                                TranslationBatcher(pool, self.languages))  # fmt: skip
        return self._asker

    async def __call__(self, batch: Batch) -> Batch:
        rows = _rows(batch)
        done = await asyncio.gather(*(self._one(row) for row in rows))
        return _batch(list(done))

    async def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {"path": row["path"], "skipped": row["skipped"], "resumed": row["resumed"],
               "record": row["record"], "stopped": "", "retries": 0, "translations": 0}  # fmt: skip
        if row["record"] or row["resumed"] or row["skipped"] or not row["path"]:
            return out
        try:
            await self._answer(row, out)
        finally:
            self._count(out)
        return out

    def _count(self, out: dict[str, Any]) -> None:
        """What this actor's pool did since its last row (the driver adds them up)."""
        if self._asker is None:
            return
        now = (self._asker.pool.retries, self._asker.batcher.requests)
        out["retries"], out["translations"] = now[0] - self._reported[0], now[1] - self._reported[1]
        self._reported = now

    async def _answer(self, row: dict[str, Any], out: dict[str, Any]) -> None:
        started = time.perf_counter() - float(row["prepare_s"])
        meta = json.loads(row["meta"])
        prepared = Prepared(json.loads(row["part"]), meta)
        tasks: dict[str, TaskResult] = {}
        completions: dict[str, Completion] = {}
        timings = {"prepare_s": float(row["prepare_s"])}
        translations: dict[str, dict[str, str]] = {}
        failure: RecordError | None = None
        try:
            translations = await self._ready().answer(
                row["path"], row["kind"], row["model"], prepared, tasks, completions, timings
            )
        except ServerUnavailableError as error:
            out["stopped"] = str(error)
            return
        except BabelcapError as error:
            failure = RecordError(kind=error.kind, message=str(error))
        except Exception as error:  # a bug costs one asset, not the job
            log.exception("%s: unexpected failure", row["path"])
            failure = RecordError(kind="internal", message=f"{type(error).__name__}: {error}")
        record: ResultRecord = make_record(
            row["path"], row["kind"], started=started, error=failure, model=row["model"],
            media=meta, tasks=tasks, translations=translations,
            hashes=(row["identity"], self.settings_hash), timings=timings,
        )  # fmt: skip
        out["record"] = json.dumps(record.to_json(), ensure_ascii=False)
