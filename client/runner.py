"""``babelcap caption``: walk -> decode (worker processes) -> ask every task (concurrently) ->
parse tags -> translate (batched across assets) -> append one record per asset.

Failures are data: a bad file or a failed request becomes that asset's error record and the
run goes on. Only "no server answers" stops the run, cleanly, keeping everything finished.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from babelcap.client.asking import Asker
from babelcap.client.config import CaptionSettings
from babelcap.client.discover import Found, Walk, read_file_list
from babelcap.client.media import MediaPool
from babelcap.client.plan import Models, choose_models, select_tasks
from babelcap.client.progress import Progress, RunStats
from babelcap.client.records import RecordError, ResultRecord, TaskResult, make_record
from babelcap.client.requests import Completion, RetryPolicy, ServerPool
from babelcap.client.shards import ShardLock, ShardStore, is_sharded
from babelcap.client.storage import check_readable, is_uri, local_path
from babelcap.client.store import (
    Mode,
    OutputLock,
    ResultStore,
    content_hash,
    settings_hash,
    sidecar,
    write_json,
)
from babelcap.client.translate import TranslationBatcher
from babelcap.core.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    BabelcapError,
    ConfigurationError,
    RequestFailedError,
    ServerUnavailableError,
)
from babelcap.prompts import TaskPrompt

__all__ = ["Hooks", "Observer", "caption", "write_summary"]

log = logging.getLogger(__name__)


#: Each record and its tasks' completions (per-chunk timings included), for load generators.
Observer = Callable[[ResultRecord, dict[str, Completion]], None]


@dataclass(frozen=True)
class Hooks:
    """For load generators (``babelcap bench``): watch every asset, pace and bound the feed."""

    observer: Observer | None = None
    """Called with each record and its tasks' completions (per-chunk timings included)."""
    max_assets: int | None = None
    """Feed at most this many assets."""
    stop_after_s: float | None = None
    """Feed no new asset after this many seconds."""
    rate_per_s: float | None = None
    """Feed assets as a Poisson process of this rate (the concurrency limit still applies)."""
    seed: int = 0


class _Run:
    def __init__(
        self,
        settings: CaptionSettings,
        tasks: list[TaskPrompt],
        models: Models,
        pool: ServerPool,
        media: MediaPool,
        store: ResultStore | ShardStore,
        batcher: TranslationBatcher,
        progress: Progress,
        skipped: Counter[str],
    ) -> None:
        self.settings, self.tasks, self.models = settings, tasks, models
        self.pool, self.media, self.store = pool, media, store
        self.asker = Asker(settings, tasks, pool, batcher)
        self.batcher, self.progress, self.stats = batcher, progress, progress.stats
        self.skipped = skipped
        self.stop = asyncio.Event()
        self.observer: Observer | None = None
        self.paths: set[str] = set()  # one record per path and run, however often it is named

    async def worker(self, queue: asyncio.Queue[Found | None]) -> None:
        while (found := await queue.get()) is not None:
            if self.stop.is_set():
                continue  # drain without work
            if str(found.path) in self.paths:
                self.skipped["named twice"] += 1
                continue
            self.paths.add(str(found.path))
            completions: dict[str, Completion] = {}
            try:
                record = await self.asset(found, completions)
            except ServerUnavailableError as error:
                if not self.stop.is_set():
                    self.stats.stopped = str(error)
                    log.error("%s", error)
                self.stop.set()
                continue
            except Exception as error:  # a bug must cost one asset, not the batch
                log.exception("%s: unexpected failure", found.path)
                message = f"{type(error).__name__}: {error} (please report this)"
                completions = {}
                record = make_record(
                    str(found.path), found.kind, error=RecordError(kind="internal", message=message)
                )
            if record is not None:
                await asyncio.to_thread(self.store.append, record)
                if self.observer is not None:
                    self.observer(record, completions)
                self.stats.add(record)
                self.progress.update(record)

    async def asset(self, found: Found, completions: dict[str, Completion]) -> ResultRecord | None:
        """The record of one asset (None: already done); its tasks' completions are added to
        ``completions``."""
        started = time.perf_counter()
        model: str | None = None
        meta: dict[str, Any] = {}
        tasks: dict[str, TaskResult] = {}
        translations: dict[str, dict[str, str]] = {}
        hashes: tuple[str, str] | None = None
        timings: dict[str, float] = {}
        failure: RecordError | None = None
        try:
            if found.error:
                raise OSError(found.error)
            assert found.kind is not None
            digest = await asyncio.to_thread(content_hash, found.path)
            if self.store.is_done(found.path, digest):
                self.stats.resumed += 1
                self.progress.update(resumed=True)
                return None
            hashes = (digest, self.store.settings)
            image = found.kind == "image"
            model = self.models.image if image else self.models.video
            if model is None:
                raise ConfigurationError(
                    f"{found.path}: no {found.kind} model is served; start a profile that has "
                    f"one or pass --{found.kind}-model"
                )
            options = self.models.image_options if image else self.models.video_options
            t0 = time.perf_counter()
            prepared = await self.media.prepare(found.kind, found.path, options)
            timings["prepare_s"] = time.perf_counter() - t0
            meta = prepared.meta
            translations = await self.asker.answer(
                str(found.path), found.kind, model, prepared, tasks, completions, timings
            )
        except ServerUnavailableError:
            raise
        except (BabelcapError, OSError) as error:
            kind = error.kind if isinstance(error, BabelcapError) else "input"
            failure = RecordError(kind=kind, message=str(error))
        return make_record(
            str(found.path), found.kind, started=started, error=failure, model=model,
            media=meta, tasks=tasks, translations=translations, hashes=hashes, timings=timings,
        )  # fmt: skip


