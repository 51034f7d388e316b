"""NLLB-200 translation on CTranslate2: sentence-aware, micro-batched, deterministic."""

from server.translation.engine import TranslationEngine, TranslationSettings
from server.translation.languages import LanguageCatalog

__all__ = ["LanguageCatalog", "TranslationEngine", "TranslationSettings"]
