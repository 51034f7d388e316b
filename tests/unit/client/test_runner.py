"""The caption run's control flow, against a real local server that can vanish."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from babelcap.benchmarks.synthetic import write_image, write_video
from babelcap.client.config import CaptionSettings
from babelcap.client.export import export
from babelcap.client.runner import caption
from babelcap.core.artifacts import STAND_IN_COLOURS as COLOURS
from tests.unit.client.fakes import FakeBabelcap


def _folder(root, images=12):
    root.mkdir()
    for i in range(images):
        write_image(root / f"{i:02}.png", (40 + i, 30), (200, 20, 20), format="PNG")
    write_video(root / "clip.mkv", [(0, 0, 255), (255, 255, 0)])
    return root


def _settings(server, out, **extra):
    values = {"server": [server.url], "output": out, "languages": ["fra_Latn"],
              "media_workers": 1, "concurrency": 2, "quiet": True, **extra}  # fmt: skip
    return CaptionSettings(**values)


def test_every_asset_gets_all_tasks_translations_and_timings(tmp_path):
    server = FakeBabelcap().start()
    try:
        settings = _settings(server, tmp_path / "r.jsonl", tasks=["description", "tags"])
        summary, code = asyncio.run(caption(settings, [str(_folder(tmp_path / "in"))]))
    finally:
        server.stop()
    assert code == 0 and summary["ok"] == 13
    lines = (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    video = next(r for r in records if r["kind"] == "video")
    assert video["model"] == "vid" and video["tasks"]["description"]["text"] == "answer from vid"
    assert video["media"]["sampled_timestamps"] == [0.25, 0.75, 1.25, 1.75]  # the server's 4
    image = next(r for r in records if r["kind"] == "image")
    assert image["tasks"]["tags"]["tags"] == ["answer from img"]
    assert image["translations"] == {"fra_Latn": {"description": "[fra_Latn] answer from img"}}
    assert set(image["timings"]) == {"prepare_s", "inference_s", "translation_s"}
    assert summary["translation_requests"] < 13  # batched across assets


def test_a_server_gone_for_good_stops_the_run_cleanly_keeping_what_finished(tmp_path):
    server = FakeBabelcap(die_after=8, delay_s=0.05).start()
    out = tmp_path / "r.jsonl"
    settings = _settings(server, out, tasks=["description"], languages=[],
                         unavailable_timeout_s=1.5)  # fmt: skip
    summary, code = asyncio.run(caption(settings, [str(_folder(tmp_path / "in", images=40))]))
    assert code == 3
    assert "no server answered" in summary["stopped"]
    raw = out.read_bytes()
    assert raw.endswith(b"\n")
    records = [json.loads(line) for line in raw.splitlines()]
    assert 1 <= len(records) < 41
    assert all(r["status"] == "ok" for r in records)  # unfinished assets are not failures


def test_resume_after_a_stop_finishes_the_rest(tmp_path):
    folder = _folder(tmp_path / "in", images=20)
    out = tmp_path / "r.jsonl"
    dying = FakeBabelcap(die_after=6, delay_s=0.05).start()
    settings = _settings(dying, out, tasks=["description"], languages=[], unavailable_timeout_s=1)
    _, code = asyncio.run(caption(settings, [str(folder)]))
    assert code == 3
    server = FakeBabelcap().start()
    try:
        resumed = _settings(server, out, tasks=["description"], languages=[], resume=True)
        summary, code = asyncio.run(caption(resumed, [str(folder)]))
    finally:
        server.stop()
    assert code == 0 and summary["resumed"] >= 1
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 21 == len({r["path"] for r in records})


def _run(server, out, paths, **extra):
    settings = _settings(server, out, tasks=["description"], languages=[], **extra)
    return asyncio.run(caption(settings, [str(p) for p in paths]))


def _current(out):
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return records, {Path(r["path"]).name: r["tasks"]["description"]["text"] for r in records}


@pytest.mark.timeout(120)
def test_resume_after_files_change_keeps_one_current_record_per_path(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, colour in enumerate(["red", "green", "blue", "yellow"]):
        write_image(folder / f"{i}.png", (40, 30), COLOURS[colour], format="PNG")
    out = tmp_path / "r.jsonl"
    with FakeBabelcap(describe=True) as server:
        summary, code = _run(server, out, [folder])
        assert code == 0 and summary["ok"] == 4, out.read_text("utf-8")
        write_image(folder / "0.png", (40, 30), COLOURS["purple"], format="PNG")  # edited
        summary, code = _run(server, out, [folder], resume=True)
        assert code == 0 and (summary["ok"], summary["resumed"]) == (1, 3)
        assert summary["resume"]["changed"] == 1
        records, texts = _current(out)
        assert len(records) == 4 and texts["0.png"] == "The image is mostly purple."
        write_image(folder / "0.png", (40, 30), COLOURS["red"], format="PNG")  # and back
        summary, code = _run(server, out, [folder], resume=True)
        assert code == 0 and (summary["ok"], summary["resumed"]) == (1, 3)
    records, texts = _current(out)
    assert len(records) == 4 == len({r["path"] for r in records})
    assert texts["0.png"] == "The image is mostly red."
    replaced = (tmp_path / "r.jsonl.replaced.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(r)["tasks"]["description"]["text"] for r in replaced] == [
        "The image is mostly red.", "The image is mostly purple."]  # fmt: skip
    # The export (last record wins) describes the image as it is now.
    export(out, "seed-json", tmp_path / "r.json")
    seed = json.loads((tmp_path / "r.json").read_text("utf-8"))
    by_file = {item["image_file"]: item["description_english"] for item in seed["descriptions"]}
    assert by_file["0.png"] == "The image is mostly red." and len(by_file) == 4


def test_a_file_named_twice_gets_one_record(tmp_path):
    folder = _folder(tmp_path / "in", images=2)
    with FakeBabelcap() as server:
        summary, code = _run(server, tmp_path / "r.jsonl",
                             [folder, folder / "00.png", str(folder / "*.png")])  # fmt: skip
    assert code == 0 and summary["assets"] == 3
    assert summary["skipped"]["named twice"] == 3
