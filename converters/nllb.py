"""``babelcap convert nllb``: a Hugging Face NLLB-200 model -> a CTranslate2 folder babelcap serves.

The conversion itself (CTranslate2's own converter, the sentencepiece model beside the weights,
a manifest, and a probe sentence the converted model must translate before the conversion is
reported as done) is the server's, :func:`babelcap.server.translation.convert.convert_nllb`,
because ``babelcap serve`` converts a profile's NLLB on first use too. This module is the
command's settings.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from babelcap.server.translation.convert import MANIFEST, convert_nllb

__all__ = ["MANIFEST", "ConvertNllbSettings", "convert_nllb"]


class ConvertNllbSettings(BaseSettings):
    """``babelcap convert nllb`` (also as ``BABELCAP_CONVERT_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="BABELCAP_CONVERT_", extra="forbid")

    model: str = Field(
        description="hub id (from the Hugging Face cache, see 'babelcap models pull') or "
        "folder, e.g. facebook/nllb-200-distilled-600M"
    )
    output: Path = Field(description="folder to write (must be empty)")
    quantization: str = Field(
        "int8", description="int8 (CPU), int8_float16 or float16 (GPU), float32, ..."
    )
    force: bool = Field(False, description="replace a non-empty --output")
