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

from babelcap.client.config import CaptionSettings
from babelcap.client.discover import Found, Walk, read_file_list
from babelcap.client.media import MediaPool, Prepared
from babelcap.client.plan import Models, choose_models, select_tasks
from babelcap.client.progress import Progress, RunStats
from babelcap.client.records import RecordError, ResultRecord, TaskResult, make_record
from babelcap.client.requests import Completion, RetryPolicy, ServerPool
from babelcap.client.store import (
    Mode,
    OutputLock,
    ResultStore,
    content_hash,
    settings_hash,
    sidecar,
    write_json,
)
from babelcap.client.tags import parse_tags
from babelcap.client.translate import TranslationBatcher
from babelcap.core.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    BabelcapError,
    ConfigurationError,
    RequestFailedError,
    ServerUnavailableError,
    TranslationError,
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


def _media_variables(meta: dict[str, Any]) -> dict[str, Any]:
    """What a prompt may say about the media it is asked about."""
    return {
        "frames": len(meta.get("sampled_timestamps", [])),
        "duration": meta.get("duration", 0.0),
        "width": meta.get("width", 0),
        "height": meta.get("height", 0),
    }


class _Run:
    def __init__(
        self,
        settings: CaptionSettings,
        tasks: list[TaskPrompt],
        models: Models,
        pool: ServerPool,
        media: MediaPool,
        store: ResultStore,
        batcher: TranslationBatcher,
        progress: Progress,
        skipped: Counter[str],
    ) -> None:
        self.settings, self.tasks, self.models = settings, tasks, models
        self.pool, self.media, self.store = pool, media, store
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
            await self._ask(found.kind, model, prepared, tasks, completions, timings)
            t0 = time.perf_counter()
            translated = await self._translate(str(found.path), tasks)
            if translated is not None:
                timings["translation_s"] = time.perf_counter() - t0
                translations = translated
        except ServerUnavailableError:
            raise
        except (BabelcapError, OSError) as error:
            kind = error.kind if isinstance(error, BabelcapError) else "input"
            failure = RecordError(kind=kind, message=str(error))
        return make_record(
            str(found.path), found.kind, started=started, error=failure, model=model,
            media=meta, tasks=tasks, translations=translations, hashes=hashes, timings=timings,
        )  # fmt: skip

    async def _ask(
        self, kind: str, model: str, prepared: Prepared, results: dict[str, TaskResult],
        completions: dict[str, Completion], timings: dict[str, float],
    ) -> None:  # fmt: skip
        """Ask every task at once; each answer goes into ``results`` (and ``completions``), and
        the first failure is raised once all have finished."""
        variables = _media_variables(prepared.meta)
        tasks = [task for task in self.tasks if task.variant(kind) is not None]
        temperature = {
            task.task: task.temperature if self.settings.temperature is None
            else self.settings.temperature
            for task in tasks
        }  # fmt: skip
        t0 = time.perf_counter()
        answers = await asyncio.gather(
            *(
                self.pool.chat(
                    model,
                    task.messages(kind, prepared.part, variables),
                    max_tokens=self.settings.max_tokens or task.max_tokens,
                    temperature=temperature[task.task],
                )
                for task in tasks
            ),
            return_exceptions=True,
        )
        timings["inference_s"] = time.perf_counter() - t0
        failure: BaseException | None = None
        for task, answer in zip(tasks, answers, strict=True):
            if isinstance(answer, Completion):
                results[task.task] = TaskResult(
                    text=answer.text.strip(),
                    prompt_tokens=answer.prompt_tokens,
                    completion_tokens=answer.completion_tokens,
                    ttft_s=round(answer.ttft_s, 4),
                    latency_s=round(answer.latency_s, 4),
                    finish_reason=answer.finish_reason,
                    temperature=temperature[task.task],
                    attempts=answer.attempts if answer.attempts > 1 else None,
                    tags=parse_tags(answer.text) if task.output == "tags" else None,
                )
                completions[task.task] = answer
            elif isinstance(answer, ServerUnavailableError):
                raise answer
            elif isinstance(answer, BabelcapError):
                failure = failure or answer
            else:
                raise answer
        if failure is not None:
            raise failure

    async def _translate(
        self, path: str, results: dict[str, TaskResult]
    ) -> dict[str, dict[str, str]] | None:
        """{language: {task: text}} of the tasks chosen for translation (None: nothing to
        translate)."""
        names = [n for n in self.settings.translate if n in results]
        texts = [results[n].text for n in names]
        if not texts or not self.batcher.languages:
            return None
        try:
            outputs = await self.batcher.translate(texts)
        except RequestFailedError as error:
            raise TranslationError(f"{path}: translation failed: {error}") from error
        return {
            language: dict(zip(names, values, strict=True)) for language, values in outputs.items()
        }


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
    with OutputLock(settings.output):
        store = ResultStore(settings.output, mode=mode)
        store.check()  # refused now, not after the servers were asked
        summary, code = await _caption(settings, paths, hooks, tasks, store)
        write_summary(summary, settings.output)
    return summary, code


async def _caption(
    settings: CaptionSettings, paths: list[str], hooks: Hooks, tasks: list[TaskPrompt],
    store: ResultStore,
) -> tuple[dict[str, Any], int]:  # fmt: skip
    pool = ServerPool(
        settings.server,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        concurrency=settings.concurrency,
        request_timeout_s=settings.request_timeout_s,
        policy=RetryPolicy(
            max_retries=settings.max_retries, unavailable_timeout_s=settings.unavailable_timeout_s
        ),
    )
    stats = RunStats()
    progress = Progress(stats, quiet=settings.quiet)
    media: MediaPool | None = None
    opened = False
    walk = Walk(_sources(settings, paths), include_hidden=settings.include_hidden)
    try:
        models = await choose_models(pool, settings)
        languages = await _validate_languages(pool, settings.languages)
        fingerprint = {
            "settings": settings.fingerprint(),
            "languages": languages,
            "prompts": [task.fingerprint() for task in tasks],
            "models": [models.image, models.video],
            "media": [models.image_options.__dict__, models.video_options.__dict__],
        }
        store.settings = settings_hash(fingerprint)
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


def write_summary(summary: dict[str, Any], output: Path) -> Path:
    """``<output>.summary.json``, written atomically (:func:`caption` does, under its lock)."""
    return write_json(sidecar(output, ".summary.json"), summary)
