"""``babelcap translate``: text into FLORES-200 languages, locally or through a server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def _read_text(value: str) -> str:
    return sys.stdin.read() if value == "-" else value


def _translate(args: argparse.Namespace) -> int:
    import json

    text = _read_text(args.text)
    targets = [code.strip() for code in args.to.split(",") if code.strip()]
    if args.model:
        import asyncio

        from babelcap.server.translation import TranslationEngine, TranslationSettings

        async def run() -> dict[str, list[str]]:
            engine = TranslationEngine(TranslationSettings(model=Path(args.model)))
            try:
                return (await engine.translate([text], targets, args.source)).texts
            finally:
                await engine.aclose()

        outputs = asyncio.run(run())
    else:
        from babelcap.client.translate import translate_remote

        outputs = translate_remote(args.server, [text], targets, args.source, args.api_key)
    if args.json:
        sys.stdout.write(json.dumps({k: v[0] for k, v in outputs.items()}, ensure_ascii=False))
        sys.stdout.write("\n")
    else:
        for target, values in outputs.items():
            sys.stdout.write(f"[{target}]\n{values[0]}\n")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
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
