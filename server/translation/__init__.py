"""NLLB-200 translation on CTranslate2: sentence-aware, micro-batched, deterministic."""

from babelcap.server.translation.engine import TranslationEngine, TranslationSettings
from babelcap.server.translation.languages import LanguageCatalog

__all__ = ["LanguageCatalog", "TranslationEngine", "TranslationSettings"]
