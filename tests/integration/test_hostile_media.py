"""`babelcap caption` over hostile media and hostile file systems: each file gets exactly one
right record, and nothing hangs (every test has a hard timeout, and every command runs as a
subprocess with its own).

The folder is built by :func:`tests.media_fixtures.hostile_folder`: FIFOs, sockets and devices,
symlink loops, damaged and truncated videos, a non-default stream before the default one, cover
art before the video, AV1, every image format Pillow reads, SVG, extreme aspect ratios. Against
a local stand-in server that answers with the colours it is sent (``FakeBabelcap(describe=True)``)
these run in seconds; the last test asks the real tiny models through ``babelcap serve``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from babelcap.benchmarks.synthetic import write_image
from tests.integration.serving import KEY
from tests.media_fixtures import Expected, hostile_folder, loop_tree, make_fifo, unprivileged
from tests.unit.client.fakes import FakeBabelcap

pytestmark = pytest.mark.timeout(300)


def _caption(server: str, *args: str, prefix: tuple[str, ...] = (), timeout: float = 180,
             key: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {**os.environ, **({"BABELCAP_API_KEY": key} if key else {})}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "babelcap", "caption", "--server", server, "--quiet",
         "--languages", "", "--tasks", "description", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def _records(path: Path) -> dict[str, dict]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    by_name = {Path(r["path"]).name: r for r in records}
    assert len(by_name) == len(records), "a file got two records"
    return by_name


def _answer(kind: str, colours: list[str]) -> str:
    if kind == "image":
        return f"The image is mostly {colours[0]}."
    return f"The video shows {', '.join(colours)}."


def _check(records: dict[str, dict], expected: dict[str, Expected], answers: bool) -> None:
    assert sorted(records) == sorted(expected)  # exactly one record per file, no more
    for name, want in expected.items():
        record = records[name]
        assert (record["status"], record["kind"]) == (want.status, want.kind), record
        if want.status == "error":
            message = record["error"]["message"]
            assert want.message in message and "\n" not in message, record
            assert name in message  # names the input
            continue
        for key, value in want.media.items():
            assert record["media"].get(key) == value, (name, key, record["media"])
        if answers and want.colours:
            text = record["tasks"]["description"]["text"]
            assert text == _answer(want.kind or "", want.colours), (name, record["media"])


def test_a_hostile_folder_gives_each_file_one_right_record(tmp_path):
    expected, skipped = hostile_folder(tmp_path / "in")
    out = tmp_path / "r.jsonl"
    with FakeBabelcap(describe=True) as server:
        started = time.monotonic()
        run = _caption(server.url, str(tmp_path / "in"), "--output", str(out))
    assert run.returncode == 1, run.stderr  # some files are errors; the run itself is fine
    assert time.monotonic() - started < 150
    _check(_records(out), expected, answers=True)
    summary = json.loads((tmp_path / "r.jsonl.summary.json").read_text("utf-8"))
    assert summary["skipped"] == skipped
    assert summary["ok"] == sum(e.status == "ok" for e in expected.values())


def test_a_fifo_or_device_named_directly_is_an_error_record_not_a_hang(tmp_path):
    fifo = make_fifo(tmp_path / "pipe.mp4")
    image = write_image(tmp_path / "a.png", (16, 16), format="PNG")
    out = tmp_path / "r.jsonl"
    with FakeBabelcap(describe=True) as server:
        run = _caption(server.url, str(fifo), "/dev/zero", str(image), "--output", str(out),
                       timeout=90)  # fmt: skip
    assert run.returncode == 1, run.stderr
    records = _records(out)
    assert records["a.png"]["status"] == "ok"
    assert "named pipe (FIFO)" in records["pipe.mp4"]["error"]["message"]
    assert "character device" in records["zero"]["error"]["message"]


def test_a_glob_over_two_symlink_loops_finishes(tmp_path):
    root = loop_tree(tmp_path / "tree")
    out = tmp_path / "r.jsonl"
    with FakeBabelcap(describe=True) as server:
        run = _caption(server.url, str(root / "**" / "*.jpg"), "--output", str(out), timeout=90)
    assert run.returncode == 0, run.stderr
    assert list(_records(out)) == ["photo.jpg"]


def test_an_unreadable_file_is_an_error_record_for_an_unprivileged_user(tmp_path):
    prefix = unprivileged()
    if prefix is None:
        pytest.skip("running as root, and setpriv cannot drop CAP_DAC_OVERRIDE here")
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "ok.png", (16, 16), format="PNG")
    secret = write_image(folder / "secret.png", (16, 16), format="PNG")
    secret.chmod(0)
    out = tmp_path / "r.jsonl"
    with FakeBabelcap(describe=True) as server:
        run = _caption(server.url, str(folder), "--output", str(out), prefix=tuple(prefix))
    assert run.returncode == 1, run.stderr
    records = _records(out)
    assert records["ok.png"]["status"] == "ok"
    error = records["secret.png"]["error"]
    assert error["kind"] == "input" and "check its permissions" in error["message"]


@pytest.mark.vllm
@pytest.mark.timeout(900)
def test_the_tiny_models_describe_hostile_media_right(gateway, tmp_path):
    """The real models see what the fake is told: extreme aspect ratios split into pieces still
    look red to Mllama (as a 224x1 strip they did not), the damaged video's readable frames, the
    default stream and not the cover, for LLaVA-NeXT-Video."""
    base, _ = gateway
    expected, _ = hostile_folder(tmp_path / "in")
    out = tmp_path / "r.jsonl"
    run = _caption(base, str(tmp_path / "in"), "--output", str(out), timeout=800, key=KEY)
    assert run.returncode == 1, run.stderr
    records = _records(out)
    _check(records, expected, answers=False)
    checked = ["banner.png", "tower.png", "icon.ico", "photo.ppm", "shot.tga", "scan.pcx",
               "damaged-middle.mp4", "two-streams.mp4", "cover-first.mp4", "cover-track.mkv",
               "av1.mkv"]  # fmt: skip
    wrong = {}
    for name in checked:
        want = expected[name]
        text = records[name]["tasks"]["description"]["text"]
        if text != _answer(want.kind or "", want.colours):
            wrong[name] = text
    assert wrong == {}
