"""``babelcap translate``: text into FLORES-200 languages, locally or through a server."""

from __future__ import annotations

import argparse
import sys

from babelcap.core.errors import EXIT_OK
from babelcap.core.settings import add_arguments, settings_from_args

__all__ = ["register"]


def _read_text(value: str) -> str:
    return sys.stdin.read() if value == "-" else value


def _translate(args: argparse.Namespace) -> int:
    import json

    from babelcap.client.translate import TranslateSettings

    settings = settings_from_args(args, TranslateSettings)
    text = _read_text(settings.text)
    targets = settings.to
    if settings.model is not None:
        import asyncio

        from babelcap.server.translation import TranslationEngine, TranslationSettings

        model = settings.model

        async def run() -> dict[str, list[str]]:
            engine = TranslationEngine(TranslationSettings(model=model))
            try:
                return (await engine.translate([text], targets, settings.source)).texts
            finally:
                await engine.aclose()

        outputs = asyncio.run(run())
    else:
        from babelcap.client.translate import translate_remote

        key = settings.api_key.get_secret_value() if settings.api_key else None
        outputs = translate_remote(settings.server, [text], targets, settings.source, key)
    if settings.as_json:
        sys.stdout.write(json.dumps({k: v[0] for k, v in outputs.items()}, ensure_ascii=False))
        sys.stdout.write("\n")
    else:
        for target, values in outputs.items():
            sys.stdout.write(f"[{target}]\n{values[0]}\n")
    return EXIT_OK


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
    from babelcap.client.translate import TranslateSettings

    add_arguments(translate, TranslateSettings)
    translate.set_defaults(handler=_translate)
