"""Language identification for LibreTranslate's ``/detect`` and ``source: "auto"``.

py3langid (a maintained fork of langid.py: a naive Bayes model over byte n-grams, shipped inside
its 4.6 MB wheel, numpy only, no download at run time) restricted to the languages the
translation model has, so a detected language can always be translated. The model loads once
(about 0.8 s), in a worker thread; classifying reads at most the first ``_MAX_CHARS`` characters.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from babelcap.server.translation.languages import LanguageCatalog, UnknownLanguageError

__all__ = ["Detection", "LanguageDetector"]

#: Identification needs a paragraph, not a book: longer texts are judged on their start.
_MAX_CHARS = 10_000
#: What LibreTranslate answers for text with nothing to identify (no letters).
_NOTHING = "eng_Latn"


@dataclass(frozen=True)
class Detection:
    """One candidate: a FLORES-200 code and a confidence from 0 to 100 (LibreTranslate's
    scale)."""

    language: str
    confidence: float


class LanguageDetector:
    """Detects which of ``catalog``'s languages a text is written in."""

    def __init__(self, catalog: LanguageCatalog) -> None:
        self.catalog = catalog
        self._identifier: Any = None
        self._labels: dict[str, str] = {}  # py3langid label -> FLORES-200 code
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model now (else the first detection does, in a worker thread)."""
        with self._lock:
            if self._identifier is not None:
                return
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            labels = {}
            for label in identifier.labels:
                try:
                    labels[label] = self.catalog.resolve(label)
                except UnknownLanguageError:
                    continue  # a language the translation model does not have
            identifier.set_languages(sorted(labels))
            self.catalog.public_code(_NOTHING)  # builds the code table here, off the event loop
            self._labels = labels
            self._identifier = identifier

    def detect_sync(self, text: str, count: int = 3) -> list[Detection]:
        """The ``count`` likeliest languages of ``text``, best first (blocking)."""
        if not any(ch.isalpha() for ch in text[:_MAX_CHARS]):
            return [Detection(_NOTHING, 0.0)]
        self.load()
        best: dict[str, float] = {}
        for label, probability in self._identifier.rank(text[:_MAX_CHARS]):
            code = self._labels[label]
            best[code] = best.get(code, 0.0) + float(probability)  # aliases share a code
        ranked = sorted(best.items(), key=lambda item: item[1], reverse=True)[:count]
        found = [Detection(code, round(100 * p, 1)) for code, p in ranked]
        return [d for d in found if d.confidence > 0] or [Detection(_NOTHING, 0.0)]

    async def detect(self, text: str, count: int = 3) -> list[Detection]:
        """:meth:`detect_sync` in a worker thread."""
        return await asyncio.to_thread(self.detect_sync, text, count)
