"""The ``babelcap`` command. Subcommands import their stage lazily, so ``--help`` and the client
work without torch or vLLM installed."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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
            "The embedded default job: start vLLM (CPU build) for the tiny Mllama and "
            "LLaVA-NeXT-Video stand-ins, caption every image and video given (default: the "
            "bundled examples), translate each caption with the tiny NLLB model on CTranslate2, "
            "and write one JSON record per asset. Needs the CPU stack (make stack)."
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
    handler: _Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
