"""``babelcap caption``, ``babelcap export`` and ``babelcap bench``: the client side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from babelcap.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from babelcap.core.settings import add_arguments, settings_from_args

__all__ = ["register"]


def _caption(args: argparse.Namespace) -> int:
    import asyncio

    from babelcap.client.config import CaptionSettings
    from babelcap.client.progress import render_summary
    from babelcap.client.runner import caption
    from babelcap.client.shards import is_sharded
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
    # written by caption(), under its lock
    if settings.engine == "ray" or is_sharded(settings.output):
        where = f"{settings.output.rstrip('/')}/summary.json"
    else:
        where = str(sidecar(Path(settings.output), ".summary.json"))
    sys.stdout.write(f"babelcap caption: summary (also in {where})\n{render_summary(summary)}")
    return code


def _bench(args: argparse.Namespace) -> int:
    from babelcap.benchmarks.bench import BenchSettings, run_bench
    from babelcap.benchmarks.scale_out import ScaleOutSettings, run_scale_out, runs_failed

    scale_out = args.action == "scale-out"
    mine, other = (
        (ScaleOutSettings, BenchSettings) if scale_out else (BenchSettings, ScaleOutSettings)
    )
    foreign = [n for n in other.model_fields if n not in mine.model_fields
               and getattr(args, n, None) not in (None, [])]  # fmt: skip
    if foreign:
        from babelcap.core.errors import ConfigurationError

        flags = ", ".join("--" + n.replace("_", "-") for n in foreign)
        raise ConfigurationError(f"{flags}: not a flag of bench {args.action}")
    if scale_out:
        scaled = run_scale_out(settings_from_args(args, ScaleOutSettings))
        return EXIT_FAILED if runs_failed(scaled) else EXIT_OK
    settings = settings_from_args(args, BenchSettings)
    result = run_bench(settings, compare=args.action == "compare",
                       baseline=args.action == "baseline")  # fmt: skip
    failed = any(lv["client"]["errors"] for p in result["profiles"] for lv in p["levels"])
    if "baseline" in result:
        from babelcap.benchmarks.baseline_compare import wrong_answers

        wrong = wrong_answers(result["baseline"])
        if wrong:
            sys.stderr.write(wrong + "\n")
            failed = True
    return EXIT_FAILED if failed else EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from babelcap.client.export import ExportSettings, run_export

    settings = settings_from_args(args, ExportSettings)
    result = run_export(settings)
    where = " and ".join(map(str, result.outputs)) or "beside each medium"
    sys.stdout.write(f"exported {result.count} records to {where}\n")
    for reason, count in sorted(result.skipped.items()):
        sys.stdout.write(f"  left out {count}: {reason}\n")
    return EXIT_OK


_EXPORT_FORMATS = """\
Read a results file from babelcap caption (or a folder of result shards, every *.jsonl in
it; the last record of a path wins) and write it in another shape. Records stream through:
memory stays flat in their number; files and folders appear whole or not at all.

formats:
  seed-json   the original scripts' JSON, their keys exactly: {"descriptions": [...],
              "stats": {...}} with image_file/video_file, description_english,
              translation_<language> (translation_french), generated_tokens, *_sec timings,
              video_size_mb/_fps/_frames/..., tags_processed; stats with total_images or
              total_videos and the average over processed media only. A mixed run gives
              <stem>.images.json and <stem>.videos.json. Needs langcodes (babelcap[export]).
  csv         one row per asset, one column per task, language and figure.
  parquet     the same, typed (tags as a list); needs pyarrow (babelcap[export]).
  html        an offline review report: thumbnails and sampled video frames (made from the
              media, in <name>_files/), every task's text, tags, translations behind a
              language switch, errors; filter, search, sort by latency; run figures and a
              latency histogram. Opens from disk, fetches nothing.
  captions    a caption file per medium (photo.jpg -> photo.txt), as kohya_ss, OneTrainer
              and taggui read them: --task, --language, --extension; beside each medium, or
              a mirrored tree under --output; existing files kept unless --overwrite.
  hf          a folder datasets.load_dataset("imagefolder" or "videofolder", data_dir=OUT)
              loads: the media (--media hardlink|symlink|copy) and metadata.jsonl with
              file_name and one column per task and task_language. Mixed runs: OUT/images and
              OUT/videos.
  webdataset  tar shards (--shard-size samples each) of <key>.<ext> media, <key>.json columns
              and <key>.txt description, as the webdataset library reads them.

Docs: docs/exports.md. Every flag can also be set as BABELCAP_EXPORT_<FLAG>.
"""


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
            "error records, never a crash. Sources and --output may be bucket URIs (s3://, "
            "gs://, file://; credentials from the store's standard environment and files), and "
            "--engine ray runs the same job as a Ray Data pipeline over a Ray cluster "
            "(docs/scale-out.md). Every flag can also be set as BABELCAP_<FLAG> "
            "(e.g. BABELCAP_CONCURRENCY=32)."
        ),
        epilog=(
            "exit status: 0 all assets ok, 1 some failed (see their records), 2 bad settings, "
            "3 stopped because no server answered (rerun with --resume), 130 interrupted"
        ),
    )
    caption.add_argument(
        "paths", nargs="*",
        help="files, folders, globs ('ads/**/*.mp4') or URIs (s3://bucket/ads/, "
        "'s3://bucket/ads/**/*.jpg')",
    )  # fmt: skip
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
            "baseline: run --profile through babelcap serve, then the original article's "
            "pipeline in this process (transformers generate per asset, --baseline-quantization "
            "fp32/bf16/nf4/fp8, flash_attention_2 or sdpa, NLLB per language) on the same "
            "files, and report both side by side with the ratio and both sides' answers "
            "checked. "
            "scale-out: babelcap caption (--engines, --scale-engines) over 1, 2, 4 busy "
            "loopback endpoints of fixed --capacity and --latency-s, then each engine on one "
            "--profile server, steady-state assets/s side by side; writes scale_out.json and "
            "scale_out.md to --output-dir (default there: out/bench-scale-out; its flags are "
            "marked scale-out, and --tasks/--languages/--image-size default to description, "
            "fra_Latn, 256x192). "
            "Writes bench.json (schema, versions, hardware, redacted config, every figure), "
            "bench.md, throughput.png and latency_cdf.png to --output-dir, and prints a table. "
            "Definitions: docs/benchmarks.md. Flags can be set as BABELCAP_BENCH_<FLAG>."
        ),
    )
    bench.add_argument("action", nargs="?",
                       choices=["run", "compare", "baseline", "scale-out"], default="run",
                       help="run (default), compare, baseline or scale-out")  # fmt: skip
    from babelcap.benchmarks.bench import BenchSettings
    from babelcap.benchmarks.scale_out import ScaleOutSettings

    add_arguments(bench, BenchSettings)
    add_arguments(bench, ScaleOutSettings, skip=frozenset(BenchSettings.model_fields))
    bench.set_defaults(handler=_bench)

    export = commands.add_parser(
        "export",
        help="turn results into the seed JSON, CSV, Parquet, an HTML review report, caption "
        "files, a Hugging Face dataset folder or WebDataset shards",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_EXPORT_FORMATS,
    )
    from babelcap.client.export import ExportSettings

    add_arguments(export, ExportSettings)
    export.set_defaults(handler=_export)
