"""``babelcap convert nllb`` and ``babelcap tiny build|check``: the models babelcap runs."""

from __future__ import annotations

import argparse
import sys

from babelcap.core.errors import EXIT_OK
from babelcap.core.settings import add_arguments, settings_from_args

__all__ = ["register"]


def _convert_nllb(args: argparse.Namespace) -> int:
    from babelcap.converters.nllb import ConvertNllbSettings, convert_nllb

    settings = settings_from_args(args, ConvertNllbSettings)
    manifest = convert_nllb(
        settings.model, settings.output, quantization=settings.quantization, force=settings.force
    )
    probe = manifest["probe"]
    sys.stdout.write(
        f"converted {settings.model} -> {settings.output} ({settings.quantization}); "
        f"probe: {probe['eng_Latn']!r} -> {probe['fra_Latn']!r}\n"
    )
    return EXIT_OK


def _tiny_build(args: argparse.Namespace) -> int:
    from babelcap.converters.tiny.build import TinySettings, build_models

    settings = settings_from_args(args, TinySettings)
    return build_models(settings.only, output=settings.output)


def _tiny_check(args: argparse.Namespace) -> int:
    from babelcap.converters.tiny.build import TinySettings, check_models

    return check_models(settings_from_args(args, TinySettings).only)


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
    from babelcap.converters.nllb import ConvertNllbSettings

    add_arguments(nllb, ConvertNllbSettings)
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
    from babelcap.converters.tiny.build import TinySettings

    build = tiny_commands.add_parser("build", help="retrain and save the tiny models")
    add_arguments(build, TinySettings)
    build.set_defaults(handler=_tiny_build)
    check = tiny_commands.add_parser("check", help="verify the committed tiny models")
    add_arguments(check, TinySettings, skip=frozenset({"output"}))
    check.set_defaults(handler=_tiny_check)
