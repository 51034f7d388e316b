"""Language codes as exports show them: English names (``fra_Latn`` -> ``french``) for the seed
JSON's ``translation_<language>`` keys and the report's language switch, and text direction.

Names come from ``langcodes`` (with ``language_data``; ``pip install 'babelcap[export]'``). Two
codes of one document that share a name (NLLB has Chinese, Kashmiri, Acehnese, Banjar, Central
Kanuri and Tamasheq in two scripts each) are told apart by the script: ``chinese_simplified``,
``chinese_traditional``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from types import ModuleType

from babelcap.core.errors import ConfigurationError

__all__ = ["RTL_SCRIPTS", "direction", "display_names", "key_names"]

#: ISO 15924 scripts written right to left (Arabic covers Urdu, Persian, Pashto, Sindhi, ...).
RTL_SCRIPTS = frozenset({"Arab", "Hebr", "Syrc", "Thaa", "Nkoo", "Adlm", "Rohg", "Mand", "Samr"})


def direction(code: str) -> str:
    """``rtl`` for a FLORES-200 code in a right-to-left script (``arb_Arab``, ``heb_Hebr``,
    ``urd_Arab``, ``pes_Arab``), else ``auto`` (the browser decides from the text)."""
    script = code.partition("_")[2]
    return "rtl" if script in RTL_SCRIPTS else "auto"


def _langcodes() -> ModuleType:
    try:
        import langcodes
    except ImportError as error:
        raise ConfigurationError(
            "language names need langcodes: pip install 'babelcap[export]'"
        ) from error
    return langcodes


def _name(code: str, *, script: bool) -> str:
    langcodes = _langcodes()
    try:
        language = langcodes.Language.get(code.replace("_", "-"))
        return str(language.display_name() if script else language.language_name())
    except (ValueError, LookupError):
        return code


def _key(name: str) -> str:
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def key_names(codes: Iterable[str]) -> dict[str, str]:
    """Code -> the lower-case English name used in keys (``spa_Latn`` -> ``spanish``,
    ``arb_Arab`` -> ``standard_arabic``); a name two of ``codes`` share gets the script."""
    codes = list(dict.fromkeys(codes))
    plain = {code: _key(_name(code, script=False)) for code in codes}
    shared = Counter(plain.values())
    return {
        code: _key(_name(code, script=True)) if shared[name] > 1 else name
        for code, name in plain.items()
    }


def display_names(codes: Iterable[str]) -> dict[str, str]:
    """Code -> a name for people (``French``, ``Chinese (Simplified)``); the code itself when
    langcodes is not installed."""
    try:
        _langcodes()
    except ConfigurationError:
        return {code: code for code in codes}
    codes = list(dict.fromkeys(codes))
    plain = {code: _name(code, script=False) for code in codes}
    shared = Counter(plain.values())
    return {code: _name(code, script=True) if shared[n] > 1 else n for code, n in plain.items()}
