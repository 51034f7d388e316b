"""The settings of ``babelcap serve`` and ``babelcap translation-server``, declared once: each
field's description is its ``--help`` text and each can be set as ``BABELCAP_<FIELD>``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from babelcap.core import defaults
from babelcap.server.profiles import DEFAULT_PROFILE, PROFILE_NAMES

__all__ = ["ServeSettings", "TranslationServerSettings"]


_HOST = "address to bind (loopback: this machine only)"


class ServeSettings(BaseSettings):
    """``babelcap serve``: a profile's models behind one gateway."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_", extra="forbid")

    profile: str | None = Field(
        None,
        description=f"built-in profile (default {DEFAULT_PROFILE}): {', '.join(PROFILE_NAMES)}; "
        "not with --config",
    )
    config: Path | None = Field(None, description="a JSON profile file of your own")
    host: str = Field("127.0.0.1", description=_HOST)
    port: int = Field(8000, ge=0, le=65535, description="port")
    api_key: SecretStr | None = Field(
        None, description="require 'Authorization: Bearer KEY' on every route but /health"
    )
    log_dir: Path = Field(Path("out/logs"), description="where each backend's log goes")
    max_body_bytes: int = Field(
        defaults.CHAT_MAX_BODY_BYTES,
        gt=0,
        description="largest chat request body (media inline); larger ones get 413, counted "
        "while read (chunked bodies too)",
    )
    max_translation_body_bytes: int = Field(
        defaults.TRANSLATION_MAX_BODY_BYTES,
        gt=0,
        description="largest body of the translation routes (/v1/translations, /translate, "
        "/detect, /languages); larger get 413",
    )
    max_translation_chars: int = Field(
        defaults.TRANSLATION_MAX_CHARS,
        gt=0,
        description="most characters of text one translation request may send (413; 400 on "
        "LibreTranslate's routes)",
    )
    max_translation_sentences: int = Field(
        defaults.TRANSLATION_MAX_SENTENCES,
        gt=0,
        description="most sentences x target languages one translation request may ask for "
        "(413; 400 on LibreTranslate's routes)",
    )
    check: bool = Field(
        False,
        description="run the preflight checks (vLLM, GPU, compute capability, memory, "
        "bitsandbytes, cuBLAS, disk, models), print each verdict, and exit without starting "
        "anything: 0 when all pass, 2 otherwise",
    )

    @field_validator("config")
    @classmethod
    def _one_source(cls, config: Path | None, info: ValidationInfo) -> Path | None:
        if config is not None and info.data.get("profile") is not None:
            raise ValueError(
                "give a built-in --profile or a --config file, not both "
                "(BABELCAP_PROFILE and BABELCAP_CONFIG count too)"
            )
        return config


class TranslationServerSettings(BaseSettings):
    """``babelcap translation-server``: the translation API alone."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_", extra="forbid")

    model: Path = Field(description="CTranslate2 NLLB folder (from 'babelcap convert nllb')")
    host: str = Field("127.0.0.1", description=_HOST)
    port: int = Field(8100, ge=0, le=65535, description="port")
    max_body_bytes: int = Field(
        defaults.TRANSLATION_MAX_BODY_BYTES, gt=0, description="larger requests get 413"
    )
    max_translation_chars: int = Field(
        defaults.TRANSLATION_MAX_CHARS,
        gt=0,
        description="most characters of text one translation request may send (413; 400 on "
        "LibreTranslate's routes)",
    )
    max_translation_sentences: int = Field(
        defaults.TRANSLATION_MAX_SENTENCES,
        gt=0,
        description="most sentences x target languages one translation request may ask for "
        "(413; 400 on LibreTranslate's routes)",
    )
