"""``babelcap serve`` and ``babelcap translation-server``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["register"]


def _serve(args: argparse.Namespace) -> int:
    from babelcap.server.serve import serve

    return serve(
        profile_name=args.profile,
        config=Path(args.config) if args.config else None,
        host=args.host,
        port=args.port,
        api_key=args.api_key or os.environ.get("BABELCAP_API_KEY"),
        log_dir=Path(args.log_dir),
    )


def _translation_server(args: argparse.Namespace) -> int:
    import uvicorn

    from babelcap.server.translation import TranslationEngine, TranslationSettings
    from babelcap.server.translation.api import create_app
    from babelcap.server.vllm_process import BACKEND_KEEP_ALIVE_S

    engine = TranslationEngine(TranslationSettings(model=Path(args.model)))
    app = create_app(engine, max_body_bytes=args.max_body_bytes)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="info",
        timeout_keep_alive=BACKEND_KEEP_ALIVE_S,
    )  # fmt: skip
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
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