def _sources(settings: CaptionSettings, paths: list[str]) -> Iterator[str]:
    yield from paths
    if settings.files_from is not None:
        yield from read_file_list(settings.files_from)


async def _feed(
    walk: Walk, queue: asyncio.Queue[Found | None], stop: asyncio.Event, hooks: Hooks
) -> None:
    iterator = iter(walk)
    rng = random.Random(hooks.seed)
    started = time.monotonic()
    fed = 0
    while not stop.is_set():
        chunk = await asyncio.to_thread(lambda: list(itertools.islice(iterator, 64)))
        if not chunk:
            return
        for found in chunk:
            if hooks.max_assets is not None and fed >= hooks.max_assets:
                return
            if hooks.stop_after_s is not None and time.monotonic() - started > hooks.stop_after_s:
                return
            if hooks.rate_per_s:
                await asyncio.sleep(rng.expovariate(hooks.rate_per_s))
            await queue.put(found)
            fed += 1


async def _count(settings: CaptionSettings, paths: list[str], progress: Progress) -> None:
    """Count the inputs in the background so the progress bar can show an ETA."""
    if progress.bar is None:
        return
    counting = Walk(_sources(settings, paths), include_hidden=settings.include_hidden)
    progress.set_total(await asyncio.to_thread(lambda: sum(1 for _ in counting)))


async def _validate_languages(pool: ServerPool, languages: list[str]) -> list[str]:
    """Resolve the codes on the server (``fr`` -> ``fra_Latn``); a bad one fails the run now."""
    if not languages:
        return []
    try:
        result = await pool.translate(["Hello."], languages)
    except RequestFailedError as error:
        raise ConfigurationError(f"--languages: {error}") from error
    return list(result)


def _check_inputs(settings: CaptionSettings, paths: list[str]) -> None:
    """Command-line mistakes that need no server, each refused in one line."""
    if not paths and settings.files_from is None:
        raise ConfigurationError("give at least one file, folder or glob (or --files-from FILE)")
    if settings.resume and settings.overwrite:
        raise ConfigurationError("--resume and --overwrite exclude each other")
    listing = settings.files_from
    if listing is not None and (not listing.exists() or listing.is_dir()):
        what = "is a folder" if listing.is_dir() else "does not exist"
        raise ConfigurationError(
            f"--files-from {listing} {what}; give a text file with one path a line"
        )


async def caption(
    settings: CaptionSettings, paths: list[str], hooks: Hooks | None = None
) -> tuple[dict[str, Any], int]:
    """Caption everything under ``paths``; returns the run summary and the exit code
    (EXIT_OK, EXIT_FAILED when some assets failed, EXIT_UNAVAILABLE when it stopped because no
    server answered). The output is locked for the whole run, and ``<output>.summary.json`` is
    written before the lock is let go."""
    hooks = hooks or Hooks()
    _check_inputs(settings, paths)
    tasks = select_tasks(settings)
    mode: Mode = "resume" if settings.resume else "overwrite" if settings.overwrite else "new"
    if settings.engine == "ray" or is_sharded(settings.output):
        if settings.engine == "ray" and not is_sharded(settings.output):
            raise ConfigurationError(
                f"--output {settings.output}: --engine ray writes shards into a folder; end the "
                "name with / (results/) or give a prefix (s3://bucket/results)"
            )
        _check_sources(settings, paths)
        shards = ShardStore(settings.output, mode=mode, shard_records=settings.shard_records)
        shards.check()  # refused now; checked again under the lock
        if settings.engine == "ray":
            # Everything that can be refused is, before anything is written: the servers (a
            # wrong URL or model), then the cluster. Ray runs on this (the main) thread, where
            # it can install its signal handlers.
            from babelcap.client.scale.driver import caption_on_ray, start_ray, stop_ray

            plan = await plan_run(settings, tasks)
            ray_start_s = start_ray(settings)
            try:
                with ShardLock(settings.output):
                    summary, code = caption_on_ray(settings, paths, tasks, shards, plan,
                                                   ray_start_s)  # fmt: skip
                    shards.write_summary(summary)
            finally:
                stop_ray()
            return summary, code
        with ShardLock(settings.output):
            summary, code = await _caption(settings, paths, hooks, tasks, shards)
            shards.write_summary(summary)
        return summary, code
    output = Path(settings.output)
    _check_sources(settings, paths)
    with OutputLock(output):
        store = ResultStore(output, mode=mode)
        store.check()  # refused now, not after the servers were asked
        summary, code = await _caption(settings, paths, hooks, tasks, store)
        write_summary(summary, output)
    return summary, code


