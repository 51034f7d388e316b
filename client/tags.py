"""Turn a model's tag answer into a clean list: sorted, deduplicated, normalized."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["parse_tags"]

_LEAD = re.compile(r"^\s*(?:[-*•·–—>]+|\(?\d{1,3}[.):]|\(?[a-z][.)](?=\s)|#)\s*", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:tags?|keywords?)\s*:\s*", re.IGNORECASE)
_QUOTES = "\"'`“”‘’«»"


def _clean(item: str) -> str:
    item = unicodedata.normalize("NFKC", item)
    item = _LABEL.sub("", item)
    while True:
        stripped = _LEAD.sub("", item)
        if stripped == item:
            break
        item = stripped
    item = item.strip().strip(_QUOTES).strip()
    item = item.rstrip(".;:!").strip().strip(_QUOTES).strip()
    item = item.replace("**", "").replace("__", "")
    return " ".join(item.split()).casefold()


def parse_tags(text: str, *, max_words: int = 6) -> list[str]:
    """Tags from commas, semicolons or lines, with numbering, bullets, quotes, a leading
    "Tags:" and trailing periods removed; lower-cased, whitespace collapsed, duplicates dropped,
    sorted. Items longer than ``max_words`` words (sentences, not tags) are left out."""
    items = re.split(r"[,;\n]|\s#(?=\w)", text)
    tags = {_clean(item) for item in items}
    return sorted(tag for tag in tags if tag and len(tag.split()) <= max_words)
