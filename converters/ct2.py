"""CTranslate2's Hugging Face converter, as babelcap wraps it.

The wrapper lives in the server (:mod:`babelcap.server.translation.convert`), which converts a
profile's NLLB on first use; this module keeps the converters' import path.
"""

from __future__ import annotations

from babelcap.server.translation.convert import QUANTIZATIONS, convert_transformers

__all__ = ["QUANTIZATIONS", "convert_transformers"]
