"""`babelcap caption` end to end against `babelcap serve --profile tiny-cpu`.

The tiny stand-ins name the colours they are shown, so each answer proves that the right pixels
(and, for videos, the right frames in the right order) reached the model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from babelcap.benchmarks.synthetic import write_audio, write_image, write_video
from babelcap.core.artifacts import STAND_IN_COLOURS as COLOURS
from tests.integration.serving import KEY, kill_backend

pytestmark = pytest.mark.vllm

FRENCH = {"red": "rouge", "green": "vert", "blue": "bleu", "yellow": "jaune"}


def _caption(base: str, *args: str, **popen: object) -> subprocess.Popen:
    env = {**os.environ, "BABELCAP_API_KEY": KEY}  # the key from the environment, not argv
    return subprocess.Popen(
        [sys.executable, "-m", "babelcap", "caption", "--server", base, "--quiet", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )  # fmt: skip


def _records(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]  # every line whole and valid


def _rgb(*names: str) -> list[tuple[int, int, int]]:
    return [COLOURS[name] for name in names]


def _mixed_folder(root: Path) -> dict[str, object]:
    """Good images and videos, broken files and non-media; returns the expected answers."""
    (root / "nested").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    write_image(root / "red-product.jpg", (640, 480), COLOURS["red"], exif=exif)
    logo = Image.new("RGBA", (200, 200), (*COLOURS["green"], 255))
    logo.paste((0, 0, 0, 0), (0, 0, 200, 40))  # transparent band: white, not black
    logo.save(root / "nested" / "green-logo.png")
    write_image(root / "nested" / "blue.webp", (300, 120), COLOURS["blue"], format="WEBP")
    frames = [Image.new("RGB", (64, 64), COLOURS[c]) for c in ("blue", "yellow", "blue")]
    frames[0].save(root / "yellow-middle.gif", save_all=True, append_images=frames[1:])
    write_video(root / "spot.mp4", _rgb("red", "green", "blue", "yellow"))
    write_video(root / "nested" / "teaser.webm", _rgb("blue", "yellow", "red", "green"),
                codec="libvpx-vp9")  # fmt: skip
    write_video(root / "broadcast.ts", _rgb("yellow", "red", "green", "blue"), codec="mpeg2video")
    good = (root / "red-product.jpg").read_bytes()
    (root / "broken.jpg").write_bytes(good[:400])
    (root / "fake.mp4").write_text("this is not a video", encoding="utf-8")
    write_audio(root / "voiceover.mp4")
    (root / "notes.txt").write_text("not media", encoding="utf-8")
    (root / ".DS_Store").write_bytes(b"\0" * 64)
    return {
        "images": {"red-product.jpg": "red", "green-logo.png": "green", "blue.webp": "blue",
                   "yellow-middle.gif": "yellow"},
        "videos": {"spot.mp4": ["red", "green", "blue", "yellow"],
                   "teaser.webm": ["blue", "yellow", "red", "green"],
                   "broadcast.ts": ["yellow", "red", "green", "blue"]},
        "errors": {"broken.jpg": "broken.jpg", "fake.mp4": "named like media",
                   "voiceover.mp4": "no video stream"},
    }  # fmt: skip


def test_a_mixed_folder_gives_one_record_per_media_file(gateway, tmp_path):
    base, _ = gateway
    expected = _mixed_folder(tmp_path / "ads")
    out = tmp_path / "out" / "results.jsonl"
    run = _caption(base, str(tmp_path / "ads"), "--output", str(out),
                   "--languages", "fra_Latn,es")  # fmt: skip
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 1, stderr  # 1: some assets failed, the run itself did not
    records = {Path(r["path"]).name: r for r in _records(out)}
    media = {**expected["images"], **expected["videos"], **expected["errors"]}
    assert sorted(records) == sorted(media)  # exactly one record per media file
    for name, colour in expected["images"].items():
        record = records[name]
        assert record["status"] == "ok" and record["error"] is None, record
        assert record["kind"] == "image" and record["model"] == "tiny-mllama"
        for task in ("description", "sentiment", "ad"):
            assert record["tasks"][task]["text"] == f"The image is mostly {colour}.", (name, task)
        assert record["tasks"]["tags"]["tags"] == [f"the image is mostly {colour}"]
        assert FRENCH[colour] in record["translations"]["fra_Latn"]["description"]
        assert record["translations"]["spa_Latn"]["description"].startswith("La imagen es")
        description = record["tasks"]["description"]
        assert description["completion_tokens"] > 0 and description["prompt_tokens"] > 0
        assert 0 < description["ttft_s"] <= description["latency_s"] <= record["seconds"]
    assert records["red-product.jpg"]["media"]["width"] == 480  # EXIF orientation applied
    assert records["yellow-middle.gif"]["media"]["animated"] is True
    for name, colours in expected["videos"].items():
        record = records[name]
        assert record["status"] == "ok" and record["model"] == "tiny-llava-next-video", record
        text = record["tasks"]["description"]["text"]
        assert text == f"The video shows {', '.join(colours)}.", name  # frames, in order
        assert record["tasks"]["tags"]["tags"]  # parsed from the same answer shape
        french = record["translations"]["fra_Latn"]["description"]
        assert [w for w in french.replace(",", " ").replace(".", " ").split() if w in
                FRENCH.values()] == [FRENCH[c] for c in colours], french  # fmt: skip
        meta = record["media"]
        assert meta["duration"] == 4.0 and len(meta["sampled_timestamps"]) == 4
    for name, message in expected["errors"].items():
        record = records[name]
        assert record["status"] == "error" and message in record["error"]["message"], record
        assert record["error"]["kind"] in {"decode", "input"}
    summary = json.loads((out.parent / "results.jsonl.summary.json").read_text("utf-8"))
    assert (summary["ok"], summary["errors"]) == (7, 3)
    assert summary["skipped"] == {"hidden": 1, "not media": 1}
    assert summary["translation_requests"] <= 7  # batched across assets
    assert "ok          7" in stdout and KEY not in stdout + stderr
    # The export turns it into the original article's shape.
    exported = subprocess.run(
        [sys.executable, "-m", "babelcap", "export", str(out), "--format", "seed-json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "exported 10 records" in exported.stdout
    images = json.loads(out.with_name("results.images.json").read_text("utf-8"))
    videos = json.loads(out.with_name("results.videos.json").read_text("utf-8"))
    assert images["stats"]["total_images"] == 4 and videos["stats"]["total_videos"] == 3
    assert len(images["descriptions"]) + len(videos["descriptions"]) == 7
    assert images["descriptions"][0]["translation_french"]


def _colour_folder(root: Path, count: int) -> None:
    root.mkdir(parents=True)
    names = ["red", "green", "blue", "yellow"]
    for i in range(count):
        write_image(root / f"{i:03}.png", (64 + i, 48), COLOURS[names[i % 4]], format="PNG")


def _wait_for_lines(path: Path, count: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or path.read_bytes().count(b"\n") < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_sigkill_then_resume_gives_exactly_one_record_per_asset(gateway, tmp_path):
    base, _ = gateway
    _colour_folder(tmp_path / "in", 40)
    out = tmp_path / "results.jsonl"
    args = [str(tmp_path / "in"), "--output", str(out), "--languages", "fra_Latn",
            "--tasks", "description,tags", "--concurrency", "2"]  # fmt: skip
    first = _caption(base, *args)
    _wait_for_lines(out, 6, first, timeout=300)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = len(_records(out))
    assert 6 <= done_before < 40
    second = _caption(base, *args, "--resume")
    _, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr
    records = _records(out)
    assert sorted(Path(r["path"]).name for r in records) == [f"{i:03}.png" for i in range(40)]
    assert all(r["status"] == "ok" for r in records)
    summary = json.loads((tmp_path / "results.jsonl.summary.json").read_text("utf-8"))
    assert summary["resumed"] >= done_before and summary["assets"] == 40 - summary["resumed"]


def test_a_backend_killed_mid_run_costs_nothing(gateway, tmp_path):
    base, process = gateway
    _colour_folder(tmp_path / "in", 30)
    out = tmp_path / "results.jsonl"
    run = _caption(base, str(tmp_path / "in"), "--output", str(out), "--languages", "",
                   "--tasks", "description", "--concurrency", "2")  # fmt: skip
    _wait_for_lines(out, 3, run, timeout=300)
    kill_backend(process.pid, "tiny-mllama")
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr
    records = _records(out)
    assert len(records) == 30 and all(r["status"] == "ok" for r in records)
    for record in records:
        colour = ["red", "green", "blue", "yellow"][int(Path(record["path"]).stem) % 4]
        assert record["tasks"]["description"]["text"] == f"The image is mostly {colour}."
    summary = json.loads((tmp_path / "results.jsonl.summary.json").read_text("utf-8"))
    assert summary["retries"] > 0  # it did see the backend go down
