"""Prompts as validated data: one TOML file per task, with an image and/or a video variant.

The built-in tasks live in ``prompts/builtin/`` (description, tags, sentiment, ad). Users add
their own files (same shape) and name them as tasks. A file is rejected, with the file and the
field named, for unknown keys, a missing variant, an unknown ``{variable}``, or a model-specific
special token: the server applies the model's chat template, so prompts stay model-agnostic.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from babelcap.core.errors import ConfigurationError

__all__ = ["BUILTIN", "VARIABLES", "PromptVariant", "TaskPrompt", "load_prompts"]

#: Where the built-in prompt files are.
BUILTIN = Path(__file__).resolve().parent / "builtin"

#: The variables a prompt may use, and what they are.
VARIABLES = {
    "frames": "number of video frames sent",
    "duration": "video duration in seconds (a float)",
    "width": "media width in pixels",
    "height": "media height in pixels",
}

# Chat-template and media tokens of the models babelcap serves (and of their families).
_SPECIAL = re.compile(
    r"<\|[a-z_]+\|>|<image>|<video>|\[INST\]|\[/INST\]|</?s>|USER:|ASSISTANT:", re.IGNORECASE
)
_TASK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


class PromptVariant(BaseModel):
    """The prompt for one media kind."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="the user message, after the media")
    system: str | None = Field(None, description="an optional system message")

    @field_validator("text", "system")
    @classmethod
    def _portable(cls, value: str | None) -> str | None:
        if value is None:
            return value
        special = _SPECIAL.search(value)
        if special:
            raise ValueError(
                f"contains the model-specific token {special.group()!r}; write plain text: "
                "the server applies the model's chat template and places the media"
            )
        unknown = sorted(
            {name for _, name, _, _ in string.Formatter().parse(value) if name} - VARIABLES.keys()
        )
        if unknown:
            raise ValueError(
                f"unknown variable(s) {', '.join(unknown)}; use {', '.join(VARIABLES)} "
                "(write {{ and }} for literal braces)"
            )
        return value


class TaskPrompt(BaseModel):
    """One task: how to ask for it and what its answer is."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="the task name used by --tasks and in results")
    summary: str = Field("", description="one line shown by --help and in docs")
    output: Literal["text", "tags"] = Field(
        "text", description="text: kept whole; tags: parsed into a sorted, deduplicated list"
    )
    max_tokens: int = Field(512, gt=0, le=8192, description="completion token cap")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy, reproducible")
    image: PromptVariant | None = None
    video: PromptVariant | None = None
    source: Path | None = Field(None, exclude=True, description="the file it came from")

    @field_validator("task")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _TASK_NAME.match(value):
            raise ValueError("use lower-case letters, digits, - and _ (at most 40), e.g. 'logo'")
        return value

    @model_validator(mode="after")
    def _has_variant(self) -> TaskPrompt:
        if self.image is None and self.video is None:
            raise ValueError("give an [image] and/or a [video] section")
        return self

    def variant(self, kind: str) -> PromptVariant | None:
        """The prompt for ``image`` or ``video``, or None when the task does not apply."""
        return self.image if kind == "image" else self.video

    def messages(
        self, kind: str, media_part: dict[str, Any], variables: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """OpenAI chat messages: the media part first (so vLLM can reuse the media prefix
        across tasks), then the rendered text."""
        variant = self.variant(kind)
        if variant is None:
            raise ConfigurationError(f"task {self.task!r} has no {kind} prompt")
        values = {name: variables.get(name, 0) for name in VARIABLES}
        messages: list[dict[str, Any]] = []
        if variant.system:
            messages.append({"role": "system", "content": variant.system.format(**values)})
        text = variant.text.format(**values)
        messages.append({"role": "user", "content": [media_part, {"type": "text", "text": text}]})
        return messages

    def fingerprint(self) -> dict[str, Any]:
        """What changes the answers (for resume keys)."""
        return self.model_dump(exclude={"summary"})


def _load_file(path: Path) -> TaskPrompt:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigurationError(f"prompt file {path}: cannot read it: {error}") from error
    try:
        return TaskPrompt.model_validate({**data, "source": path})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in error.errors()
        )
        raise ConfigurationError(f"prompt file {path} is invalid: {problems}") from error


def _files(location: Path) -> list[Path]:
    if location.is_dir():
        return sorted(location.glob("*.toml"))
    if location.is_file():
        return [location]
    raise ConfigurationError(f"prompt file or folder {location} does not exist")


def load_prompts(extra: Iterable[Path] = ()) -> dict[str, TaskPrompt]:
    """The built-in tasks plus the user's prompt files or folders (``*.toml``), by task name.

    A user file with a built-in task's name replaces it; two user files naming one task clash.
    """
    prompts = {p.task: p for p in map(_load_file, _files(BUILTIN))}
    seen: dict[str, Path] = {}
    for location in extra:
        for path in _files(location):
            prompt = _load_file(path)
            if prompt.task in seen:
                raise ConfigurationError(
                    f"task {prompt.task!r} is defined by both {seen[prompt.task]} and {path}"
                )
            seen[prompt.task] = path
            prompts[prompt.task] = prompt
    return prompts
