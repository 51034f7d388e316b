"""Progress output: a bar on a terminal, plain periodic lines elsewhere, and the summary."""

from __future__ import annotations

import io
from collections import Counter

from babelcap.client.progress import Progress, RunStats, render_summary
from babelcap.client.records import RecordError, ResultRecord, TaskResult


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _record(status="ok", seconds=0.5):
    error = None if status == "ok" else RecordError(kind="decode", message="bad")
    tasks = (
        {"description": TaskResult(text="x", completion_tokens=10, prompt_tokens=90)}
        if status == "ok"
        else {}
    )
    return ResultRecord(
        path="a.jpg", kind="image", status=status, error=error, tasks=tasks, seconds=seconds
    )


def test_a_terminal_gets_a_bar_with_rate_tokens_errors_and_eta():
    stream = _Terminal()
    stats = RunStats()
    progress = Progress(stats, stream=stream)
    progress.set_total(3)
    for record in (_record(), _record("error")):
        stats.add(record)
        progress.update(record)
    progress.close()
    text = stream.getvalue()
    assert "2/3" in text and "errors=1" in text and "tok_s=" in text and "<" in text  # ETA


def test_elsewhere_plain_lines_every_interval_and_quiet_means_none():
    stream = io.StringIO()
    stats = RunStats()
    progress = Progress(stats, stream=stream, interval_s=0.0)
    stats.add(_record())
    progress.update(_record())
    assert stream.getvalue().startswith("babelcap caption: 1 done (1 ok, 0 errors, 0 resumed)")
    quiet = io.StringIO()
    Progress(stats, stream=quiet, quiet=True, interval_s=0.0).update(_record())
    assert quiet.getvalue() == ""


def test_summary_table_counts_errors_by_kind_and_latency_percentiles():
    stats = RunStats()
    for seconds in (0.1, 0.2, 0.3, 0.4, 1.0):
        stats.add(_record(seconds=seconds))
    stats.add(_record("error", seconds=0.05))
    summary = stats.summary(Counter({"not media": 2}), "results.jsonl")
    assert (summary["ok"], summary["errors"], summary["errors_by_kind"]) == (5, 1, {"decode": 1})
    assert summary["latency_s"]["p50"] == 0.2 and summary["latency_s"]["p90"] == 1.0  # nearest rank
    table = render_summary(summary)
    assert "errors      1 (decode 1)" in table and "skipped     not media 2" in table
