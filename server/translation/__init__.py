"""NLLB-200 translation on CTranslate2: sentence-aware, micro-batched, deterministic, bounded."""

from babelcap.server.translation.detect import LanguageDetector
from babelcap.server.translation.engine import TranslationEngine, TranslationSettings
from babelcap.server.translation.languages import LanguageCatalog
from babelcap.server.translation.limits import TranslationLimits

__all__ = [
    "LanguageCatalog",
    "LanguageDetector",
    "TranslationEngine",
    "TranslationLimits",
    "TranslationSettings",
]
