"""A thin wrapper over CTranslate2's own Hugging Face converter.

CTranslate2 4.8 passes ``dtype=`` to ``from_pretrained``; transformers before 4.56 (the 4.53 that
the CPU vLLM stack pins) only knows ``torch_dtype=``. The subclass renames that one argument and
changes nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ctranslate2

__all__ = ["QUANTIZATIONS", "convert_transformers"]

#: Weight types CTranslate2 can write (its converter's own list).
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                 "bfloat16", "float32")  # fmt: skip


class _Converter(ctranslate2.converters.TransformersConverter):  # type: ignore[misc]
    def load_model(self, model_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
        import transformers

        major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
        if (major, minor) < (4, 56) and "dtype" in kwargs:
            kwargs["torch_dtype"] = kwargs.pop("dtype")
        return model_class.from_pretrained(model_name_or_path, **kwargs)


def convert_transformers(
    model: str | Path,
    output: Path,
    *,
    quantization: str = "int8",
    copy_files: list[str] | None = None,
    force: bool = False,
) -> Path:
    """Convert a Hugging Face model (hub id or folder) to a CTranslate2 folder at ``output``."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}"
        )
    converter = _Converter(str(model), copy_files=copy_files or [])
    return Path(converter.convert(str(output), quantization=quantization, force=force))
