"""Exports from real records of real media: the original scripts' JSON key for key, caption
files, a Hugging Face folder that ``datasets`` loads, WebDataset shards that ``webdataset``
reads, folders of shards, superseded records."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from babelcap.client.export import export
from babelcap.client.exports.languages import direction, key_names
from babelcap.client.records import RecordError, TaskResult, make_record
from babelcap.core.errors import ConfigurationError

EXAMPLES = Path(__file__).resolve().parents[3] / "client" / "examples"
ROOT = Path(__file__).resolve().parents[3]

#: shared/FACTS.md, "The original scripts' output JSON": keys in order, with their types.
IMAGE_KEYS = {
    "image_file": str,
    "description_english": str,
    "translation_spanish": str,
    "translation_french": str,
    "translation_hindi": str,
    "generated_tokens": int,
    "description_generation_time_sec": float,
    "total_processing_time_sec": float,
}
VIDEO_KEYS = {
    "video_file": str,
    "video_size_mb": float,
    "video_duration_sec": float,
    "video_fps": int,
    "video_frames": int,
    "video_width": int,
    "video_height": int,
    "description_english": str,
    "translation_spanish": str,
    "translation_french": str,
    "translation_hindi": str,
    "total_processing_time_sec": float,
}
STATS = {"image": {"model": str, "temperature": float, "total_batch_time_sec": float,
                   "total_images": int, "average_time_per_image_sec": float},
         "video": {"model": str, "temperature": float, "total_batch_time_sec": float,
                   "total_videos": int, "average_time_per_video_sec": float}}  # fmt: skip
LANGUAGES = {"spa_Latn": "Una {}.", "fra_Latn": "Une {}.", "hin_Deva": "एक {}।"}


def _task(text, tokens=20, latency=1.23456, tags=None):
    return TaskResult(
        text=text, prompt_tokens=100, completion_tokens=tokens, ttft_s=0.1, latency_s=latency,
        finish_reason="stop", temperature=0.2, tags=tags,
    )  # fmt: skip


def record(path, kind, colour, seconds=2.0, **media):
    """An ok record as the runner makes it."""
    words = f"{colour} {kind}"
    result = make_record(
        str(path), kind, model=f"tiny-{kind}-model",
        media={"size": path.stat().st_size if path.exists() else 1000, **media},
        tasks={"description": _task(f"A {words}."), "sentiment": _task("Positive."),
               "tags": _task(f"{colour}, {kind}, {colour}", tags=[colour, kind, colour])},
        translations={lang: {"description": form.format(words), "sentiment": "+"}
                      for lang, form in LANGUAGES.items()},
        hashes=("c" * 32, "s" * 16),
        timings={"prepare_s": 0.01, "inference_s": 1.5, "translation_s": 0.3},
    )  # fmt: skip
    return result.model_copy(update={"seconds": seconds})


def failed(path, kind, message="cannot decode: damaged"):
    return make_record(str(path), kind, error=RecordError(kind="decode", message=message))


def write(path, records, extra_lines=()):
    with path.open("w", encoding="utf-8") as handle:
        for r in records:
            handle.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
        handle.writelines(extra_lines)
    return path


@pytest.fixture
def media(tmp_path):
    folder = tmp_path / "ads"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(EXAMPLES / "red-product.jpg", folder / "red-product.jpg")
    shutil.copy(EXAMPLES / "green-logo.png", folder / "sub" / "green-logo.png")
    shutil.copy(EXAMPLES / "four-colours.mp4", folder / "four-colours.mp4")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return folder


@pytest.fixture
def images(tmp_path, media):
    records = [
        record(media / "red-product.jpg", "image", "red", 2.0, width=640, height=480),
        record(media / "sub" / "green-logo.png", "image", "green", 4.0, width=256, height=256),
        failed(media / "broken.jpg", "image"),
    ]
    return write(tmp_path / "images.jsonl", records, ['{"path": "/torn"'])


@pytest.fixture
def mixed(tmp_path, media):
    video = record(media / "four-colours.mp4", "video", "colourful", 3.0, width=128,
                   height=96, duration=4.0, fps=8.0, frame_count=32,
                   sampled_timestamps=[0.5, 1.5, 2.5, 3.5])  # fmt: skip
    records = [
        record(media / "red-product.jpg", "image", "red", 2.0, width=640, height=480),
        video,
        failed(media / "broken.jpg", "image"),
        make_record(str(media / "notes.txt"), None, error=RecordError(kind="input", message="x")),
    ]
    return write(tmp_path / "mixed.jsonl", records)


def _check_types(item, expected):
    assert list(item)[: len(expected)] == list(expected)  # their keys first, in their order
    for key, kind in expected.items():
        assert isinstance(item[key], kind) and not isinstance(item[key], bool), (key, item[key])


def test_seed_json_has_the_original_keys_names_units_and_rounding(images, tmp_path):
    out = tmp_path / "seed.json"
    result = export(images, "seed-json", out)
    assert result.count == 3 and result.outputs == [out]
    text = out.read_text("utf-8")
    document = json.loads(text)
    assert text == json.dumps(document, indent=4, ensure_ascii=False)  # indent=4, as they wrote
    assert list(document) == ["descriptions", "stats"]
    first, second = document["descriptions"]  # the failed file is not an item
    for item in (first, second):
        _check_types(item, IMAGE_KEYS)
    assert first["image_file"] == "red-product.jpg"
    assert first["translation_french"] == "Une red image." and first["translation_hindi"]
    assert first["description_generation_time_sec"] == 1.235  # 3 decimals
    assert first["generated_tokens"] == 20  # the description's tokens
    assert first["tags_processed"] == ["image", "red"]  # deduplicated, sorted
    assert first["sentiment_english"] == "Positive."
    assert first["sentiment_translation_french"] == "+"
    stats = document["stats"]
    _check_types(stats, STATS["image"])
    assert stats["total_images"] == 2 and stats["errors"] == 1
    assert stats["average_time_per_image_sec"] == 3.0  # (2 + 4) / 2: processed media only
    assert stats["total_batch_time_sec"] == 6.0  # no summary: the processing times' sum
    assert stats["model"] == "tiny-image-model" and stats["temperature"] == 0.2


def test_seed_json_splits_a_mixed_run_by_kind_and_uses_the_summary(mixed, tmp_path):
    (tmp_path / "mixed.jsonl.summary.json").write_text('{"seconds": 4.56789}', "utf-8")
    result = export(mixed, "seed-json", tmp_path / "seed.json")
    images, videos = tmp_path / "seed.images.json", tmp_path / "seed.videos.json"
    assert result.outputs == [images, videos] and not (tmp_path / "seed.json").exists()
    video_doc = json.loads(videos.read_text("utf-8"))
    (item,) = video_doc["descriptions"]
    _check_types(item, VIDEO_KEYS)
    assert item["video_file"] == "four-colours.mp4" and item["video_fps"] == 8
    size = (tmp_path / "ads" / "four-colours.mp4").stat().st_size
    assert item["video_size_mb"] == round(size / 2**20, 2)
    assert (item["video_duration_sec"], item["video_frames"]) == (4.0, 32)
    _check_types(video_doc["stats"], STATS["video"])
    assert video_doc["stats"]["total_batch_time_sec"] == 4.568  # the run's wall clock
    image_doc = json.loads(images.read_text("utf-8"))
    assert image_doc["stats"]["total_images"] == 1 and image_doc["stats"]["errors"] == 1


def test_every_flores_code_gets_a_distinct_english_name():
    vocabulary = json.loads((ROOT / "babelcap/stand_ins/nllb-ct2/shared_vocabulary.json")
                            .read_text("utf-8"))  # fmt: skip
    codes = [t for t in vocabulary if re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", t)]
    assert len(codes) >= 200
    names = key_names(codes)
    assert len(set(names.values())) == len(codes)
    assert all(re.fullmatch(r"[a-z0-9_]+", n) for n in names.values())
    assert names["spa_Latn"] == "spanish" and names["hin_Deva"] == "hindi"
    assert names["zho_Hans"] == "chinese_simplified"
    assert key_names(["zho_Hans", "fra_Latn"])["zho_Hans"] == "chinese"  # unambiguous here
    assert [direction(c) for c in ("arb_Arab", "heb_Hebr", "urd_Arab", "pes_Arab", "hin_Deva")] \
        == ["rtl", "rtl", "rtl", "rtl", "auto"]  # fmt: skip


def test_captions_beside_each_file_never_overwrite_without_the_flag(images, media):
    result = export(images, "captions", task="tags")
    assert result.count == 2 and result.skipped == {"failed": 1}
    assert (media / "red-product.txt").read_text("utf-8") == "red, image, red\n"
    assert (media / "sub" / "green-logo.txt").exists()
    (media / "red-product.txt").write_text("mine\n", "utf-8")
    again = export(images, "captions", task="description")
    assert again.count == 0
    assert again.skipped["caption exists (pass --overwrite to replace)"] == 2
    assert (media / "red-product.txt").read_text("utf-8") == "mine\n"
    export(images, "captions", task="description", overwrite=True)
    assert (media / "red-product.txt").read_text("utf-8") == "A red image.\n"


def test_captions_in_a_mirrored_tree_in_a_language(images, tmp_path):
    out = tmp_path / "captions"
    result = export(images, "captions", out, language="hin_Deva", extension="caption")
    assert result.count == 2
    assert (out / "red-product.caption").read_text("utf-8") == "एक red image।\n"
    assert (out / "sub" / "green-logo.caption").exists()
    with pytest.raises(ConfigurationError, match=r"no translations into 'deu_Latn'.*fra_Latn"):
        export(images, "captions", out, language="deu_Latn")
    with pytest.raises(ConfigurationError, match="no 'ad' task; choose --task from description"):
        export(images, "captions", out, task="ad")


def test_hf_folder_loads_with_datasets(images, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "hf"
    result = export(images, "hf", out)
    assert result.count == 2 and result.skipped == {"failed": 1}
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text("utf-8").splitlines()]
    assert [r["file_name"] for r in rows] == ["red-product.jpg", "sub/green-logo.png"]
    dataset = datasets.load_dataset(
        "imagefolder", data_dir=str(out), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert dataset.num_rows == 2
    for column in (
        "image",
        "description",
        "tags",
        "sentiment",
        "description_fra_Latn",
        "description_hin_Deva",
        "sentiment_spa_Latn",
        "kind",
        "width",
        "seconds",
    ):
        assert column in dataset.column_names, column  # fmt: skip
    first = dataset[0]
    assert first["image"].size == (640, 480) and first["description"] == "A red image."
    assert first["tags"] == ["red", "image", "red"]
    with pytest.raises(ConfigurationError, match="--overwrite"):
        export(images, "hf", out)
    assert export(images, "hf", out, overwrite=True, media="copy").count == 2


def test_hf_mixed_run_gives_an_imagefolder_and_a_videofolder(mixed, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "hf"
    export(mixed, "hf", out, media="symlink")
    assert (out / "images" / "red-product.jpg").is_symlink()
    cache = str(tmp_path / "cache")
    images = datasets.load_dataset("imagefolder", data_dir=str(out / "images"), split="train",
                                   cache_dir=cache)  # fmt: skip
    assert images.num_rows == 1 and images[0]["description_fra_Latn"] == "Une red image."
    videos = datasets.load_dataset("videofolder", data_dir=str(out / "videos"), split="train",
                                   cache_dir=cache)  # fmt: skip
    videos = videos.cast_column("video", datasets.Video(decode=False))
    assert videos.num_rows == 1 and videos[0]["duration"] == 4.0
    assert videos[0]["video"]["path"].endswith("four-colours.mp4")


def test_webdataset_shards_read_with_webdataset(mixed, tmp_path):
    wds = pytest.importorskip("webdataset")
    out = tmp_path / "wds"
    result = export(mixed, "webdataset", out, shard_size=1)
    assert result.count == 2 and sorted(p.name for p in out.iterdir()) == [
        "shard-000000.tar", "shard-000001.tar"]  # fmt: skip
    urls = [str(p) for p in sorted(out.glob("*.tar"))]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("pil"))
    assert [s["__key__"] for s in samples] == ["000000000", "000000001"]
    image, video = samples
    assert image["jpg"].size == (640, 480) and image["txt"] == "A red image."
    assert image["json"]["tags"] == ["red", "image", "red"]
    assert image["json"]["description_hin_Deva"] == "एक red image।"
    assert video["mp4"] == (tmp_path / "ads" / "four-colours.mp4").read_bytes()
    assert video["json"]["kind"] == "video" and video["json"]["frame_count"] == 32


def test_a_folder_of_shards_and_superseded_records(tmp_path, media):
    shards = tmp_path / "shards"
    shards.mkdir()
    old = record(media / "red-product.jpg", "image", "purple", 9.0, width=640, height=480)
    new = record(media / "red-product.jpg", "image", "red", 2.0, width=640, height=480)
    write(shards / "part-0.jsonl", [old, failed(media / "broken.jpg", "image")])
    write(shards / "part-1.jsonl", [new])
    write(shards / "part-1.jsonl.replaced.jsonl", [old])  # set aside by --resume: not read
    result = export(shards, "csv", tmp_path / "r.csv")
    assert result.count == 2
    lines = (tmp_path / "r.csv").read_text("utf-8").splitlines()
    assert len(lines) == 3 and "A red image." in lines[2] and "purple" not in "".join(lines)
    assert "description_fra_Latn" in lines[0]


def test_clear_errors_name_the_input_and_the_fix(tmp_path):
    with pytest.raises(ConfigurationError, match=r"missing\.jsonl is not a results file"):
        export(tmp_path / "missing.jsonl", "csv", tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match="empty is a folder without result shards"):
        export(tmp_path / "empty", "hf", tmp_path / "x")
    with pytest.raises(ConfigurationError, match="choose one of seed-json, csv, parquet, html"):
        export(tmp_path / "empty", "xml", tmp_path / "x")
