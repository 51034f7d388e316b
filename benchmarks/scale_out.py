"""Scale-out: ``babelcap caption`` over K = 1, 2, 4 busy endpoints, and the Ray engine against the
local engine on one real tiny-cpu server, side by side in one run.

    babelcap bench scale-out [--engines local,ray] [--endpoints 1,2,4] [--capacity 8]
                             [--latency-s 2] [--assets-per-endpoint 150] [--tiny-assets 750]
    python -m babelcap.benchmarks.scale_out ...      (the same flags)

1. **Endpoints.** For each K, K fresh busy servers (benchmarks/busy_server.py: real HTTP servers
   that each serve at most ``--capacity`` requests at once, the rest queued FIFO, each taking
   ``--latency-s``: what a saturated vLLM looks like from the client) and one ``babelcap caption
   --engine E --server URL1 .. URLK`` subprocess over K x ``--assets-per-endpoint`` images (each
   run lasts about as long), with ``--concurrency`` = ``--oversubscribe`` x capacity x K so the
   servers, not the client, are the limit. Target (issue 15): rate(K) >= 0.85 x K x rate(1).
2. **Tiny server.** ``babelcap serve --profile tiny-cpu`` (or ``--server``), held under
   ``--vllm-lock`` (one vLLM at a time on this machine), warmed up, then the same caption run
   (``--tiny-tasks``, ``--tiny-languages``: by default caption's own, four tasks and three
   languages) with each engine over ``--tiny-assets`` of the same images. Target: Ray >= 0.75
   x local.

Throughput is measured at steady state, between ``--trim`` and 1 - ``--trim`` of each run
(default: the middle 80 %), which leaves out start-up (Ray's start, the first wave of requests)
and the tail, as the least-squares slope of a count over time (which neither a wave of
completions nor a burst skews), from both sides:

- servers (the verdicts): when each chat completion ended, from the busy servers' ``/stats``,
  or from the tiny server's ``/metrics`` counter sampled every 0.5 s; divided by the tasks of
  an asset;
- records: every run writes shards of one record (``--shard-records 1``), so each shard's
  modification time is when the driver wrote its record. Under load the Ray driver writes
  rows late and in bursts, then catches up, which inflates this figure; it is a cross-check.

Ray's own start-up (``ray.init``) and each run's time to first record are reported on their
own lines. Writes ``scale_out.json`` and ``scale_out.md`` to ``--output-dir``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from babelcap.core import defaults
from babelcap.core.errors import ConfigurationError
from babelcap.core.settings import split_list

__all__ = [
    "SCALE_TARGET",
    "TINY_TARGET",
    "ScaleOutSettings",
    "run_scale_out",
    "runs_failed",
    "steady_rate",
]

#: Issue 15: rate(K) >= SCALE_TARGET x K x rate(1); Ray >= TINY_TARGET x local on tiny-cpu.
SCALE_TARGET = 0.85
TINY_TARGET = 0.75
ENGINES = ("local", "ray")


class ScaleOutSettings(BaseSettings):
    """``babelcap bench scale-out`` (also as ``BABELCAP_BENCH_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_BENCH_", extra="forbid")

    engines: Annotated[list[str], NoDecode] = Field(
        ["local", "ray"], description="scale-out: the engines compared on the tiny server"
    )
    scale_engines: Annotated[list[str], NoDecode] = Field(
        [], description="scale-out: the engines run over 1, 2, 4 endpoints (default: ray when "
        "in --engines, else --engines)",
    )  # fmt: skip
    endpoints: Annotated[list[int], NoDecode] = Field(
        [1, 2, 4], description="scale-out: the numbers of busy endpoints (K); '' to skip"
    )
    capacity: int = Field(8, ge=1, description="scale-out: requests a busy endpoint serves at once")
    latency_s: float = Field(2.0, gt=0, description="scale-out: seconds a busy request takes")
    assets_per_endpoint: int = Field(
        150, ge=10, description="scale-out: images per endpoint in each K run"
    )
    oversubscribe: int = Field(
        2, ge=1, description="scale-out: client --concurrency = this x capacity x K"
    )
    tiny_assets: int = Field(
        750, ge=0, description="scale-out: images of each tiny-server run (0: skip that part)"
    )
    tiny_concurrency: int = Field(16, ge=1, description="scale-out: --concurrency on tiny-cpu")
    server: str | None = Field(
        None, description="a running babelcap server to measure (scale-out: for the engine "
        "comparison, instead of starting --profile)",
    )  # fmt: skip
    profile: str = Field("tiny-cpu", description="profile to start when no --server is given")
    image_size: str = Field("256x192", description="synthetic image size WxH")
    tasks: Annotated[list[str], NoDecode] = Field(["description"], description="tasks per asset")
    languages: Annotated[list[str], NoDecode] = Field(
        ["fra_Latn"], description="translation targets ('' for none)"
    )
    tiny_tasks: Annotated[list[str], NoDecode] = Field(
        ["description", "tags", "sentiment", "ad"],
        description="scale-out: tasks of the tiny-server runs (caption's default)",
    )
    tiny_languages: Annotated[list[str], NoDecode] = Field(
        ["fra_Latn", "spa_Latn", "hin_Deva"],
        description="scale-out: languages of the tiny-server runs (caption's default)",
    )
    ray_cpus: int | None = Field(None, ge=1, description="scale-out: --ray-cpus of Ray runs")
    trim: float = Field(
        0.1, ge=0, lt=0.5, description="scale-out: share of records left out at each end"
    )
    vllm_lock: str = Field(
        "/tmp/babelcap-vllm.lock",
        description="scale-out: flock held while the tiny server runs ('' for none)",
    )
    output_dir: Path = Field(Path("out/bench-scale-out"), description="where reports go")
    startup_timeout_s: float = Field(
        defaults.STARTUP_TIMEOUT_S, gt=0, description="per started server"
    )
    seed: int = Field(0, description="seed of the synthetic media")

    @field_validator(
        "engines", "scale_engines", "endpoints", "tasks", "languages", "tiny_tasks",
        "tiny_languages", mode="before",
    )  # fmt: skip
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("engines", "scale_engines")
    @classmethod
    def _engines(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e not in ENGINES]
        if unknown:
            raise ValueError(f"unknown engine(s) {', '.join(unknown)}; choose from local, ray")
        return value

    def scaled(self) -> list[str]:
        """The engines of the endpoint runs."""
        if self.scale_engines:
            return self.scale_engines
        return ["ray"] if "ray" in self.engines else list(self.engines)


def steady_rate(times: list[float], trim: float = 0.1) -> float | None:
    """Records a second between the records at ``trim`` and ``1 - trim`` of ``times`` (when each
    was written, in seconds): the least-squares slope of their count; None with fewer than 3."""
    ordered = sorted(times)
    n = len(ordered)
    if n < 3:
        return None
    first = min(int(trim * n), n - 2)
    last = max(math.ceil((1 - trim) * n) - 1, first + 1)
    if ordered[last] <= ordered[first]:
        return None
    # The slope of the records' count over time, fitted by least squares: robust to records
    # that come in waves (a capacity-bound server finishes its requests together) or in bursts
    # (Ray hands finished rows to the driver in blocks), where counting from one record to
    # another gains or loses a wave.
    window = ordered[first : last + 1]
    return float(statistics.linear_regression(window, range(first, last + 1)).slope)


def sampled_rate(samples: list[tuple[float, float]], trim: float = 0.1) -> float | None:
    """Per second, from (time, cumulative count) samples: the least-squares slope of the samples
    between ``trim`` and ``1 - trim`` of the count's rise; None when it did not rise."""
    if len(samples) < 3:
        return None
    low, high = samples[0][1], samples[-1][1]
    rise = high - low
    window = [(t, c) for t, c in samples if low + trim * rise <= c <= high - trim * rise]
    if rise <= 0 or len(window) < 3 or window[-1][0] <= window[0][0]:
        return None
    times, counts = zip(*window, strict=True)
    return float(statistics.linear_regression(times, counts).slope)


def _chat_count(text: str) -> float:
    """Chat completions a babelcap server answered 200, from its ``/metrics``."""
    total = 0.0
    for line in text.splitlines():
        if (line.startswith("babelcap_requests_total{") and 'status="200"' in line
                and 'route="/v1/chat/completions"' in line):  # fmt: skip
            total += float(line.rpartition(" ")[2])
    return total


class _Completions:
    """Samples a babelcap server's count of answered chat completions every ``interval_s``, on a
    thread, while a run goes on."""

    def __init__(self, base: str, interval_s: float = 0.5) -> None:
        self.base, self.interval_s = base, interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        import httpx

        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    count = _chat_count(client.get(f"{self.base}/metrics").text)
                    self.samples.append((time.time(), count))
                self._stop.wait(self.interval_s)

    def __enter__(self) -> _Completions:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _media(settings: ScaleOutSettings, count: int) -> list[Path]:
    from babelcap.benchmarks.workload import Workload, synthetic_media

    workload = Workload(images=count, videos=0, image_size=settings.image_size, seed=settings.seed)
    folder = synthetic_media(workload, settings.output_dir / "media")
    return sorted(folder.glob("image-*.jpg"))


def _file_list(settings: ScaleOutSettings, paths: list[Path]) -> Path:
    listing = settings.output_dir / "scratch" / f"files-{len(paths)}.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"{p.resolve()}\n" for p in paths), encoding="utf-8")
    return listing


def _caption(
    settings: ScaleOutSettings, engine: str, urls: list[str], listing: Path, concurrency: int,
    name: str, tiny: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """One ``babelcap caption`` subprocess on fresh outputs; its figures."""
    tasks = settings.tiny_tasks if tiny else settings.tasks
    languages = settings.tiny_languages if tiny else settings.languages
    out = settings.output_dir / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [sys.executable, "-m", "babelcap", "caption", "--files-from", str(listing),
               *(a for url in urls for a in ("--server", url)),
               "--tasks", ",".join(tasks), "--languages", ",".join(languages),
               "--output", f"{out.resolve()}/", "--concurrency", str(concurrency), "--quiet",
               "--shard-records", "1"]  # fmt: skip
    if engine != "local":
        command += ["--engine", engine]
        if settings.ray_cpus:
            command += ["--ray-cpus", str(settings.ray_cpus)]
    log = settings.output_dir / "runs" / f"{name}.log"
    sys.stderr.write(f"scale-out: {name}: {engine} engine, {len(urls)} server(s), "
                     f"--concurrency {concurrency}\n")  # fmt: skip
    sampler = _Completions(urls[0]) if tiny else None
    launched = time.time()
    with log.open("wb") as handle, sampler or contextlib.nullcontext():
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT).returncode
    ended = time.time()
    summary_file = out / "summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.exists() else {}
    # A shard is written as soon as it holds a record (two finishing together may share one).
    times = [p.stat().st_mtime for p in out.glob("part-*.jsonl")
             for _ in range(p.read_bytes().count(b"\n"))]  # fmt: skip
    records = len(times)
    if code != 0 or summary.get("errors"):
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-8:]
        sys.stderr.write(f"scale-out: {name}: exit {code}, {records} records, errors "
                         f"{summary.get('errors')}; {log}:\n  ")  # fmt: skip
        sys.stderr.write("\n  ".join(tail) + "\n")
    engine_info = summary.get("engine") or {}
    rate = steady_rate(times, settings.trim)
    server_rate = sampled_rate(sampler.samples, settings.trim) if sampler else None
    return {
        "name": name,
        "engine": engine,
        "servers": len(urls),
        "concurrency": concurrency,
        "exit_code": code,
        "assets": summary.get("assets", records),
        "ok": summary.get("ok", 0),
        "errors": summary.get("errors"),
        "wall_s": round(ended - launched, 3),
        "first_record_s": round(min(times) - launched, 3) if times else None,
        "records_span_s": round(max(times) - min(times), 3) if times else None,
        "steady_assets_per_s": None if rate is None else round(rate, 3),
        "server_steady_assets_per_s": (
            None if server_rate is None else round(server_rate / max(1, len(tasks)), 3)
        ),
        "summary_assets_per_s": summary.get("assets_per_s"),
        "ray_start_s": engine_info.get("ray_start_s"),
        "engine_first_record_s": engine_info.get("first_record_s"),
        "engine_details": engine_info or None,
    }


