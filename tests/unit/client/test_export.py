"""Exports from a results file: the seed JSON shape, CSV and Parquet."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest

from babelcap.client.export import export
from babelcap.core.errors import ConfigurationError


def _records():
    image = {
        "path": "/ads/red.jpg", "kind": "image", "status": "ok", "error": None,
        "model": "llama", "media": {"size": 10, "width": 640, "height": 480},
        "tasks": {
            "description": {"text": "A red car.", "prompt_tokens": 100, "completion_tokens": 5,
                            "ttft_s": 0.1, "latency_s": 0.5, "temperature": 0.0},
            "tags": {"text": "car, red", "tags": ["car", "red"], "prompt_tokens": 90,
                     "completion_tokens": 4, "ttft_s": 0.1, "latency_s": 0.3, "temperature": 0.0},
        },
        "translations": {"fra_Latn": {"description": "Une voiture rouge."},
                         "hin_Deva": {"description": "एक लाल कार।"}},
        "timings": {"prepare_s": 0.01, "inference_s": 0.5, "translation_s": 0.1},
        "seconds": 0.7,
    }  # fmt: skip
    video = {
        "path": "/ads/spot.mp4", "kind": "video", "status": "ok", "error": None,
        "model": "llava", "media": {"size": 99, "width": 1920, "height": 1080, "duration": 30.0,
                                    "fps": 24.0, "frame_count": 720,
                                    "sampled_timestamps": [1.875, 5.625]},
        "tasks": {"description": {"text": "An ad.", "prompt_tokens": 300, "completion_tokens": 3,
                                  "temperature": 0.0}},
        "translations": {}, "timings": {}, "seconds": 1.3,
    }  # fmt: skip
    broken = {"path": "/ads/bad.jpg", "kind": "image", "status": "error",
              "error": {"kind": "decode", "message": "damaged"}, "seconds": 0.01}  # fmt: skip
    return [image, video, broken]


@pytest.fixture
def results(tmp_path):
    path = tmp_path / "results.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for record in _records():
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.write('{"path": "/torn"')  # a torn last line is skipped
    return path


def test_seed_json_has_the_original_shape_and_averages_only_processed_media(results, tmp_path):
    out = tmp_path / "seed.json"
    assert export(results, "seed-json", out).count == 3
    images = json.loads((tmp_path / "seed.images.json").read_text(encoding="utf-8"))
    videos = json.loads((tmp_path / "seed.videos.json").read_text(encoding="utf-8"))
    (first,) = images["descriptions"]
    (second,) = videos["descriptions"]
    assert first["image_file"] == "red.jpg" and first["description_english"] == "A red car."
    assert first["translation_french"] == "Une voiture rouge."
    assert first["translation_hindi"] == "एक लाल कार।"
    assert first["tags_processed"] == ["car", "red"]
    assert first["generated_tokens"] == 5 and first["description_generation_time_sec"] == 0.5
    assert second["video_file"] == "spot.mp4" and second["video_frames"] == 720
    assert "video_frames" not in first
    stats = images["stats"]
    assert stats["total_images"] == 1 and stats["errors"] == 1
    assert stats["average_time_per_image_sec"] == 0.7  # the broken file is not averaged
    assert stats["temperature"] == 0.0 and stats["model"] == "llama"
    assert videos["stats"]["model"] == "llava" and videos["stats"]["total_videos"] == 1


def test_csv_and_parquet_have_one_row_per_asset(results, tmp_path):
    export(results, "csv", tmp_path / "r.csv")
    with (tmp_path / "r.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["ok", "ok", "error"]
    assert rows[0]["tags"] == "car; red" and rows[0]["description_hin_Deva"] == "एक लाल कार।"
    assert rows[2]["error_kind"] == "decode"
    export(results, "parquet", tmp_path / "r.parquet")
    table = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert table[0]["tags"] == ["car", "red"] and table[1]["duration"] == 30.0


def test_bad_format_or_file(results, tmp_path):
    with pytest.raises(ConfigurationError, match="choose one of seed-json, csv, parquet, html"):
        export(results, "xml", tmp_path / "x")
    with pytest.raises(ConfigurationError, match="not a results file"):
        export(tmp_path / "missing.jsonl", "csv", tmp_path / "x")
