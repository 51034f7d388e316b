"""``babelcap demo``: the main job on the embedded default, end to end, in one command.

Starts ``babelcap serve --profile tiny-cpu`` (real vLLM CPU processes for the tiny Mllama and
LLaVA-NeXT-Video stand-ins, the tiny NLLB on CTranslate2, the gateway) on a free loopback port,
runs ``babelcap caption`` over the given media (default: the bundled examples), prints each
asset's description and translations, and stops the server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from babelcap.client.config import CaptionSettings
from babelcap.server.launch import local_server

__all__ = ["register", "run_demo"]

log = logging.getLogger(__name__)

#: The bundled example media (inside the installed package).
EXAMPLES = Path(__file__).resolve().parent.parent / "client" / "examples"


def run_demo(
    media: list[Path], output: Path, languages: list[str], startup_timeout: float = 600.0
) -> int:
    """Serve the tiny models, caption ``media`` into ``output``; returns the exit code."""
    from babelcap.client.progress import render_summary
    from babelcap.client.runner import caption, write_summary
    from babelcap.client.store import read_records

    missing = [str(m) for m in media if not m.exists()]
    if missing:
        log.error("not found: %s", ", ".join(missing))
        return 2
    started = time.perf_counter()
    with local_server(output.parent / "logs", timeout=startup_timeout) as served:
        log.info("babelcap serve (tiny-cpu) ready in %.1f s", time.perf_counter() - started)
        settings = CaptionSettings(
            server=[served.base], languages=languages, output=output, overwrite=True, quiet=True
        )
        summary, code = asyncio.run(caption(settings, [str(m) for m in media]))
    write_summary(summary, output)
    for record in sorted(read_records(output), key=lambda r: r["path"]):
        name = Path(record["path"]).name
        if record["status"] != "ok":
            sys.stdout.write(
                f"{record['kind'] or '?':5} {name}: ERROR {record['error']['message']}\n"
            )
            continue
        tasks = record["tasks"]
        sys.stdout.write(f"{record['kind']:5} {name}: {tasks['description']['text']}\n")
        if "tags" in tasks:
            sys.stdout.write(f"      tags: {', '.join(tasks['tags']['tags'])}\n")
        for language, texts in record["translations"].items():
            sys.stdout.write(f"      {language}: {texts['description']}\n")
    sys.stdout.write(render_summary(summary))
    return code


def _demo(args: argparse.Namespace) -> int:
    return run_demo(
        media=[Path(p) for p in args.media],
        output=Path(args.output),
        languages=[code.strip() for code in args.languages.split(",") if code.strip()],
        startup_timeout=args.startup_timeout,
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's subcommands."""
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
        default=[str(EXAMPLES)],
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
