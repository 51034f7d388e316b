"""What one translation request may ask for, and the errors that say so.

The body limit (``server/asgi.py``) bounds bytes; these bound the work: characters (segmenting
costs CPU in proportion) and sentences x target languages (each is one decode on the model).
A request over either is refused before any of it is translated.
"""

from __future__ import annotations

from dataclasses import dataclass

from babelcap.core import defaults
from babelcap.core.errors import TranslationError

__all__ = [
    "EmptyTranslationError",
    "EngineFailure",
    "LimitExceededError",
    "TranslationLimits",
    "check_texts",
]


@dataclass(frozen=True)
class TranslationLimits:
    """Per-request bounds; ``babelcap serve`` and ``translation-server`` set them from
    ``--max-translation-chars`` and ``--max-translation-sentences``."""

    max_chars: int = defaults.TRANSLATION_MAX_CHARS
    max_sentences: int = defaults.TRANSLATION_MAX_SENTENCES


class LimitExceededError(TranslationError):
    """A request over one of :class:`TranslationLimits` (HTTP 413, or 400 on LibreTranslate's
    routes, as LibreTranslate answers its own character limit)."""

    def __init__(self, what: str, size: int, limit: int, flag: str, advice: str) -> None:
        super().__init__(
            f"this request has {size} {what}, over the server's limit of {limit}: {advice}, "
            f"or start the server with a higher {flag}"
        )
        self.code = f"too_many_{what.split()[0]}"
        self.size = size
        self.limit = limit


class EmptyTranslationError(TranslationError):
    """The model returned nothing for a sentence that has words: never answered as "" (422)."""

    def __init__(self, target: str, text_index: int, source_text: str) -> None:
        shown = source_text if len(source_text) <= 80 else source_text[:77] + "..."
        super().__init__(
            f"the model returned an empty translation into {target} for text {text_index} "
            f"({shown!r}); the text was not translated. This is the model failing, not your "
            "request being refused: report it with the request id"
        )


class EngineFailure(TranslationError):
    """CTranslate2 itself failed on a batch (500)."""


def check_texts(texts: list[str], limits: TranslationLimits) -> None:
    """Refuse texts over the character limit, or holding a lone surrogate (not Unicode text:
    it cannot be tokenized), naming the text."""
    total = sum(len(text) for text in texts)
    if total > limits.max_chars:
        raise LimitExceededError(
            "characters", total, limits.max_chars, "--max-translation-chars",
            "send the text in several requests",
        )  # fmt: skip
    for index, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise TranslationError(
                f"text {index} holds a lone surrogate at character {error.start} "
                "(not valid Unicode): send UTF-8 text"
            ) from None
