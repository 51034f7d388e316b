"""``babelcap caption`` settings, declared once: each field's description is its ``--help`` text,
and every field can also be set as a ``BABELCAP_<NAME>`` environment variable."""

from __future__ import annotations

import argparse
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from client.errors import ConfigurationError

__all__ = ["CaptionSettings", "add_arguments", "settings_from_args", "split_list"]


def split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class CaptionSettings(BaseSettings):
    """Everything a caption run can be told."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_", extra="forbid")

    server: Annotated[list[str], NoDecode] = Field(
        ["http://127.0.0.1:8000"],
        description="babelcap (or vLLM) server base URL; repeat to balance across several",
    )
    api_key: SecretStr | None = Field(None, description="server API key")
    tasks: Annotated[list[str], NoDecode] = Field(
        ["description", "tags", "sentiment", "ad"],
        description="comma-separated tasks: the built-in description, tags, sentiment, ad, or "
        "a task from --prompts",
    )
    languages: Annotated[list[str], NoDecode] = Field(
        ["fra_Latn", "spa_Latn", "hin_Deva"],
        description="comma-separated FLORES-200 (or ISO 639) codes to translate into; '' for none",
    )
    translate: Annotated[list[str], NoDecode] = Field(
        ["description"], description="comma-separated tasks whose text is translated"
    )
    prompts: Annotated[list[Path], NoDecode] = Field(
        [], description="extra prompt files or folders (*.toml); a task there can be named"
    )
    output: Path = Field(Path("results.jsonl"), description="JSONL results file")
    resume: bool = Field(
        False, description="keep finished assets of an earlier run with the same settings; redo "
        "failed ones"
    )  # fmt: skip
    overwrite: bool = Field(False, description="start a fresh results file")
    concurrency: int = Field(16, ge=1, le=4096, description="requests in flight, all servers")
    frames: int | None = Field(
        None, ge=1, le=128, description="video frames per clip (default: the video model's)"
    )
    image_model: str | None = Field(None, description="model id for images (default: the server's)")
    video_model: str | None = Field(None, description="model id for videos (default: the server's)")
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="override every prompt's temperature (default 0: greedy)"
    )
    max_tokens: int | None = Field(
        None, ge=1, description="override every prompt's completion token cap"
    )
    media_workers: int = Field(
        max(1, os.cpu_count() or 1), ge=1, description="processes decoding images and videos"
    )
    decode_timeout_s: float = Field(120.0, gt=0, description="hard limit to decode one asset")
    max_pixels: int = Field(
        90_000_000, gt=0, description="refuse images with more pixels (decompression bombs)"
    )
    jpeg_quality: int = Field(90, ge=30, le=100, description="quality of JPEGs sent to the model")
    request_timeout_s: float = Field(600.0, gt=0, description="limit for one request")
    max_retries: int = Field(6, ge=0, description="retries of 408/409/429/500 and timeouts")
    unavailable_timeout_s: float = Field(
        300.0, gt=0, description="stop the run when no server has answered for this long"
    )
    include_hidden: bool = Field(False, description="also caption hidden files and folders")
    files_from: Path | None = Field(None, description="read more paths from this file, one a line")
    quiet: bool = Field(False, description="no progress output, only the final summary")

    @field_validator("server", "tasks", "languages", "translate", "prompts", mode="before")
    @classmethod
    def _comma_lists(cls, value: Any) -> Any:
        return split_list(value)

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change a result (for resume keys); paths and limits excluded."""
        return self.model_dump(
            include={
                "tasks",
                "languages",
                "translate",
                "frames",
                "image_model",
                "video_model",
                "temperature",
                "max_tokens",
                "jpeg_quality",
            }
        )


def _scalar(annotation: Any) -> Any:
    """The element type of ``X | None`` and ``list[X]``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


#: Flags that may be repeated (each may also hold a comma-separated list).
_REPEATED = {"server", "prompts"}

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def add_arguments(
    parser: argparse.ArgumentParser,
    model: type[BaseSettings] = CaptionSettings,
    skip: frozenset[str] = frozenset(),
) -> None:
    """One ``--flag`` per field of ``model``, help from its description; unset flags stay None
    so environment variables and defaults apply."""
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        default = field.default
        shown = ",".join(map(str, default)) if isinstance(default, list | tuple) else default
        if name == "api_key":
            shown = f"${model.model_config.get('env_prefix', '')}API_KEY, else none"
        help_text = field.description or ""
        if shown not in (None, "", False):
            help_text += f" (default: {shown})"
        annotation = _scalar(field.annotation)
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
        if annotation is bool:
            parser.add_argument(flag, action="store_true", default=None, help=field.description)
        elif name in _REPEATED and typing.get_origin(annotation) is list:
            parser.add_argument(flag, action="append", default=None, help=help_text)
        elif typing.get_origin(annotation) is list:
            parser.add_argument(flag, default=None, metavar="A,B", help=help_text)
        else:
            kind = annotation if annotation in (int, float) else str
            parser.add_argument(flag, type=kind, default=None, help=help_text)


def settings_from_args(args: argparse.Namespace, model: type[SettingsT]) -> SettingsT:
    """Settings from parsed flags; flags win over ``BABELCAP_*`` variables, which win over
    defaults."""
    given = {
        name: getattr(args, name)
        for name in model.model_fields
        if getattr(args, name, None) is not None
    }
    for name in _REPEATED & given.keys():
        if isinstance(given[name], list):
            given[name] = [item for value in given[name] for item in split_list(value)]
    try:
        return model(**given)
    except ValidationError as error:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from error
