"""Client memory is flat in the number of files: peak RSS of ``babelcap caption`` at 1,000 and
10,000 small images (description only, no translation), against one ``babelcap serve``.

The client runs as its own process (the real command line); its peak RSS is VmHWM of the main
process, and of its decoding workers separately. Both counts run against the same server.

    python -m babelcap.benchmarks.caption_memory [--counts 1000,10000]
        [--output out/bench-memory.json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from babelcap.benchmarks.environment import peak_rss_mib, save_report


def make_images(folder: Path, count: int) -> Path:
    """``count`` distinct 48x32 PNGs in ``folder`` (kept between runs)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    existing = len(list(folder.glob("*.png")))
    for i in range(existing, count):
        colour = (i * 37 % 256, i * 91 % 256, i * 53 % 256)
        Image.new("RGB", (48, 32), colour).save(folder / f"{i:05}.png")
    return folder


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _run(base: str, folder: Path, output: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "babelcap", "caption", str(folder), "--server", base,
               "--tasks", "description", "--languages", "", "--output", str(output),
               "--overwrite", "--quiet", "--concurrency", "32"]  # fmt: skip
    started = time.perf_counter()
    log = output.with_suffix(".log").open("w+", encoding="utf-8")  # a pipe could fill and block
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    main_peak, worker_peak = 0.0, 0.0
    while process.poll() is None:
        try:
            main_peak = max(main_peak, peak_rss_mib(process.pid))
            for child in _children(process.pid):
                for grandchild in [child, *_children(child)]:
                    worker_peak = max(worker_peak, peak_rss_mib(grandchild))
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    log.seek(0)
    text = log.read()
    log.close()
    if process.returncode != 0:
        raise SystemExit(f"caption failed ({process.returncode}): {text[-2000:]}")
    lines = output.read_bytes().count(b"\n")
    return {"files": lines, "seconds": round(time.perf_counter() - started, 1),
            "client_peak_rss_mib": round(main_peak, 1),
            "worker_peak_rss_mib": round(worker_peak, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run both counts, print a table, save JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--server", help="a running babelcap server (default: start tiny-cpu)")
    parser.add_argument("--counts", default="1000,10000")
    parser.add_argument("--media", default="out/bench-media/many")
    parser.add_argument("--output", default="out/bench-memory.json")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    results = []

    def measure(base: str) -> None:
        for count in counts:
            folder = make_images(Path(args.media) / str(count), count)
            figures = _run(base, folder, Path(args.output).with_suffix(f".{count}.jsonl"))
            results.append(figures)
            print(f"{count:>6} images: {figures['seconds']:7.1f} s, client peak RSS "
                  f"{figures['client_peak_rss_mib']:.1f} MiB, decoding worker peak "
                  f"{figures['worker_peak_rss_mib']:.1f} MiB")  # fmt: skip

    if args.server:
        measure(args.server.rstrip("/"))
    else:
        from babelcap.server.launch import local_server

        with local_server(Path("out/bench-logs")) as served:
            measure(served.base)
    save_report(args.output, "caption_memory", vars(args), results=results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
