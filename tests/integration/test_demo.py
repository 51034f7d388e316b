"""The embedded default job captions and translates the bundled examples, checkably."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.demo import caption_files, discover

EXAMPLES = Path(__file__).resolve().parents[2] / "client" / "examples"


def test_discovery_decides_by_content_and_skips_non_media(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image", encoding="utf-8")
    (tmp_path / "clip.bin").write_bytes((EXAMPLES / "four-colours.mp4").read_bytes())
    (tmp_path / "logo").write_bytes((EXAMPLES / "green-logo.png").read_bytes())
    found, skipped = discover([tmp_path])
    assert [(p.name, kind) for p, kind in found] == [("clip.bin", "video"), ("logo", "image")]
    assert skipped == 1


@pytest.mark.vllm
def test_bundled_examples_are_captioned_and_translated(tiny_vllm):
    assets, _ = discover([EXAMPLES])
    urls = {name: process.base_url for name, process in tiny_vllm.items()}
    records = {
        Path(r["path"]).name: r for r in caption_files(assets, urls, ["fra_Latn", "spa_Latn"])
    }
    assert {r["status"] for r in records.values()} == {"ok"}
    assert records["red-product.jpg"]["description"] == "The image is mostly red."
    # The transparent band is composited onto white; green still dominates.
    assert records["green-logo.png"]["description"] == "The image is mostly green."
    video = records["four-colours.mp4"]
    # One frame from the middle of each second: the four colours, in order.
    assert video["description"] == "The video shows red, green, blue, yellow."
    assert video["sampled_timestamps"] == [0.5, 1.5, 2.5, 3.5]
    assert video["translations"] == {
        "fra_Latn": "La vidéo montre : rouge, vert, bleu, jaune.",
        "spa_Latn": "El vídeo muestra: rojo, verde, azul, amarillo.",
    }
    assert records["red-product.jpg"]["translations"]["fra_Latn"] == "L'image est surtout rouge."
