"""Cut text into paragraphs and sentences that NLLB can translate one by one, and put it back.

NLLB was trained on single sentences of at most 512 tokens: whole multi-paragraph texts make it
drop sentences and loop. Each text becomes a list of segments; a segment is either translated
(``translate`` is True) or passed through verbatim (whitespace, numbers, emoji, bare URLs), and
the output is the segments' translations joined with the source's own separators.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["Segment", "split_pieces", "split_text", "windows"]

_PARAGRAPH_BREAK = re.compile(r"(\n[ \t]*\n\s*)")
_URL_ONLY = re.compile(r"^(?:https?://|www\.)\S+$", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"(?<=[,;:\uff0c\u3001\uff1b\uff1a])\s*")
#: Where a long sentence may be cut after a token (clause and sentence marks, Latin and CJK).
_MARKS = frozenset(",;:.!?\uff0c\u3001\uff1b\uff1a\u3002\uff01\uff1f")


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


def windows(text: str, size: int) -> list[str]:
    """``text`` in consecutive parts of at most ``size`` characters that join back to it
    exactly: each cut after the last clause break in the part's second half, else before its
    last whitespace, else (a script without spaces, a run of letters) at ``size``.

    Tokenizing a 1 MB run in one call holds the GIL for a quarter of a second; parts of a few
    thousand characters keep every call short, so the event loop is never starved."""
    parts: list[str] = []
    start = 0
    while len(text) - start > size:
        window = text[start : start + size]
        cut = 0
        for match in _CLAUSE_BREAK.finditer(window, size // 2):
            cut = match.end()
        if not cut:
            space = max(window.rfind(" "), window.rfind("\n"), window.rfind("\t"))
            cut = space if space > 0 else size
        parts.append(text[start : start + cut])
        start += cut
    parts.append(text[start:])
    return parts


def split_pieces(pieces: list[str], limit: int) -> list[list[str]]:
    """Split one sentence's tokens into runs of at most ``limit`` tokens, losing none: each cut
    after the last clause or sentence mark in the run's second half, else before its last
    word start, else at ``limit`` (Chinese, Japanese, Thai and a long run of letters have no
    word starts)."""
    chunks: list[list[str]] = []
    start = 0
    while len(pieces) - start > limit:
        end = start + limit
        low = start + limit // 2
        cut = next((i for i in range(end, low, -1) if pieces[i - 1][-1:] in _MARKS), 0)
        if not cut:
            cut = next((i for i in range(end, low, -1) if pieces[i].startswith("\u2581")), end)
        chunks.append(pieces[start:cut])
        start = cut
    chunks.append(pieces[start:])
    return chunks
