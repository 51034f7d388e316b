"""Image preparation of a 12-megapixel JPEG: babelcap vs naive open-convert-resize-encode.

Both produce a JPEG (quality 90) of the size the image model uses: 1120x840 for Llama 3.2
Vision (560 px tiles, at most 4), and, for reference, 448x336 (a 336 px model such as CLIP
ViT-L/336):

- naive: ``Image.open(p).convert("RGB").resize(size)`` then encode (full-resolution decode);
- babelcap: ``client.images.prepare_image`` (size from the header, JPEG ``draft`` decoding at a
  reduced DCT scale, EXIF orientation, colour handling, resize with ``reducing_gap``, encode).

CPU milliseconds are the median of --repeats runs in one process (after a warm-up); peak memory
is each method's own fresh process ``ru_maxrss`` minus that of the same process before it ran.

    python -m babelcap.benchmarks.image_prep [--repeats 15] [--output out/bench-images.json]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from babelcap.benchmarks.environment import peak_rss_mib, save_report

PHOTO = Path("out/bench-media/photo-12mp.jpg")
SIZES = {"llama-3.2-vision (560 px tiles x4)": (560, 4), "336 px model": (336, 1)}


def make_photo(path: Path = PHOTO) -> Path:
    """A 4000x3000 JPEG with photo-like detail (smooth texture plus grain), quality 92."""
    if path.exists():
        return path
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(12)
    coarse = rng.integers(0, 256, (75, 100, 3), np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((4000, 3000), Image.Resampling.BICUBIC))
    grain = rng.normal(0, 12, smooth.shape)
    pixels = np.clip(smooth + grain, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=92)
    return path


def _naive(path: Path, tile: int, tiles: int) -> bytes:
    from PIL import Image

    from babelcap.client.images import target_size

    image = Image.open(path).convert("RGB")
    image = image.resize(target_size(*image.size, tile, tiles))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _babelcap(path: Path, tile: int, tiles: int) -> bytes:
    from babelcap.client.images import prepare_image

    return prepare_image(path, tile_size=tile, max_tiles=tiles, quality=90).jpeg


METHODS = {"naive": _naive, "babelcap": _babelcap}


def _child(method: str, path: Path, tile: int, tiles: int, repeats: int) -> None:
    from PIL import Image

    import babelcap.client.images  # noqa: F401  (imported before the baseline, as the naive path uses it)

    function = METHODS[method]
    before = peak_rss_mib()
    output = function(path, tile, tiles)  # warm-up, and the peak-memory run
    peak = peak_rss_mib() - before
    times = []
    for _ in range(repeats):
        started = time.process_time()
        function(path, tile, tiles)
        times.append((time.process_time() - started) * 1000)
    size = Image.open(io.BytesIO(output)).size
    print(json.dumps({"cpu_ms": statistics.median(times), "peak_mib": peak,
                      "size": size, "bytes": len(output)}))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print a table, save JSON."""
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], Path(sys.argv[3]), *map(int, sys.argv[4:7]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--output", default="out/bench-images.json")
    args = parser.parse_args(argv)
    photo = make_photo()
    results: dict[str, dict[str, object]] = {}
    print(f"{'target':36} {'method':9} {'CPU ms':>8} {'peak MiB':>9} {'sent':>10}")
    for label, (tile, tiles) in SIZES.items():
        results[label] = {}
        for method in METHODS:
            run = subprocess.run(
                [sys.executable, "-m", "babelcap.benchmarks.image_prep", "--child", method,
                 str(photo), str(tile), str(tiles), str(args.repeats)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            figures = json.loads(run.stdout.strip().splitlines()[-1])
            results[label][method] = figures
            width, height = figures["size"]
            print(f"{label:36} {method:9} {figures['cpu_ms']:8.1f} {figures['peak_mib']:9.1f} "
                  f"{width:>5}x{height:<4}")  # fmt: skip
        naive, ours = results[label]["naive"], results[label]["babelcap"]
        speedup = naive["cpu_ms"] / ours["cpu_ms"]  # type: ignore[index]
        memory = naive["peak_mib"] / max(ours["peak_mib"], 0.1)  # type: ignore[index]
        results[label]["speedup"] = round(speedup, 2)
        results[label]["memory_ratio"] = round(memory, 2)
        print(f"{'':36} {speedup:.2f}x faster, {memory:.1f}x less peak memory")
    save_report(args.output, "image_prep", vars(args), photo=str(photo), results=results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