def _endpoints(settings: ScaleOutSettings, media: list[Path]) -> list[dict[str, Any]]:
    from babelcap.benchmarks.busy_server import BusyConfig, busy_servers, stats

    config = BusyConfig(capacity=settings.capacity, latency_s=settings.latency_s)
    rows = []
    for engine in settings.scaled():
        for count in settings.endpoints:
            listing = _file_list(settings, media[: count * settings.assets_per_endpoint])
            concurrency = settings.oversubscribe * settings.capacity * count
            with busy_servers(count, config) as urls:
                row = _caption(settings, engine, urls, listing, concurrency,
                               f"{engine}-k{count}")  # fmt: skip
                served = [stats(url) for url in urls]
            row["served_per_server"] = [s["completed"] for s in served]
            done = [t for s in served for t in s["done_at"]]
            server_rate = steady_rate(done, settings.trim)
            row["server_steady_assets_per_s"] = (
                None if server_rate is None else round(server_rate / max(1, len(settings.tasks)), 3)
            )
            row["peak_in_flight_per_server"] = [s["peak_in_flight"] for s in served]
            requests_per_asset = max(1, len(settings.tasks))
            row["capacity_assets_per_s"] = round(
                count * settings.capacity / settings.latency_s / requests_per_asset, 3
            )
            rows.append(row)
    for engine in settings.scaled():
        mine = [r for r in rows if r["engine"] == engine]
        base = next((r for r in mine if r["servers"] == 1), None)
        for row in mine:
            for key, figure in (("scaling", "server_steady_assets_per_s"),
                                ("records_scaling", "steady_assets_per_s")):  # fmt: skip
                rate, one = row[figure], base and base[figure]
                row[key] = round(rate / (row["servers"] * one), 3) if rate and one else None
            rate = row["server_steady_assets_per_s"]
            row["of_capacity"] = round(rate / row["capacity_assets_per_s"], 3) if rate else None
    return rows