def _check_sources(settings: CaptionSettings, paths: list[str]) -> None:
    """Every bucket named on the command line answers a listing now (credentials, endpoint,
    permissions), in one line each, before anything is written."""
    for source in paths:
        if is_uri(source) and local_path(source) is None:
            check_readable(source)


async def _caption(
    settings: CaptionSettings, paths: list[str], hooks: Hooks, tasks: list[TaskPrompt],
    store: ResultStore | ShardStore,
) -> tuple[dict[str, Any], int]:  # fmt: skip
    pool = make_pool(settings)
    stats = RunStats()
    progress = Progress(stats, quiet=settings.quiet)
    media: MediaPool | None = None
    opened = False
    walk = Walk(_sources(settings, paths), include_hidden=settings.include_hidden)
    try:
        models = await choose_models(pool, settings)
        languages = await _validate_languages(pool, settings.languages)
        store.settings = fingerprint(settings, tasks, models, languages)
        store.open()
        opened = True
        media = MediaPool(settings.media_workers, settings.decode_timeout_s)
        batcher = TranslationBatcher(pool, languages)
        run = _Run(settings, tasks, models, pool, media, store, batcher, progress, walk.skipped)
        run.observer = hooks.observer
        slots = max(2, math.ceil(settings.concurrency / len(tasks))) + settings.media_workers
        queue: asyncio.Queue[Found | None] = asyncio.Queue(maxsize=2 * slots)
        workers = [asyncio.create_task(run.worker(queue)) for _ in range(slots)]
        counter = asyncio.create_task(_count(settings, paths, progress))
        try:
            await _feed(walk, queue, run.stop, hooks)
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
            counter.cancel()
    finally:
        progress.close()
        store.close()
        if media is not None:
            media.close()
        await pool.aclose()
    summary = stats.summary(walk.skipped, str(settings.output))
    summary["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    summary["retries"] = pool.retries
    summary["translation_requests"] = batcher.requests
    if opened:
        summary["resume"] = {"kept": store.kept, "redone": store.replaced,
                             "changed": store.changed}  # fmt: skip
    code = EXIT_UNAVAILABLE if stats.stopped else EXIT_FAILED if stats.errors else EXIT_OK
    return summary, code


def fingerprint(
    settings: CaptionSettings, tasks: list[TaskPrompt], models: Models, languages: list[str]
) -> str:
    """The settings hash of a run's records: everything that changes an asset's result."""
    return settings_hash({
        "settings": settings.fingerprint(),
        "languages": languages,
        "prompts": [task.fingerprint() for task in tasks],
        "models": [models.image, models.video],
        "media": [models.image_options.__dict__, models.video_options.__dict__],
    })  # fmt: skip


async def plan_run(
    settings: CaptionSettings, tasks: list[TaskPrompt]
) -> tuple[Models, list[str], str]:
    """Ask the servers for the models and resolve the languages: (models, languages, settings
    hash); the Ray engine's driver does this once before its pipeline starts."""
    pool = make_pool(settings)
    try:
        models = await choose_models(pool, settings)
        languages = await _validate_languages(pool, settings.languages)
    finally:
        await pool.aclose()
    return models, languages, fingerprint(settings, tasks, models, languages)


def make_pool(settings: CaptionSettings) -> ServerPool:
    """The request pool over every ``--server``, as the settings say."""
    return ServerPool(
        settings.server,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        concurrency=settings.concurrency,
        request_timeout_s=settings.request_timeout_s,
        policy=RetryPolicy(
            max_retries=settings.max_retries, unavailable_timeout_s=settings.unavailable_timeout_s
        ),
    )


def write_summary(summary: dict[str, Any], output: Path) -> Path:
    """``<output>.summary.json``, written atomically (:func:`caption` does, under its lock)."""
    return write_json(sidecar(output, ".summary.json"), summary)
