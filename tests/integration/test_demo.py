"""`babelcap demo`, the README's first command: the bundled examples, served and captioned."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.vllm


def test_demo_captions_and_translates_the_bundled_examples(tmp_path):
    out = tmp_path / "demo.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "babelcap", "demo", "--output", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "image red-product.jpg: The image is mostly red." in run.stdout
    # The transparent band is composited onto white; green still dominates.
    assert "image green-logo.png: The image is mostly green." in run.stdout
    # One frame from the middle of each second: the four colours, in order.
    assert "video four-colours.mp4: The video shows red, green, blue, yellow." in run.stdout
    assert "fra_Latn: La vidéo montre : rouge, vert, bleu, jaune." in run.stdout
    assert "spa_Latn: El vídeo muestra: rojo, verde, azul, amarillo." in run.stdout
    records = {json.loads(line)["path"].rsplit("/", 1)[1]: json.loads(line)
               for line in out.read_text(encoding="utf-8").splitlines()}  # fmt: skip
    assert records["four-colours.mp4"]["media"]["sampled_timestamps"] == [0.5, 1.5, 2.5, 3.5]
    assert records["red-product.jpg"]["translations"]["fra_Latn"]["description"] == (
        "L'image est surtout rouge."
    )
    assert set(records["red-product.jpg"]["tasks"]) == {"description", "tags", "sentiment", "ad"}
