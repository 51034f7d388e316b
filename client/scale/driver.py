"""The Ray engine's driver: join or start Ray, run listing -> Prepare -> Ask, and write what
comes back as shards.

The driver holds no media and no listing: it reads finished records as the pipeline streams
them (a few KB each) and hands them to the :class:`~babelcap.client.shards.ShardStore`, the
same writer the local engine uses for a URI output, so both engines write the same records and
resume the same way. Ray Data's backpressure keeps the listing from running ahead of the
decoders, and the decoders from running ahead of the servers.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from babelcap.client.config import CaptionSettings
from babelcap.client.plan import Models
from babelcap.client.progress import Progress, RunStats
from babelcap.client.records import ResultRecord
from babelcap.client.shards import ShardStore
from babelcap.core.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SETTINGS,
    EXIT_UNAVAILABLE,
    ConfigurationError,
)
from babelcap.prompts import TaskPrompt

__all__ = ["caption_on_ray", "start_ray", "stop_ray"]

log = logging.getLogger(__name__)

#: Seconds to wait for a cluster named by --ray-address before giving up.
CONNECT_TIMEOUT_S = 30


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise ConfigurationError(
            "--engine ray needs Ray Data: pip install 'babelcap[ray]' (or use --engine local)"
        ) from error
    return ray


def start_ray(settings: CaptionSettings) -> float:
    """Join the cluster ``--ray-address`` (or RAY_ADDRESS) names, else start a local one;
    returns the seconds it took. An unreachable cluster is one ConfigurationError."""
    ray = _import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = settings.ray_address or os.environ.get("RAY_ADDRESS") or None
    started = time.perf_counter()
    for name in ("ray", "ray.data"):  # babelcap's progress and summary say what matters
        logging.getLogger(name).setLevel(logging.ERROR)
    # Ray's C++ core logs at ERROR that actors' constructor arguments live in the object store
    # (ray-project/ray#53727), on every run; babelcap reports what fails itself.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": True}
    if address is None:
        cpus = settings.ray_cpus or max(4, 2 * (os.cpu_count() or 1))
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, local cluster
        ray.init(num_cpus=cpus, object_store_memory=256 * 1024**2, include_dashboard=False,
                 **quiet)  # fmt: skip
    else:
        _check_address(address)
        # A port that answers but is not a Ray head makes ray.init wait for ever: a watchdog
        # ends the run in one line instead (nothing has been written yet).
        watchdog = threading.Timer(CONNECT_TIMEOUT_S, _give_up, args=(address,))
        watchdog.daemon = True
        watchdog.start()
        try:
            ray.init(address=address, **quiet)
        except Exception as error:  # ConnectionError, RuntimeError, grpc errors...
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ConfigurationError(
                f"--ray-address {address}: cannot join the Ray cluster ({type(error).__name__}: "
                f"{first[:200]}); check that `ray start --head` runs there and the port is "
                "reachable, or leave --ray-address out to start a local Ray"
            ) from error
        finally:
            watchdog.cancel()
    if threading.current_thread() is threading.main_thread():
        # Ray's core worker dumps a stack trace on SIGTERM; babelcap stops as on Ctrl-C
        # instead: the buffered records are written, the lock is let go, exit status 130.
        signal.signal(signal.SIGTERM, _interrupted)
    return time.perf_counter() - started


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _give_up(address: str) -> None:
    sys.stderr.write(
        f"babelcap caption: --ray-address {address}: no Ray cluster answered in "
        f"{CONNECT_TIMEOUT_S} s (is that the head's GCS port?); nothing was written\n"
    )
    sys.stderr.flush()
    os._exit(EXIT_SETTINGS)


def _configure() -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # babelcap's own progress line instead
    context.print_on_execution_start = False
    context.verbose_stats_logs = False


def caption_on_ray(
    settings: CaptionSettings,
    paths: list[str],
    tasks: list[TaskPrompt],
    store: ShardStore,
    plan: tuple[Models, list[str], str],
    ray_start_s: float,
) -> tuple[dict[str, Any], int]:
    """Run the whole job on the Ray that :func:`start_ray` joined (``plan``: the models,
    languages and settings hash the servers gave); returns the summary and the exit code, as
    the local engine does."""
    ray = _import_ray()
    models, languages, settings_hash = plan
    return _run(ray, settings, paths, tasks, store, models, languages, settings_hash,
                ray_start_s)  # fmt: skip


def stop_ray() -> None:
    """Leave the cluster (and stop a local Ray this run started)."""
    ray = _import_ray()
    if ray.is_initialized():
        ray.shutdown()


def _check_address(address: str) -> None:
    """Fail in one line, now, when the cluster's port does not answer: ray.init itself waits
    for ever on an address where nothing listens."""
    if address in ("auto", "local"):
        return  # Ray finds (or fails to find) the cluster on this machine at once
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError(
            f"--ray-address {address}: give auto, HOST:PORT (the head's GCS port, 6379 by "
            "default) or ray://HOST:10001"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as error:
        raise ConfigurationError(
            f"--ray-address {address}: nothing answers there ({error.strerror or error}); check "
            "that `ray start --head` runs on that machine and the port is reachable, or leave "
            "--ray-address out to start a local Ray"
        ) from error


def _run(
    ray: Any, settings: CaptionSettings, paths: list[str], tasks: list[TaskPrompt],
    store: ShardStore, models: Any, languages: list[str], settings_hash: str, started_ray: float,
) -> tuple[dict[str, Any], int]:  # fmt: skip
    from ray.data import ActorPoolStrategy

    from babelcap.client.scale.source import ListingSource
    from babelcap.client.scale.stages import Ask, Prepare

    _configure()
    store.settings = settings_hash
    store.open()
    done = {path: kept[0] for path, kept in store.current.items()}
    ask_actors = max(1, math.ceil(len(settings.server) / 4))
    per_actor = max(1, math.ceil(settings.concurrency / ask_actors))
    in_flight = max(2, math.ceil(per_actor / max(1, len(tasks))) + 1)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    decoders = max(1, min(settings.media_workers, cpus - 1) if cpus > 1 else 1)
    listing = ListingSource(
        paths, str(settings.files_from) if settings.files_from else None, settings.include_hidden
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = (
            ray.data.read_datasource(listing, num_cpus=0.25)
            .map_batches(
                Prepare, batch_size=1, num_cpus=1,
                fn_constructor_args=(settings, models, settings_hash, done),
                compute=ActorPoolStrategy(min_size=1, max_size=decoders),
            )
            .map_batches(
                Ask, batch_size=1, num_cpus=0.25,
                fn_constructor_args=(settings, tasks, languages, settings_hash, per_actor),
                compute=ActorPoolStrategy(size=ask_actors,
                                          max_concurrent_calls_per_actor=in_flight),
            )
        )  # fmt: skip
    stats = RunStats()
    progress = Progress(stats, quiet=settings.quiet)
    skipped: Counter[str] = Counter()
    seen: set[str] = set()
    first_record: float | None = None
    pipeline_started = time.perf_counter()
    retries = translations = 0
    try:
        for row in dataset.iter_rows():
            retries += int(row.get("retries") or 0)
            translations += int(row.get("translations") or 0)
            if row["skipped"]:
                skipped.update(json.loads(row["skipped"]))
                continue
            if row["stopped"]:
                if not stats.stopped:
                    stats.stopped = row["stopped"]
                    log.error("%s", row["stopped"])
                break
            if row["path"] in seen:
                skipped["named twice"] += 1
                continue
            seen.add(row["path"])
            if row["resumed"]:
                stats.resumed += 1
                progress.update(resumed=True)
                continue
            record = ResultRecord.model_validate_json(row["record"])
            store.append(record)
            if first_record is None:
                first_record = time.perf_counter() - pipeline_started
            stats.add(record)
            progress.update(record)
    finally:
        progress.close()
        store.close()
    summary = stats.summary(skipped, settings.output)
    summary["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    summary["retries"] = retries
    summary["translation_requests"] = translations
    summary["engine"] = {
        "name": "ray",
        "ray_start_s": round(started_ray, 3),
        "first_record_s": round(first_record, 3) if first_record is not None else None,
        "decode_actors": decoders,
        "ask_actors": ask_actors,
        "cluster_cpus": cpus,
    }
    summary["resume"] = {"kept": store.kept, "redone": store.replaced, "changed": store.changed}
    code = EXIT_UNAVAILABLE if stats.stopped else EXIT_FAILED if stats.errors else EXIT_OK
    return summary, code
