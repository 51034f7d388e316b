"""Language codes: the model's own FLORES-200 codes, and the ISO 639 codes that map onto them."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

from babelcap.core.errors import TranslationError

__all__ = ["FLORES_CODE", "LanguageCatalog", "UnknownLanguageError"]

#: A FLORES-200 code: ISO 639-3 language, underscore, ISO 15924 script (``fra_Latn``).
FLORES_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")


class UnknownLanguageError(TranslationError):
    """A language code the model does not know; carries the closest valid codes."""

    def __init__(self, code: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"unknown language code {code!r}: use a FLORES-200 code such as fra_Latn, "
            f"or an ISO 639 code that names exactly one{hint}"
        )
        self.code = code
        self.suggestions = suggestions


class LanguageCatalog:
    """The FLORES-200 codes a converted NLLB model carries, with lookup by ISO 639 code."""

    def __init__(self, codes: list[str]) -> None:
        self.codes = sorted(codes)
        self._known = set(codes)
        self._by_iso3: dict[str, list[str]] = {}
        for code in self.codes:
            self._by_iso3.setdefault(code[:3], []).append(code)

    @classmethod
    def from_model(cls, model_dir: Path) -> LanguageCatalog:
        """Read the codes from a CTranslate2 model's vocabulary (``shared_vocabulary.json``)."""
        vocabulary_file = model_dir / "shared_vocabulary.json"
        if not vocabulary_file.exists():
            raise TranslationError(
                f"{model_dir} has no shared_vocabulary.json: is it a CTranslate2 NLLB model? "
                "Convert one with 'babelcap convert nllb'"
            )
        tokens = json.loads(vocabulary_file.read_text(encoding="utf-8"))
        codes = [token for token in tokens if FLORES_CODE.match(token)]
        if not codes:
            raise TranslationError(f"{model_dir}: the vocabulary holds no FLORES-200 codes")
        return cls(codes)

    def resolve(self, code: str) -> str:
        """The FLORES-200 code for ``code`` (FLORES-200, or ISO 639-1/639-3 naming exactly one)."""
        cleaned = code.strip()
        if cleaned in self._known:
            return cleaned
        candidates = self._by_iso3.get(_alpha3(cleaned) or "", [])
        if len(candidates) == 1:
            return candidates[0]
        raise UnknownLanguageError(code, candidates or self.suggest(cleaned))

    def suggest(self, code: str, count: int = 3) -> list[str]:
        """The valid codes closest to ``code``."""
        lowered = {c.lower(): c for c in self.codes}
        matches = difflib.get_close_matches(code.lower(), list(lowered), n=count, cutoff=0.5)
        return [lowered[m] for m in matches]


def _alpha3(code: str) -> str | None:
    """ISO 639-3 for an ISO 639-1 or 639-3 code, via langcodes; None if it is not one."""
    import langcodes

    if not re.fullmatch(r"[A-Za-z]{2,3}", code):
        return None
    try:
        alpha3: str = langcodes.Language.get(code.lower()).to_alpha3()
    except (LookupError, ValueError):
        return None
    return alpha3
