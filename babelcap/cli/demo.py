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
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from babelcap.core.errors import ConfigurationError
from babelcap.core.settings import POSITIONAL, add_arguments, settings_from_args, split_list

__all__ = ["DemoSettings", "register", "run_demo"]

log = logging.getLogger(__name__)

#: The bundled example media (inside the installed package).
EXAMPLES = Path(__file__).resolve().parent.parent / "client" / "examples"


class DemoSettings(BaseSettings):
    """``babelcap demo`` (also as ``BABELCAP_DEMO_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_DEMO_", extra="forbid")

    media: list[Path] = Field(
        [], description="image/video files or folders (default: the bundled examples)",
        json_schema_extra=POSITIONAL,
    )  # fmt: skip
    output: Path = Field(Path("out/demo.jsonl"), description="JSONL file to write")
    languages: Annotated[list[str], NoDecode] = Field(
        ["fra_Latn", "spa_Latn"],
        description="comma-separated FLORES-200 codes to translate captions into",
    )
    startup_timeout: float = Field(
        600.0, gt=0, description="seconds to wait for each vLLM server's /health"
    )

    @field_validator("languages", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        return split_list(value)


def run_demo(settings: DemoSettings) -> int:
    """Serve the tiny models, caption the media into ``settings.output``; returns the exit
    code."""
    from babelcap.client.config import CaptionSettings
    from babelcap.client.progress import render_summary
    from babelcap.client.runner import caption
    from babelcap.client.store import read_records
    from babelcap.server.launch import local_server

    media = settings.media or [EXAMPLES]
    output = settings.output
    missing = [str(m) for m in media if not m.exists()]
    if missing:
        raise ConfigurationError(
            f"not found: {', '.join(missing)}; give image or video files or folders that exist"
        )
    started = time.perf_counter()
    with local_server(output.parent / "logs", timeout=settings.startup_timeout) as served:
        log.info("babelcap serve (tiny-cpu) ready in %.1f s", time.perf_counter() - started)
        caption_settings = CaptionSettings(
            server=[served.base], languages=settings.languages, output=output, overwrite=True,
            quiet=True,
        )  # fmt: skip
        summary, code = asyncio.run(caption(caption_settings, [str(m) for m in media]))
    for record in sorted(read_records(output), key=lambda r: r.path):
        name = Path(record.path).name
        if record.error is not None:
            sys.stdout.write(f"{record.kind or '?':5} {name}: ERROR {record.error.message}\n")
            continue
        tasks = record.tasks
        sys.stdout.write(f"{record.kind:5} {name}: {tasks['description'].text}\n")
        if "tags" in tasks:
            sys.stdout.write(f"      tags: {', '.join(tasks['tags'].tags or [])}\n")
        for language, texts in record.translations.items():
            sys.stdout.write(f"      {language}: {texts['description']}\n")
    sys.stdout.write(render_summary(summary))
    return code


def _demo(args: argparse.Namespace) -> int:
    return run_demo(settings_from_args(args, DemoSettings))


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
    add_arguments(demo, DemoSettings)
    demo.set_defaults(handler=_demo)
