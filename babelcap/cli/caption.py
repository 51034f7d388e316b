"""``babelcap caption``, ``babelcap export`` and ``babelcap bench``: the client side."""

from __future__ import annotations

import argparse
import sys

from babelcap.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from babelcap.core.settings import add_arguments, settings_from_args

__all__ = ["register"]


def _caption(args: argparse.Namespace) -> int:
    import asyncio

    from babelcap.client.config import CaptionSettings
    from babelcap.client.progress import render_summary
    from babelcap.client.runner import caption
    from babelcap.client.store import sidecar
    from babelcap.core.errors import ServerUnavailableError

    settings = settings_from_args(args, CaptionSettings)
    try:
        summary, code = asyncio.run(caption(settings, args.paths))
    except ServerUnavailableError as error:  # before any asset: nothing to keep
        sys.stderr.write(f"babelcap caption: {error}\n")
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(
            f"babelcap caption: interrupted; finished assets are in {settings.output}, rerun "
            "with --resume to continue\n"
        )
        return EXIT_INTERRUPTED
    where = sidecar(settings.output, ".summary.json")  # written by caption(), under its lock
    sys.stdout.write(f"babelcap caption: summary (also in {where})\n{render_summary(summary)}")
    return code


def _bench(args: argparse.Namespace) -> int:
    from babelcap.benchmarks.bench import BenchSettings, run_bench

    settings = settings_from_args(args, BenchSettings)
    result = run_bench(settings, compare=args.action == "compare")
    failed = any(lv["client"]["errors"] for p in result["profiles"] for lv in p["levels"])
    return EXIT_FAILED if failed else EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from babelcap.client.export import ExportSettings, export

    settings = settings_from_args(args, ExportSettings)
    output = settings.destination()
    count = export(settings.results, settings.format, output)
    sys.stdout.write(f"exported {count} records to {output}\n")
    return EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
    caption = commands.add_parser(
        "caption",
        help="caption folders of images and videos, with tags, analyses and translations",
        description=(
            "Walk files, folders (recursively), globs and file lists; decide each file's type "
            "by content; send images (resized to what the model sees) and videos (N frames "
            "sampled uniformly in time) to a babelcap server with every task's prompt, "
            "concurrently; parse tags; translate the chosen tasks' text into --languages; and "
            "append one JSON line per asset to --output as each finishes. Bad files become "
            "error records, never a crash. Every flag can also be set as BABELCAP_<FLAG> "
            "(e.g. BABELCAP_CONCURRENCY=32)."
        ),
        epilog=(
            "exit status: 0 all assets ok, 1 some failed (see their records), 2 bad settings, "
            "3 stopped because no server answered (rerun with --resume), 130 interrupted"
        ),
    )
    caption.add_argument("paths", nargs="*", help="files, folders or globs ('ads/**/*.mp4')")
    from babelcap.client.config import CaptionSettings

    add_arguments(caption, CaptionSettings)
    caption.set_defaults(handler=_caption)

    bench = commands.add_parser(
        "bench",
        help="measure throughput and latency (TTFT, TPOT, ITL, per asset) and compare profiles",
        description=(
            "run (default): drive the real caption client against one server (--server URL, or "
            "--profile started here) over a concurrency sweep, optionally Poisson-paced, after "
            "a warm-up, plus the original sequential loop for a speed-up ratio. compare: start "
            "each of --profiles in turn through babelcap serve and run the identical workload. "
            "Writes bench.json (schema, versions, hardware, redacted config, every figure), "
            "bench.md, throughput.png and latency_cdf.png to --output-dir, and prints a table. "
            "Definitions: docs/benchmarks.md. Flags can be set as BABELCAP_BENCH_<FLAG>."
        ),
    )
    bench.add_argument("action", nargs="?", choices=["run", "compare"], default="run",
                       help="run (default) or compare")  # fmt: skip
    from babelcap.benchmarks.bench import BenchSettings

    add_arguments(bench, BenchSettings)
    bench.set_defaults(handler=_bench)

    export = commands.add_parser(
        "export",
        help="convert a results file to the seed JSON, CSV or Parquet",
        description=(
            "seed-json: the original article's shape ({'descriptions': [...], 'stats': {...}} "
            "with description_english, translation_<language>, generated_tokens, timings and "
            "video metadata; averages over processed media only). csv: one row per asset. "
            "parquet: the same, typed (needs pyarrow: pip install 'babelcap[export]')."
        ),
    )
    from babelcap.client.export import ExportSettings

    add_arguments(export, ExportSettings)
    export.set_defaults(handler=_export)
