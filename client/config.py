"""``babelcap caption`` settings, declared once: each field's description is its ``--help`` text,
and every field can also be set as a ``BABELCAP_<NAME>`` environment variable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from babelcap.core import defaults
from babelcap.core.settings import REPEATABLE, split_list

__all__ = ["CaptionSettings"]


class CaptionSettings(BaseSettings):
    """Everything a caption run can be told."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_", extra="forbid")

    server: Annotated[list[str], NoDecode] = Field(
        [defaults.SERVER_URL],
        description="babelcap (or vLLM) server base URL; repeat to balance across several",
        json_schema_extra=REPEATABLE,
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
        [],
        description="extra prompt files or folders (*.toml); a task there can be named",
        json_schema_extra=REPEATABLE,
    )
    output: str = Field(
        "results.jsonl",
        description="JSONL results file; or a folder or prefix of shards: a URI (s3://bucket/out, "
        "gs://...), a folder, or a name ending in / (--engine ray always writes shards)",
    )
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
        defaults.MAX_PIXELS,
        gt=0,
        description="refuse images with more pixels (decompression bombs)",
    )
    jpeg_quality: int = Field(
        defaults.JPEG_QUALITY, ge=30, le=100, description="quality of JPEGs sent to the model"
    )
    request_timeout_s: float = Field(
        defaults.REQUEST_TIMEOUT_S, gt=0, description="limit for one request"
    )
    max_retries: int = Field(
        defaults.MAX_RETRIES, ge=0, description="retries of 408/409/429/500 and timeouts"
    )
    unavailable_timeout_s: float = Field(
        defaults.UNAVAILABLE_TIMEOUT_S,
        gt=0,
        description="stop the run when no server has answered for this long",
    )
    include_hidden: bool = Field(False, description="also caption hidden files and folders")
    files_from: Path | None = Field(None, description="read more paths from this file, one a line")
    quiet: bool = Field(False, description="no progress output, only the final summary")
    engine: Literal["local", "ray"] = Field(
        "local",
        description="local: this process and its decoding workers; ray: a Ray Data pipeline "
        "(decoding as CPU tasks on every node, requests from async actors; needs babelcap[ray])",
    )
    ray_address: str | None = Field(
        None,
        description="--engine ray: the Ray cluster to join (auto, host:port or ray://host:10001; "
        "default: RAY_ADDRESS, else start a local Ray for this run)",
    )
    ray_cpus: int | None = Field(
        None, ge=1, le=4096,
        description="--engine ray with a local Ray: logical CPUs it gets (default: twice the "
        "cores, at least 4: request actors sleep on the network)",
    )  # fmt: skip
    shard_records: int = Field(
        500, ge=1, le=1_000_000,
        description="sharded output: records per shard (a shard is also written every 30 s)",
    )  # fmt: skip

    @field_validator("server", "tasks", "languages", "translate", "prompts", mode="before")
    @classmethod
    def _comma_lists(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("output", mode="before")
    @classmethod
    def _output(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("server")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give a server URL, e.g. http://127.0.0.1:8000")
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http(s) URL; e.g. http://127.0.0.1:8000")
        return value

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
