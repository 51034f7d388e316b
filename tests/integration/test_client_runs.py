"""Real-world runs of `babelcap caption` against one output: two at once, and resumes after
files change. The commands run as subprocesses (with time-outs) against a local stand-in
server that answers with the colours it is sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from babelcap.benchmarks.synthetic import write_image
from babelcap.core.artifacts import STAND_IN_COLOURS as COLOURS
from tests.unit.client.fakes import FakeBabelcap

pytestmark = pytest.mark.timeout(300)

NAMES = ["red", "green", "blue", "yellow"]


def _start(server: str, folder: Path, out: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "babelcap", "caption", str(folder), "--server", server,
         "--output", str(out), "--languages", "", "--tasks", "description", "--quiet",
         "--concurrency", "2", "--media-workers", "1", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _folder(root: Path, count: int) -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        write_image(root / f"{i:03}.png", (32, 24), COLOURS[NAMES[i % 4]], format="PNG")
    return root


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("first", "second", "existing"),
    [([], [], False), (["--overwrite"], ["--overwrite"], True), ([], ["--resume"], False),
     (["--resume"], ["--resume"], True)],
    ids=["new-new", "overwrite-overwrite", "new-resume", "resume-resume"],
)  # fmt: skip
def test_two_runs_on_one_output_give_one_clear_refusal_and_an_intact_file(
    tmp_path, first, second, existing
):
    folder = _folder(tmp_path / "in", 100)
    out = tmp_path / "r.jsonl"
    if existing:  # an earlier run's records, with other settings: all redone
        out.write_text(json.dumps({"path": "old", "kind": "image", "status": "ok"}) + "\n")
    with FakeBabelcap(describe=True, delay_s=0.1) as server:
        running = _start(server.url, folder, out, *first)
        lock = tmp_path / "r.jsonl.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip()):
            assert running.poll() is None and time.monotonic() < deadline, running.communicate()
            time.sleep(0.02)
        started = time.monotonic()
        refused = _start(server.url, folder, out, *second)
        stdout, stderr = refused.communicate(timeout=60)
        assert time.monotonic() - started < 30  # at once, not after the other run
        assert running.poll() is None  # the refusal came while the first run was writing
        _, first_err = running.communicate(timeout=240)
    assert refused.returncode == 2 and stdout == ""
    assert stderr == (
        f"babelcap caption: error: {out} is being written by another babelcap caption run "
        f"(pid {running.pid}); wait for it to finish, or give this run another --output\n"
    )
    assert running.returncode == 0, first_err
    records = _records(out)
    assert sorted(Path(r["path"]).name for r in records) == [f"{i:03}.png" for i in range(100)]
    for record in records:
        colour = NAMES[int(Path(record["path"]).stem) % 4]
        assert record["tasks"]["description"]["text"] == f"The image is mostly {colour}."
    summary = json.loads((tmp_path / "r.jsonl.summary.json").read_text("utf-8"))
    assert summary["assets"] == 100 and summary["ok"] == 100  # the run that wrote the file
    assert not lock.exists()


def test_resume_after_edits_twice_leaves_one_current_record_per_path(tmp_path):
    folder = _folder(tmp_path / "in", 8)
    out = tmp_path / "r.jsonl"
    with FakeBabelcap(describe=True) as server:

        def run(*args: str) -> dict:
            process = _start(server.url, folder, out, *args)
            _, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stderr
            return json.loads((tmp_path / "r.jsonl.summary.json").read_text("utf-8"))

        run()
        write_image(folder / "000.png", (32, 24), COLOURS["purple"], format="PNG")
        os.utime(folder / "001.png")  # touched, not changed: not redone
        summary = run("--resume")
        assert (summary["ok"], summary["resumed"], summary["resume"]["changed"]) == (1, 7, 1)
        write_image(folder / "000.png", (32, 24), COLOURS["red"], format="PNG")
        summary = run("--resume")
        assert (summary["ok"], summary["resumed"], summary["resume"]["changed"]) == (1, 7, 1)
    records = _records(out)
    assert len(records) == 8 == len({r["path"] for r in records})
    current = {Path(r["path"]).name: r["tasks"]["description"]["text"] for r in records}
    assert current["000.png"] == "The image is mostly red."
    exported = subprocess.run(
        [sys.executable, "-m", "babelcap", "export", str(out), "--format", "csv"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "exported 8 records" in exported.stdout
    rows = out.with_suffix(".csv").read_text("utf-8").splitlines()
    row = next(r for r in rows if "000.png" in r)
    assert "mostly red" in row and "purple" not in row
