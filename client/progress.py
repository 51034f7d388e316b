"""Run statistics, live progress and the final summary.

On a terminal: a tqdm bar with assets/s, output tokens/s, errors and an ETA (the total comes from
a background count of the inputs). Elsewhere: one plain line every ``interval_s``. ``--quiet``:
nothing until the summary.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

from tqdm import tqdm

from babelcap.client.records import ResultRecord
from babelcap.client.stats import nearest_rank

__all__ = ["Progress", "RunStats"]


@dataclass
class RunStats:
    """What a run did, for the summary line, table and JSON."""

    started: float = field(default_factory=time.monotonic)
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    resumed: int = 0
    output_tokens: int = 0
    prompt_tokens: int = 0
    latencies: list[float] = field(default_factory=list)
    stopped: str | None = None

    @property
    def finished(self) -> int:
        """Assets recorded in this run."""
        return self.ok + sum(self.errors.values())

    def add(self, record: ResultRecord) -> None:
        """Count one written record."""
        self.kinds[record.kind or "unknown"] += 1
        if record.error is None:
            self.ok += 1
        else:
            self.errors[record.error.kind] += 1
        for task in record.tasks.values():
            self.output_tokens += task.completion_tokens
            self.prompt_tokens += task.prompt_tokens
        self.latencies.append(record.seconds)

    def summary(self, skipped: Counter[str], output: str) -> dict[str, Any]:
        """Every figure, as saved in ``<output>.summary.json``."""
        elapsed = time.monotonic() - self.started
        ordered = sorted(self.latencies)
        p50, p90 = nearest_rank(ordered, 50), nearest_rank(ordered, 90)
        return {
            "output": output,
            "assets": self.finished,
            "ok": self.ok,
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "by_kind": dict(self.kinds),
            "resumed": self.resumed,
            "skipped": dict(skipped),
            "seconds": round(elapsed, 3),
            "assets_per_s": round(self.finished / elapsed, 3) if elapsed else None,
            "output_tokens": self.output_tokens,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens_per_s": round(self.output_tokens / elapsed, 2) if elapsed else None,
            "latency_s": {
                "p50": None if p50 is None else round(p50, 3),
                "p90": None if p90 is None else round(p90, 3),
                "mean": round(statistics.fmean(self.latencies), 3) if self.latencies else None,
            },
            "stopped": self.stopped,
        }


def render_summary(summary: dict[str, Any]) -> str:
    """The fixed-width table printed at the end of a run."""
    latency = summary["latency_s"]
    errors = ", ".join(f"{k} {v}" for k, v in sorted(summary["errors_by_kind"].items())) or "-"
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(summary["skipped"].items())) or "-"
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary["by_kind"].items())) or "-"

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    rows = [
        ("assets", f"{summary['assets']} ({kinds})"),
        ("ok", str(summary["ok"])),
        ("errors", f"{summary['errors']} ({errors})"),
        ("resumed", f"{summary['resumed']} already done"),
        ("skipped", skipped),
        ("time", f"{summary['seconds']:.1f} s"),
        (
            "throughput",
            f"{summary['assets_per_s'] or 0:.2f} assets/s, "
            f"{summary['output_tokens_per_s'] or 0:.1f} output tokens/s",
        ),
        ("latency", f"p50 {seconds(latency['p50'])}, p90 {seconds(latency['p90'])} per asset"),
        ("results", summary["output"]),
    ]
    if summary["stopped"]:
        rows.append(("STOPPED", summary["stopped"]))
    return "\n".join(f"  {name:<11} {value}" for name, value in rows) + "\n"


class Progress:
    """Live progress for a run."""

    def __init__(
        self, stats: RunStats, *, quiet: bool = False, stream: IO[str] | None = None,
        interval_s: float = 10.0,
    ) -> None:  # fmt: skip
        self.stats = stats
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.interval_s = interval_s
        self._last_line = time.monotonic()
        self.bar: tqdm[Any] | None = None
        if not quiet and self.stream.isatty():
            self.bar = tqdm(total=None, unit="asset", file=self.stream, dynamic_ncols=True)

    def set_total(self, total: int) -> None:
        """The number of inputs, once counted (enables the ETA)."""
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def update(self, record: ResultRecord | None = None, *, resumed: bool = False) -> None:
        """After each record (or each asset skipped as already done)."""
        stats = self.stats
        elapsed = max(1e-9, time.monotonic() - stats.started)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                tok_s=f"{stats.output_tokens / elapsed:.0f}",
                errors=sum(stats.errors.values()),
                resumed=stats.resumed,
                refresh=False,
            )
        elif not self.quiet and time.monotonic() - self._last_line >= self.interval_s:
            self._last_line = time.monotonic()
            self.stream.write(
                f"babelcap caption: {stats.finished} done ({stats.ok} ok, "
                f"{sum(stats.errors.values())} errors, {stats.resumed} resumed), "
                f"{stats.finished / elapsed:.2f} assets/s, "
                f"{stats.output_tokens / elapsed:.0f} output tokens/s\n"
            )
            self.stream.flush()

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()
