"""``babelcap models pull``, ``babelcap convert nllb`` and ``babelcap tiny build|check``: the
models babelcap runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from babelcap.core.errors import EXIT_OK
from babelcap.core.settings import POSITIONAL, add_arguments, settings_from_args

__all__ = ["PullSettings", "register"]


class PullSettings(BaseSettings):
    """``babelcap models pull`` (also as ``BABELCAP_PULL_<NAME>``). The hub token is read from
    ``HF_TOKEN`` (or ``hf auth login``), never from a flag."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_PULL_", extra="forbid")

    profile: str = Field(
        description="built-in profile name, or a JSON profile file, whose models to download",
        json_schema_extra=POSITIONAL,
    )
    dry_run: bool = Field(
        False, description="list what would be downloaded and how big; download nothing"
    )
    no_convert: bool = Field(
        False,
        description="do not convert the translator to CTranslate2 now (serve does on first use)",
    )


def _size(count: int | None) -> str:
    if count is None:
        return "size unknown"
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.1f} MiB"


def _pull(args: argparse.Namespace) -> int:
    from babelcap.server.hub import hub_cache_dir
    from babelcap.server.profiles import load_profile
    from babelcap.server.pull import pull

    settings = settings_from_args(args, PullSettings)
    as_file = Path(settings.profile).expanduser()
    if as_file.suffix == ".json" or as_file.is_file():
        profile = load_profile(config=as_file)
    else:
        profile = load_profile(settings.profile)
    refs = [str(served.backend.model) for served in profile.models]
    translation = str(profile.translation.model) if profile.translation else None
    if translation is not None:
        refs.append(translation)
    refs = list(dict.fromkeys(refs))
    sys.stdout.write(f"profile {profile.name}: {len(refs)} models, cache {hub_cache_dir()}\n")
    results = pull(refs, dry_run=settings.dry_run, profile=settings.profile)
    for result in results:
        if result.status == "local":
            detail = "a folder: nothing to fetch"
        elif result.total_bytes is None:
            detail = f"{result.revision} at {result.path}"
        else:
            detail = (
                f"{len(result.files)} files, {_size(result.total_bytes)} "
                f"({_size(result.missing_bytes)} to fetch), revision {result.revision}"
            )
        sys.stdout.write(f"{result.status:>14}  {result.ref}  {detail}\n")
    if translation is not None and profile.translation is not None and not settings.dry_run:
        if settings.no_convert:
            return EXIT_OK
        from babelcap.server.translation.convert import nllb_ct2_folder

        folder = nllb_ct2_folder(
            translation, profile.translation.compute_type, profile=settings.profile
        )
        sys.stdout.write(f"{'translator':>14}  {translation}  CTranslate2 folder {folder}\n")
    return EXIT_OK


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
    models = commands.add_parser(
        "models",
        help="download the models a profile serves",
        description="Fetch the models babelcap serves into the standard Hugging Face cache.",
    )
    models_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    pull = models_commands.add_parser(
        "pull",
        help="download every model of a profile",
        description=(
            "Download every hub model of a profile (a built-in name or a JSON file) into the "
            "Hugging Face cache (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)"
            ": configs, safetensors weights, tokenizers and chat templates only. Resumes an "
            "interrupted download, checks the disk has room first, and converts the translator "
            "to CTranslate2 into babelcap's cache (BABELCAP_CACHE, else ~/.cache/babelcap). "
            "Gated models (Llama 3.2) need their licence accepted on huggingface.co and an "
            "access token in HF_TOKEN. With HF_HUB_OFFLINE=1 it checks the cache only."
        ),
    )
    add_arguments(pull, PullSettings)
    pull.set_defaults(handler=_pull)

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
