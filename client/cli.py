"""The ``babelcap`` command. Subcommands import their stage lazily, so ``--help`` and the client
work without torch or vLLM installed."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from client.errors import BabelcapError

__all__ = ["main"]

_Handler = Callable[[argparse.Namespace], int]


def _demo(args: argparse.Namespace) -> int:
    from client.demo import run_demo

    return run_demo(
        media=[Path(p) for p in args.media],
        output=Path(args.output),
        languages=[code.strip() for code in args.languages.split(",") if code.strip()],
        startup_timeout=args.startup_timeout,
    )


def _tiny_build(args: argparse.Namespace) -> int:
    from converters.tiny.build import build_models

    return build_models(args.only, output=Path(args.output) if args.output else None)


def _tiny_check(args: argparse.Namespace) -> int:
    from converters.tiny.build import check_models

    return check_models(args.only)


def _convert_nllb(args: argparse.Namespace) -> int:
    from converters.nllb import convert_nllb

    manifest = convert_nllb(
        args.model, Path(args.output), quantization=args.quantization, force=args.force
    )
    probe = manifest["probe"]
    sys.stdout.write(
        f"converted {args.model} -> {args.output} ({args.quantization}); "
        f"probe: {probe['eng_Latn']!r} -> {probe['fra_Latn']!r}\n"
    )
    return 0


def _read_text(value: str) -> str:
    return sys.stdin.read() if value == "-" else value


def _translate(args: argparse.Namespace) -> int:
    import json

    text = _read_text(args.text)
    targets = [code.strip() for code in args.to.split(",") if code.strip()]
    if args.model:
        import asyncio

        from server.translation import TranslationEngine, TranslationSettings

        async def run() -> dict[str, list[str]]:
            engine = TranslationEngine(TranslationSettings(model=Path(args.model)))
            try:
                return (await engine.translate([text], targets, args.source)).texts
            finally:
                await engine.aclose()

        outputs = asyncio.run(run())
    else:
        from client.translate import translate_remote

        outputs = translate_remote(args.server, [text], targets, args.source, args.api_key)
    if args.json:
        sys.stdout.write(json.dumps({k: v[0] for k, v in outputs.items()}, ensure_ascii=False))
        sys.stdout.write("\n")
    else:
        for target, values in outputs.items():
            sys.stdout.write(f"[{target}]\n{values[0]}\n")
    return 0


def _translation_server(args: argparse.Namespace) -> int:
    import uvicorn

    from server.translation import TranslationEngine, TranslationSettings
    from server.translation.api import create_app
    from server.vllm_process import BACKEND_KEEP_ALIVE_S

    engine = TranslationEngine(TranslationSettings(model=Path(args.model)))
    app = create_app(engine, max_body_bytes=args.max_body_bytes)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="info",
        timeout_keep_alive=BACKEND_KEEP_ALIVE_S,
    )  # fmt: skip
    return 0


def _caption(args: argparse.Namespace) -> int:
    import asyncio

    from client.config import CaptionSettings, settings_from_args
    from client.errors import ServerUnavailableError
    from client.progress import render_summary
    from client.runner import caption, write_summary

    settings = settings_from_args(args, CaptionSettings)
    try:
        summary, code = asyncio.run(caption(settings, args.paths))
    except ServerUnavailableError as error:  # before any asset: nothing to keep
        sys.stderr.write(f"babelcap caption: {error}\n")
        return 3
    except KeyboardInterrupt:
        sys.stderr.write(
            f"babelcap caption: interrupted; finished assets are in {settings.output}, rerun "
            "with --resume to continue\n"
        )
        return 130
    where = write_summary(summary, settings.output)
    sys.stdout.write(f"babelcap caption: summary (also in {where})\n{render_summary(summary)}")
    return code


def _bench(args: argparse.Namespace) -> int:
    from benchmarks.bench import BenchSettings, run_bench
    from client.config import settings_from_args

    settings = settings_from_args(args, BenchSettings)
    result = run_bench(settings, compare=args.action == "compare")
    failed = any(lv["client"]["errors"] for p in result["profiles"] for lv in p["levels"])
    return 1 if failed else 0


def _export(args: argparse.Namespace) -> int:
    from client.export import export

    results = Path(args.results)
    suffix = {"seed-json": ".json", "csv": ".csv", "parquet": ".parquet"}[args.format]
    output = Path(args.output) if args.output else results.with_suffix(suffix)
    count = export(results, args.format, output)
    sys.stdout.write(f"exported {count} records to {output}\n")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from server.serve import serve

    return serve(
        profile_name=args.profile,
        config=Path(args.config) if args.config else None,
        host=args.host,
        port=args.port,
        api_key=args.api_key or os.environ.get("BABELCAP_API_KEY"),
        log_dir=Path(args.log_dir),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="babelcap",
        description=(
            "Caption images and videos in bulk, in any of the 200 FLORES-200 languages, "
            "at the speed of a vLLM server."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="serve the tiny CPU models and caption the bundled example media",
        description=(
            "The embedded default job, end to end: start 'babelcap serve --profile tiny-cpu' "
            "(vLLM's CPU build serving the tiny Mllama and LLaVA-NeXT-Video stand-ins, the tiny "
            "NLLB on CTranslate2) on a free port, run 'babelcap caption' over the media given "
            "(default: the bundled examples) with every task, print each description and its "
            "translations, and stop the server. Needs the CPU stack (make stack)."
        ),
    )
    demo.add_argument(
        "media",
        nargs="*",
        default=[str(Path(__file__).resolve().parent / "examples")],
        help="image/video files or folders (default: the bundled examples)",
    )
    demo.add_argument("--output", default="out/demo.jsonl", help="JSONL file to write")
    demo.add_argument(
        "--languages",
        default="fra_Latn,spa_Latn",
        help="comma-separated FLORES-200 codes to translate captions into",
    )
    demo.add_argument(
        "--startup-timeout",
        type=float,
        default=600.0,
        help="seconds to wait for each vLLM server's /health",
    )
    demo.set_defaults(handler=_demo)

    serve = commands.add_parser(
        "serve",
        help="serve images, videos and translations behind one OpenAI-compatible URL",
        description=(
            "Start one vLLM process per vision model of a profile (CPU or GPU build), wait for "
            "each to be healthy, host the NLLB translator, and serve them all behind one "
            "gateway: /v1/models, /v1/chat/completions (streaming too), /v1/translations, "
            "/translate, /languages, /health and /metrics. Ctrl-C stops every process."
        ),
    )
    source = serve.add_mutually_exclusive_group()
    source.add_argument(
        "--profile",
        default="tiny-cpu",
        help="built-in profile: tiny-cpu (default), tiny-cpu-bf16, h100-80gb, gpu-24gb-image, "
        "gpu-24gb-video, llama-vision-nf4, llama-vision-bf16",
    )
    source.add_argument("--config", help="a JSON profile file of your own")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' (default: $BABELCAP_API_KEY, else none)",
    )
    serve.add_argument("--log-dir", default="out/logs", help="where each backend's log goes")
    serve.set_defaults(handler=_serve)

    from client.config import add_arguments

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
    add_arguments(caption)
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
    from benchmarks.bench import BenchSettings

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
    export.add_argument("results", help="the JSONL file written by babelcap caption")
    export.add_argument("--format", required=True, choices=["seed-json", "csv", "parquet"])
    export.add_argument("--output", help="file to write (default: results name + .json/.csv/...)")
    export.set_defaults(handler=_export)

    convert = commands.add_parser(
        "convert",
        help="convert models for babelcap's runtimes",
        description="Convert models for babelcap's runtimes.",
    )
    convert_commands = convert.add_subparsers(
        dest="convert_command", metavar="MODEL", required=True
    )
    nllb = convert_commands.add_parser(
        "nllb",
        help="Hugging Face NLLB-200 -> CTranslate2",
        description=(
            "Convert a Hugging Face NLLB-200 model (hub id or local folder) to CTranslate2 with "
            "CTranslate2's own converter, copy the sentencepiece model beside it, write "
            "babelcap-manifest.json, and translate a probe sentence before reporting success."
        ),
    )
    nllb.add_argument("--model", required=True, help="hub id or folder, e.g. a local copy of "
                      "facebook/nllb-200-distilled-600M")  # fmt: skip
    nllb.add_argument("--output", required=True, help="folder to write (must be empty)")
    nllb.add_argument(
        "--quantization",
        default="int8",
        help="int8 (CPU, default), int8_float16 or float16 (GPU), float32, ...",
    )
    nllb.add_argument("--force", action="store_true", help="replace a non-empty --output")
    nllb.set_defaults(handler=_convert_nllb)

    translate = commands.add_parser(
        "translate",
        help="translate text with NLLB (server or local model)",
        description=(
            "Translate text sentence by sentence, keeping paragraphs, into one or more "
            "FLORES-200 languages (fra_Latn, spa_Latn, hin_Deva, ... or ISO codes such as fr)."
        ),
    )
    translate.add_argument("text", help="the text, or - to read standard input")
    translate.add_argument("--to", required=True, help="comma-separated target language codes")
    translate.add_argument("--from", dest="source", default="eng_Latn", help="source language")
    where = translate.add_mutually_exclusive_group()
    where.add_argument("--server", default="http://127.0.0.1:8000", help="babelcap server base URL")
    where.add_argument("--model", help="translate locally with this CTranslate2 NLLB folder")
    translate.add_argument(
        "--api-key", default=None, help="server API key (default: $BABELCAP_API_KEY)"
    )
    translate.add_argument("--json", action="store_true", help="print JSON: {code: text}")
    translate.set_defaults(handler=_translate)

    server = commands.add_parser(
        "translation-server",
        help="serve only the translation API ('babelcap serve' hosts it too)",
        description=(
            "Serve POST /v1/translations, LibreTranslate's POST /translate and GET /languages, "
            "and GET /health for one CTranslate2 NLLB model."
        ),
    )
    server.add_argument("--model", required=True, help="CTranslate2 NLLB folder")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    server.add_argument("--port", type=int, default=8100, help="port (default 8100)")
    server.add_argument(
        "--max-body-bytes", type=int, default=1_000_000, help="larger requests get 413"
    )
    server.set_defaults(handler=_translation_server)

    tiny = commands.add_parser(
        "tiny",
        help="build or verify the tiny stand-in models",
        description=(
            "The tiny stand-ins of Mllama, LLaVA-NeXT-Video and NLLB that tests and the CPU "
            "profile serve. They are committed; 'build' retrains them deterministically "
            "(needs the convert extra: torch, transformers 4.x), 'check' verifies the committed "
            "files against their BUILD.json records."
        ),
    )
    tiny_commands = tiny.add_subparsers(dest="tiny_command", metavar="ACTION", required=True)
    choices = ["mllama", "llava-next-video", "nllb"]
    build = tiny_commands.add_parser("build", help="retrain and save the tiny models")
    build.add_argument("--only", choices=choices, action="append", help="build only this model")
    build.add_argument("--output", help="folder to write into (default: the committed artifacts)")
    build.set_defaults(handler=_tiny_build)
    check = tiny_commands.add_parser("check", help="verify the committed tiny models")
    check.add_argument("--only", choices=choices, action="append", help="check only this model")
    check.set_defaults(handler=_tiny_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``babelcap`` command line; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    handler: _Handler = args.handler
    try:
        return handler(args)
    except BabelcapError as error:
        sys.stderr.write(f"babelcap: error: {error}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
