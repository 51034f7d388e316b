"""Language codes: the model's own FLORES-200 codes, and the ISO 639 codes that map onto them.

Every route accepts a FLORES-200 code (``arb_Arab``), an ISO 639-1 or 639-3 code that names one
of the model's languages (``ar``, ``fra``), and LibreTranslate's own spellings (``zh-Hans``,
``zt``, ``pb``). ISO 639-1 codes of macrolanguages name the member NLLB was trained on
(``ar`` -> Modern Standard Arabic, ``fa`` -> Western Persian, ``zh`` -> Simplified Chinese).
LibreTranslate's ``/languages`` lists the ISO 639-1 code where there is one, else FLORES-200.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import re
from pathlib import Path

from babelcap.core.errors import TranslationError

__all__ = ["FLORES_CODE", "MACROLANGUAGE_DEFAULTS", "LanguageCatalog", "UnknownLanguageError"]

#: A FLORES-200 code: ISO 639-3 language, underscore, ISO 15924 script (``fra_Latn``).
FLORES_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")

#: ISO 639-1 codes of macrolanguages (or of a language NLLB has in two scripts) -> the FLORES-200
#: code they mean here: the standard variety, in its usual script.
MACROLANGUAGE_DEFAULTS = {
    "ar": "arb_Arab", "ay": "ayr_Latn", "az": "azj_Latn", "et": "est_Latn", "fa": "pes_Arab",
    "ff": "fuv_Latn", "kr": "knc_Latn", "ks": "kas_Arab", "ku": "kmr_Latn", "lv": "lvs_Latn",
    "mg": "plt_Latn", "mn": "khk_Cyrl", "ms": "zsm_Latn", "ne": "npi_Deva", "no": "nob_Latn",
    "om": "gaz_Latn", "or": "ory_Orya", "ps": "pbt_Arab", "qu": "quy_Latn", "sq": "als_Latn",
    "sw": "swh_Latn", "uz": "uzn_Latn", "yi": "ydd_Hebr", "zh": "zho_Hans",
}  # fmt: skip
#: LibreTranslate's own codes, the usual BCP 47 spellings of Chinese and Brazilian Portuguese, and
#: Tagalog (which langcodes folds into Filipino, ``fil``, a code NLLB does not use).
_ALIASES = {
    "zh-hans": "zho_Hans", "zh-cn": "zho_Hans", "zh-hant": "zho_Hant", "zh-tw": "zho_Hant",
    "zt": "zho_Hant", "pb": "por_Latn", "pt-br": "por_Latn", "tl": "tgl_Latn", "fil": "tgl_Latn",
}  # fmt: skip
#: How LibreTranslate lists the two Chinese scripts.
_LIBRE_NAMES = {"zho_Hans": "zh-Hans", "zho_Hant": "zh-Hant"}


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
        self._resolved: dict[str, str] = {}  # only codes that resolve: garbage is not kept

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
        """The FLORES-200 code for ``code``: FLORES-200, ISO 639-1/639-3 naming exactly one
        (or a macrolanguage, see :data:`MACROLANGUAGE_DEFAULTS`), or LibreTranslate's codes."""
        cleaned = code.strip()
        if cleaned in self._known:
            return cleaned
        if cleaned in self._resolved:
            return self._resolved[cleaned]
        lowered = cleaned.lower()
        named = _ALIASES.get(lowered) or MACROLANGUAGE_DEFAULTS.get(lowered)
        candidates = [named] if named in self._known else []
        if not candidates:
            candidates = self._by_iso3.get(_alpha3(cleaned) or "", [])
        if len(candidates) == 1:
            self._resolved[cleaned] = candidates[0]
            return candidates[0]
        raise UnknownLanguageError(code, candidates or self.suggest(cleaned))

    def public_code(self, code: str) -> str:
        """How LibreTranslate's routes name the FLORES-200 ``code``: its ISO 639-1 code when
        that code means it here (``fra_Latn`` -> ``fr``, ``arb_Arab`` -> ``ar``), ``zh-Hans`` and
        ``zh-Hant`` for Chinese, else the FLORES-200 code itself (``ary_Arab``, ``kas_Deva``)."""
        return self._public_codes().get(code, code)

    def name(self, code: str) -> str:
        """The English name of the FLORES-200 ``code``, with its script where the model has
        the language in more than one (``Chinese (Traditional)``, ``Kashmiri (Devanagari)``)."""
        return _english_name(code, len(self._by_iso3.get(code[:3], ())) > 1)

    @functools.cache  # noqa: B019 - one catalog per model, kept for the server's life
    def _public_codes(self) -> dict[str, str]:
        import langcodes

        public = dict(_LIBRE_NAMES)
        for code in self.codes:
            if code in public:
                continue
            tags = []
            with contextlib.suppress(LookupError, ValueError):
                tags.append(str(langcodes.Language.get(code[:3]).language or ""))
            # Then the macrolanguage's code, or Tagalog's (not LibreTranslate's pb or zt).
            tags += [
                k for k, v in (*MACROLANGUAGE_DEFAULTS.items(), ("tl", "tgl_Latn")) if v == code
            ]
            for tag in tags:
                if len(tag) == 2 and self._try_resolve(tag) == code:
                    public[code] = tag
                    break
        return public

    def _try_resolve(self, code: str) -> str | None:
        try:
            return self.resolve(code)
        except UnknownLanguageError:
            return None

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


@functools.lru_cache(maxsize=512)
def _english_name(code: str, with_script: bool) -> str:
    import langcodes

    tag = f"{code[:3]}-{code[4:]}" if with_script else code[:3]
    try:
        return str(langcodes.Language.get(tag).display_name())
    except (LookupError, ValueError):
        return code
