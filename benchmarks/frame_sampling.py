"""Frame sampling vs the original decode-everything method, in CPU seconds.

On a generated 90 s 1080p H.264 clip (24 fps, 2 s GOP, moving texture so decoding costs what
real footage costs), both methods pick the same N frames uniformly in time:

- original: decode every frame from the start up to the last sampled one, keep the chosen ones;
- babelcap: ``client.frames.sample_frames`` (demux-only packet index, verified keyframe seeks,
  decode only the GOPs that hold the targets), including its JPEG encoding.

Each run is a fresh process measured by its own CPU time (user + system), median of --repeats.

    python -m babelcap.benchmarks.frame_sampling [--frames 8] [--repeats 3]
        [--output out/bench-frames.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from babelcap.benchmarks.environment import peak_rss_mib, save_report

CLIP = Path("out/bench-media/clip-1080p-90s.mp4")


def make_clip(path: Path = CLIP) -> Path:
    """The 90 s 1080p clip (built once, about a minute, then cached)."""
    if path.exists():
        return path
    from babelcap.benchmarks.synthetic import write_video

    path.parent.mkdir(parents=True, exist_ok=True)
    colours = [(200, 60, 60), (60, 200, 60), (60, 60, 200), (200, 200, 60), (60, 200, 200)] * 6
    temporary = path.with_name(path.stem + ".partial.mp4")
    write_video(temporary, colours, seconds_each=3.0, fps=24, size=(1920, 1080), gop=48,
                textured=True, preset="veryfast")  # fmt: skip
    temporary.replace(path)
    return path


def _child(method: str, path: Path, count: int) -> None:
    import resource

    started = time.perf_counter()
    if method == "original":
        from babelcap.benchmarks.baseline import decode_everything

        got = len(decode_everything(path, count))
    else:
        from babelcap.client.frames import sample_frames

        got = len(sample_frames(path, count).frames)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"cpu_s": usage.ru_utime + usage.ru_stime,
                      "wall_s": time.perf_counter() - started, "frames": got,
                      "max_rss_mib": peak_rss_mib()}))  # fmt: skip


def _measure(method: str, path: Path, count: int) -> dict[str, float]:
    baseline = subprocess.run(
        [sys.executable, "-c", "import av, PIL.Image, numpy, client.frames, resource; "
         "u = resource.getrusage(resource.RUSAGE_SELF); print(u.ru_utime + u.ru_stime)"],
        capture_output=True, text=True, check=True,
    )  # the import cost, subtracted  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "babelcap.benchmarks.frame_sampling", "--child", method, str(path),
         str(count)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(run.stdout.strip().splitlines()[-1])
    result["cpu_s"] -= float(baseline.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print a table, save JSON."""
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default="out/bench-frames.json")
    args = parser.parse_args(argv)
    clip = make_clip()
    results: dict[str, dict[str, Any]] = {}
    for method in ("original", "babelcap"):
        runs = [_measure(method, clip, args.frames) for _ in range(args.repeats)]
        results[method] = {
            "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
            "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
            "max_rss_mib": round(max(r["max_rss_mib"] for r in runs), 1),
            "frames": runs[0]["frames"],
            "runs": runs,
        }
    ratio = results["original"]["cpu_s"] / results["babelcap"]["cpu_s"]
    print(f"{'method':10} {'CPU s':>8} {'wall s':>8} {'peak RSS MiB':>13}")
    for method, figures in results.items():
        print(f"{method:10} {figures['cpu_s']:8.3f} {figures['wall_s']:8.3f} "
              f"{figures['max_rss_mib']:13.1f}")  # fmt: skip
    print(f"{args.frames} frames of a 90 s 1080p H.264 clip: {ratio:.1f}x less CPU (target >= 8x)")
    save_report(args.output, "frame_sampling", vars(args), clip=str(clip), results=results,
                cpu_ratio=round(ratio, 2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