@contextlib.contextmanager
def _vllm_lock(path: str) -> Iterator[None]:
    if not path:
        yield
        return
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.stderr.write(f"scale-out: waiting for {path} (another vLLM runs)\n")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _tiny_server(settings: ScaleOutSettings) -> Iterator[str]:
    if settings.server:
        yield settings.server.rstrip("/").removesuffix("/v1")
        return
    from babelcap.server.launch import local_server

    with _vllm_lock(settings.vllm_lock):
        started = time.perf_counter()
        with local_server(settings.output_dir / "logs", profile=settings.profile,
                          timeout=settings.startup_timeout_s) as served:  # fmt: skip
            sys.stderr.write(f"scale-out: {settings.profile} ready in "
                             f"{time.perf_counter() - started:.0f} s\n")  # fmt: skip
            yield served.base


def _tiny(settings: ScaleOutSettings, media: list[Path]) -> dict[str, Any]:
    listing = _file_list(settings, media[: settings.tiny_assets])
    warm = _file_list(settings, media[: min(8, len(media))])
    rows = []
    with _tiny_server(settings) as base:
        _caption(settings, "local", [base], warm, settings.tiny_concurrency, "tiny-warmup",
                 tiny=True)  # fmt: skip
        for engine in settings.engines:
            rows.append(_caption(settings, engine, [base], listing, settings.tiny_concurrency,
                                 f"tiny-{engine}", tiny=True))  # fmt: skip
    result: dict[str, Any] = {"server": settings.server or settings.profile, "rows": rows}
    for key, figure in (("ray_vs_local", "server_steady_assets_per_s"),
                        ("records_ray_vs_local", "steady_assets_per_s")):  # fmt: skip
        by_engine = {r["engine"]: r[figure] for r in rows}
        if by_engine.get("local") and by_engine.get("ray"):
            result[key] = round(by_engine["ray"] / by_engine["local"], 3)
    return result


