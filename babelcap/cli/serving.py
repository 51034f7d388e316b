"""``babelcap serve`` and ``babelcap translation-server``."""

from __future__ import annotations

import argparse

from babelcap.core.settings import add_arguments, settings_from_args

__all__ = ["register"]


def _serve(args: argparse.Namespace) -> int:
    from babelcap.server.serve import serve
    from babelcap.server.settings import ServeSettings

    return serve(settings_from_args(args, ServeSettings))


def _translation_server(args: argparse.Namespace) -> int:
    from babelcap.server.http_server import run
    from babelcap.server.settings import TranslationServerSettings
    from babelcap.server.translation import (
        LanguageDetector,
        TranslationEngine,
        TranslationLimits,
        TranslationSettings,
    )
    from babelcap.server.translation.api import create_app

    settings = settings_from_args(args, TranslationServerSettings)
    engine = TranslationEngine(TranslationSettings(model=settings.model))
    limits = TranslationLimits(
        max_chars=settings.max_translation_chars,
        max_sentences=settings.max_translation_sentences,
    )
    detector = LanguageDetector(engine.languages)
    detector.load()
    app = create_app(
        engine, max_body_bytes=settings.max_body_bytes, limits=limits, detector=detector
    )
    run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
    from babelcap.server.settings import ServeSettings, TranslationServerSettings

    serve = commands.add_parser(
        "serve",
        help="serve images, videos and translations behind one OpenAI-compatible URL",
        description=(
            "Start one vLLM process per vision model of a profile (CPU or GPU build), wait for "
            "each to be healthy, host the NLLB translator, and serve them all behind one "
            "gateway: /v1/models, /v1/chat/completions (streaming too), /v1/translations, "
            "/translate, /languages, /health and /metrics. Ctrl-C stops every process. Every "
            "flag can also be set as BABELCAP_<FLAG> (e.g. BABELCAP_API_KEY)."
        ),
    )
    add_arguments(serve, ServeSettings)
    serve.set_defaults(handler=_serve)

    server = commands.add_parser(
        "translation-server",
        help="serve only the translation API ('babelcap serve' hosts it too)",
        description=(
            "Serve POST /v1/translations, LibreTranslate's POST /translate and GET /languages, "
            "and GET /health for one CTranslate2 NLLB model. Every flag can also be set as "
            "BABELCAP_<FLAG>."
        ),
    )
    add_arguments(server, TranslationServerSettings)
    server.set_defaults(handler=_translation_server)
