"""babelcap caption end to end vs a faithful reimplementation of the original sequential loop.

Same servers (one ``babelcap serve`` started here, or --server), same media, same work: the
description of every asset, translated into the same languages. The media are generated and
sized like typical ad creatives (1920x1080 JPEG images; 8 s 1280x720 H.264 clips at 24 fps with
a 2 s GOP); ``--image-size 640x480 --video-size 320x240`` measures small media instead.

- original: for each asset, one at a time: decode it the naive way (images whole, videos
  decoded frame by frame up to the last sampled one), send one chat request (not streamed) and
  wait, then translate the whole description into one language at a time, one request each;
- babelcap: ``babelcap caption`` (in-process), concurrent requests, frames sampled by seeking,
  translations batched across assets.

The two are run alternately (--rounds), the median of each is reported, and the ratio is of
assets/s measured side by side in this one run.

    python -m babelcap.benchmarks.caption_throughput [--images 96] [--videos 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from babelcap.benchmarks.environment import save_report
from babelcap.benchmarks.load import original_loop
from babelcap.benchmarks.workload import Workload, synthetic_media

#: Typical ad creatives: 1920x1080 JPEG images; 8 s 1280x720 H.264 clips, 24 fps, 2 s GOP.
TYPICAL_ADS = Workload(
    images=96, videos=32, image_size="1920x1080", video_size="1280x720", video_seconds=8.0,
    fps=24, gop=48, textured=True,
)  # fmt: skip


def babelcap_run(
    base: str,
    paths: list[Path],
    languages: list[str],
    tasks: list[str],
    concurrency: int,
    out: Path,
) -> dict[str, Any]:
    """``babelcap caption`` over exactly ``paths`` (the original loop's assets), in-process."""
    from babelcap.client.config import CaptionSettings
    from babelcap.client.runner import caption

    settings = CaptionSettings(
        server=[base], tasks=tasks, languages=languages, output=out, overwrite=True,
        quiet=True, concurrency=concurrency,
    )  # fmt: skip
    started = time.perf_counter()
    summary, code = asyncio.run(caption(settings, [str(p) for p in paths]))
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"babelcap caption failed: {summary}")
    return {"wall_s": seconds, "assets": summary["assets"],
            "output_tokens": summary["output_tokens"]}  # fmt: skip


def _row(label: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = statistics.median(r["wall_s"] for r in runs)
    assets = runs[0]["assets"]
    tokens = runs[0]["output_tokens"]
    return {"method": label, "assets": assets, "seconds": round(seconds, 3),
            "assets_per_s": round(assets / seconds, 3),
            "output_tokens_per_s": round(tokens / seconds, 1),
            "runs_s": [round(r["wall_s"], 3) for r in runs]}  # fmt: skip


def _bench(base: str, args: argparse.Namespace) -> dict[str, Any]:
    workload = Workload.model_validate(
        TYPICAL_ADS.model_dump() | {
            "images": args.images, "videos": args.videos, "image_size": args.image_size,
            "video_size": args.video_size, "video_seconds": args.video_seconds,
            "languages": args.languages,
        }
    )  # fmt: skip
    folder = synthetic_media(workload, Path(args.media))
    paths = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    languages = workload.languages
    out = Path(args.output).with_suffix(".results.jsonl")
    # Warm-up (not measured): every model and the translator once.
    original_loop(base, [paths[0], paths[-1]], ["description"], languages[:1])
    original, ours, ours_all = [], [], []
    for _ in range(args.rounds):
        original.append(original_loop(base, paths, ["description"], languages))
        ours.append(babelcap_run(base, paths, languages, ["description"], args.concurrency, out))
    for _ in range(args.rounds):
        ours_all.append(babelcap_run(base, paths, languages, workload.tasks, args.concurrency, out))
    rows = [
        _row("original sequential loop (description)", original),
        _row("babelcap caption (description)", ours),
        _row("babelcap caption (4 tasks: 4x the requests)", ours_all),
    ]
    return {"rows": rows, "speedup": round(rows[1]["assets_per_s"] / rows[0]["assets_per_s"], 2)}


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print a table, save JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--server", help="a running babelcap server (default: start tiny-cpu)")
    ads = TYPICAL_ADS
    parser.add_argument("--images", type=int, default=ads.images)
    parser.add_argument("--videos", type=int, default=ads.videos)
    parser.add_argument("--image-size", default=ads.image_size, help="a typical web ad creative")
    parser.add_argument("--video-size", default=ads.video_size)
    parser.add_argument("--video-seconds", type=float, default=ads.video_seconds)
    parser.add_argument("--languages", default=",".join(ads.languages))
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--media", default="out/bench-media/caption")
    parser.add_argument("--output", default="out/bench-caption.json")
    args = parser.parse_args(argv)
    if args.server:
        figures = _bench(args.server.rstrip("/"), args)
    else:
        from babelcap.server.launch import local_server

        with local_server(Path("out/bench-logs")) as served:
            figures = _bench(served.base, args)
    print(f"{'method':45} {'assets':>6} {'s':>8} {'assets/s':>9} {'out tok/s':>10}")
    for row in figures["rows"]:
        print(f"{row['method']:45} {row['assets']:6} {row['seconds']:8.2f} "
              f"{row['assets_per_s']:9.2f} {row['output_tokens_per_s']:10.1f}")  # fmt: skip
    print(f"babelcap vs the original loop, same work: {figures['speedup']:.1f}x (target >= 4x)")
    save_report(args.output, "caption_throughput", vars(args), **figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