def _fmt(value: Any, spec: str = ".2f", unit: str = "") -> str:
    return "-" if value is None else format(value, spec) + unit


def markdown(result: dict[str, Any]) -> str:
    """The report's tables."""
    config = result["config"]
    lines = [
        "# babelcap bench scale-out",
        "",
        f"{result['hardware']['cpus_available']} CPUs ({result['hardware']['cpu']}), "
        f"{result['hardware']['memory_gib']} GiB; {result['timestamp']}. Busy endpoints: "
        f"capacity {config['capacity']}, latency {config['latency_s']:g} s; tasks "
        f"{', '.join(config['tasks'])}; languages {', '.join(config['languages']) or 'none'}; "
        f"images {config['image_size']}; steady state: between {config['trim']:.0%} and "
        f"{1 - config['trim']:.0%} of each run's completions.",
        "",
    ]
    header = (
        "| engine | endpoints | assets | concurrency | steady assets/s (servers) | "
        f"of capacity | rate(K) / (K x rate(1)) (>= {SCALE_TARGET}) | steady assets/s "
        "(records) | the same ratio (records) | first record | Ray start | wall |"
    )
    if result["endpoints"]:
        lines += [header, "|" + " --- |" * (header.count(" | ") + 1)]
    for row in result["endpoints"]:
        lines.append(
            f"| {row['engine']} | {row['servers']} | {row['assets']} | {row['concurrency']} | "
            f"{_fmt(row['server_steady_assets_per_s'])} | {_fmt(row['of_capacity'], '.0%')} | "
            f"{_fmt(row['scaling'], '.3f')} | {_fmt(row['steady_assets_per_s'])} | "
            f"{_fmt(row['records_scaling'], '.3f')} | {_fmt(row['first_record_s'], '.1f', ' s')} | "
            f"{_fmt(row['ray_start_s'], '.1f', ' s')} | {row['wall_s']:.1f} s |"
        )
    tiny = result.get("tiny")
    if tiny:
        lines += [
            *([""] if lines[-1] else []),
            f"One `{tiny['server']}` server; tasks {', '.join(config['tiny_tasks'])}; languages "
            f"{', '.join(config['tiny_languages']) or 'none'}:",
            "",
            "| engine | assets | concurrency | steady assets/s (server) | steady assets/s "
            "(records) | whole run assets/s | first record | Ray start | wall |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in tiny["rows"]:
            lines.append(
                f"| {row['engine']} | {row['assets']} | {row['concurrency']} | "
                f"{_fmt(row['server_steady_assets_per_s'])} | {_fmt(row['steady_assets_per_s'])} "
                f"| {_fmt(row['summary_assets_per_s'])} | "
                f"{_fmt(row['first_record_s'], '.1f', ' s')} | "
                f"{_fmt(row['ray_start_s'], '.1f', ' s')} | {row['wall_s']:.1f} s |"
            )
        if "ray_vs_local" in tiny:
            lines += ["", f"Ray / local at steady state: {tiny['ray_vs_local']:.3f} (>= "
                          f"{TINY_TARGET}; from the records: "
                          f"{_fmt(tiny.get('records_ray_vs_local'), '.3f')})."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _verdicts(result: dict[str, Any]) -> list[str]:
    lines = []
    for row in result["endpoints"]:
        if row["servers"] > 1 and row["scaling"] is not None:
            verdict = "ok" if row["scaling"] >= SCALE_TARGET else "MISSED"
            lines.append(f"{row['engine']} engine, {row['servers']} endpoints: {row['scaling']:.3f}"
                         f" x K x rate(1) (>= {SCALE_TARGET}: {verdict})")  # fmt: skip
    tiny = result.get("tiny") or {}
    if "ray_vs_local" in tiny:
        verdict = "ok" if tiny["ray_vs_local"] >= TINY_TARGET else "MISSED"
        lines.append(f"Ray vs local on one {tiny['server']}: {tiny['ray_vs_local']:.3f} "
                     f"(>= {TINY_TARGET}: {verdict})")  # fmt: skip
    for row in [*result["endpoints"], *tiny.get("rows", [])]:
        if row["ray_start_s"] is not None:
            lines.append(f"Ray start-up ({row['name']}): ray.init {row['ray_start_s']:.1f} s, "
                         f"first record {row['first_record_s']:.1f} s after launch "
                         "(left out of the steady rate)")  # fmt: skip
    return lines


def run_scale_out(settings: ScaleOutSettings) -> dict[str, Any]:
    """Run both parts, print the tables, write ``scale_out.json`` and ``scale_out.md``."""
    from babelcap.benchmarks.environment import environment
    from babelcap.client.store import write_json

    if settings.endpoints and min(settings.endpoints) < 1:
        raise ConfigurationError("--endpoints: give counts >= 1, e.g. 1,2,4 ('' to skip)")
    if "ray" in [*settings.engines, *settings.scaled()]:
        try:
            import ray  # noqa: F401
        except ImportError as error:
            raise ConfigurationError(
                "--engines ray needs Ray Data: pip install 'babelcap[ray]', or --engines local"
            ) from error
    out = settings.output_dir
    out.mkdir(parents=True, exist_ok=True)
    count = max(max(settings.endpoints, default=0) * settings.assets_per_endpoint,
                settings.tiny_assets)  # fmt: skip
    sys.stderr.write(f"scale-out: {count} synthetic images {settings.image_size}\n")
    media = _media(settings, count)
    result: dict[str, Any] = {
        **environment(),
        "benchmark": "babelcap bench scale-out",
        "config": {**settings.model_dump(mode="json"), "scale_engines": settings.scaled()},
        "targets": {"scaling": SCALE_TARGET, "ray_vs_local": TINY_TARGET},
        "endpoints": _endpoints(settings, media),
    }
    if settings.tiny_assets and settings.engines:
        result["tiny"] = _tiny(settings, media)
    result["verdicts"] = _verdicts(result)
    write_json(out / "scale_out.json", result)
    report = markdown(result)
    (out / "scale_out.md").write_text(report, encoding="utf-8")
    sys.stdout.write(report + "\n" + "".join(f"{line}\n" for line in result["verdicts"]))
    sys.stdout.write(f"reports: {out / 'scale_out.json'}, {out / 'scale_out.md'}\n")
    return result


def runs_failed(result: dict[str, Any]) -> bool:
    """Whether a run exited badly or wrote error records (missed targets are reported, not
    failures)."""
    rows = [*result["endpoints"], *(result.get("tiny") or {}).get("rows", [])]
    return any(r["exit_code"] != 0 or r["errors"] for r in rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m babelcap.benchmarks.scale_out``: the same flags as ``bench scale-out``."""
    import argparse

    from babelcap.core.settings import add_arguments, settings_from_args

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser, ScaleOutSettings)
    try:
        settings = settings_from_args(parser.parse_args(argv), ScaleOutSettings)
        return 1 if runs_failed(run_scale_out(settings)) else 0
    except ConfigurationError as error:
        sys.stderr.write(f"scale-out: error: {error}\n")
        return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
