"""``babelcap demo``: the main job on the embedded default, end to end, in one command.

Starts ``babelcap serve --profile tiny-cpu`` (real vLLM CPU processes for the tiny Mllama and
LLaVA-NeXT-Video stand-ins, the tiny NLLB on CTranslate2, the gateway) on a free loopback port,
runs ``babelcap caption`` over the given media (default: the bundled examples), prints each
asset's description and translations, and stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

from client.config import CaptionSettings
from client.local_server import local_server

__all__ = ["run_demo"]

log = logging.getLogger(__name__)


def run_demo(
    media: list[Path], output: Path, languages: list[str], startup_timeout: float = 600.0
) -> int:
    """Serve the tiny models, caption ``media`` into ``output``; returns the exit code."""
    from client.progress import render_summary
    from client.runner import caption, write_summary
    from client.store import read_records

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
