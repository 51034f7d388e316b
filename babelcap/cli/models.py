"""``babelcap convert nllb`` and ``babelcap tiny build|check``: the models babelcap runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def _convert_nllb(args: argparse.Namespace) -> int:
    from babelcap.converters.nllb import convert_nllb

    manifest = convert_nllb(
        args.model, Path(args.output), quantization=args.quantization, force=args.force
    )
    probe = manifest["probe"]
    sys.stdout.write(
        f"converted {args.model} -> {args.output} ({args.quantization}); "
        f"probe: {probe['eng_Latn']!r} -> {probe['fra_Latn']!r}\n"
    )
    return 0


def _tiny_build(args: argparse.Namespace) -> int:
    from babelcap.converters.tiny.build import build_models

    return build_models(args.only, output=Path(args.output) if args.output else None)


def _tiny_check(args: argparse.Namespace) -> int:
    from babelcap.converters.tiny.build import check_models

    return check_models(args.only)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
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
