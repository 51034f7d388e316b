"""Cut text into paragraphs and sentences that NLLB can translate one by one, and put it back.

NLLB was trained on single sentences of at most 512 tokens: whole multi-paragraph texts make it
drop sentences and loop. Each text becomes a list of segments; a segment is either translated
(``translate`` is True) or passed through verbatim (whitespace, numbers, emoji, bare URLs), and
the output is the segments' translations joined with the source's own separators.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Segment", "split_long", "split_text"]

_PARAGRAPH_BREAK = re.compile(r"(\n[ \t]*\n\s*)")
_URL_ONLY = re.compile(r"^(?:https?://|www\.)\S+$", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+")


@dataclass(frozen=True)
class Segment:
    """One piece of a source text: its core text, the whitespace after it, and whether to
    translate it."""

    text: str
    trailing: str
    translate: bool


def _needs_translation(text: str) -> bool:
    return any(ch.isalpha() for ch in text) and not _URL_ONLY.match(text)


@functools.lru_cache(maxsize=256)
def _sentencex_language(flores_code: str) -> str:
    """sentencex wants ISO 639-1 where one exists (``en``), else the 639-3 code."""
    import langcodes

    try:
        return str(langcodes.Language.get(flores_code[:3]).language or "en")
    except (LookupError, ValueError):
        return "en"


def split_text(text: str, source: str) -> list[Segment]:
    """Segments of ``text`` (paragraphs, then sentences) in order; joining
    ``segment.text + segment.trailing`` for all of them gives ``text`` back exactly."""
    import sentencex

    segments: list[Segment] = []
    leading = text[: len(text) - len(text.lstrip())]
    if leading:
        segments.append(Segment("", leading, False))
    parts = _PARAGRAPH_BREAK.split(text[len(leading) :])
    language = _sentencex_language(source)
    for index in range(0, len(parts), 2):
        paragraph = parts[index]
        separator = parts[index + 1] if index + 1 < len(parts) else ""
        sentences = [s for s in sentencex.segment(language, paragraph) if s]
        if "".join(sentences) != paragraph:  # never lose a character to the splitter
            sentences = [paragraph]
        for position, sentence in enumerate(sentences):
            core = sentence.rstrip()
            trailing = sentence[len(core) :]
            if position == len(sentences) - 1:
                trailing += separator
            segments.append(Segment(core, trailing, _needs_translation(core)))
        if not sentences and separator:
            segments.append(Segment("", separator, False))
    return segments


def split_long(text: str, length: Callable[[str], int], limit: int) -> list[str]:
    """Split ``text`` so each part measures at most ``limit`` by ``length`` (token count):
    at clause breaks first, then between words, never dropping a character but spaces."""
    if length(text) <= limit:
        return [text]
    parts: list[str] = []
    for unit in _CLAUSE_BREAK.split(text):
        if parts and length(parts[-1] + " " + unit) <= limit:
            parts[-1] += " " + unit
        elif length(unit) <= limit:
            parts.append(unit)
        else:
            for word in unit.split():
                if parts and length(parts[-1] + " " + word) <= limit:
                    parts[-1] += " " + word
                else:
                    parts.append(word)
    return parts
