"""Language codes: FLORES-200, ISO 639-1/639-3 (macrolanguages included) and LibreTranslate's
own, read against the tiny NLLB's real vocabulary (all 202 FLORES-200 codes)."""

from __future__ import annotations

import pytest

from babelcap.server.translation.languages import LanguageCatalog, UnknownLanguageError


@pytest.fixture(scope="module")
def catalog(artifacts):
    return LanguageCatalog.from_model(artifacts / "nllb-ct2")


@pytest.mark.parametrize(
    ("code", "flores"),
    [
        ("ar", "arb_Arab"), ("fa", "pes_Arab"), ("zh", "zho_Hans"), ("zh-Hans", "zho_Hans"),
        ("zh-Hant", "zho_Hant"), ("zt", "zho_Hant"), ("pb", "por_Latn"), ("pt", "por_Latn"),
        ("tl", "tgl_Latn"), ("sw", "swh_Latn"), ("ms", "zsm_Latn"), ("no", "nob_Latn"),
        ("fr", "fra_Latn"), ("fra", "fra_Latn"), (" es ", "spa_Latn"), ("ary_Arab", "ary_Arab"),
        ("iw", "heb_Hebr"),
    ],
)  # fmt: skip
def test_iso_macrolanguage_and_libretranslate_codes_resolve(catalog, code, flores):
    assert catalog.resolve(code) == flores


def test_an_unknown_code_names_the_closest_ones(catalog):
    with pytest.raises(UnknownLanguageError) as caught:
        catalog.resolve("fra_latn")
    assert "fra_Latn" in caught.value.suggestions and "'fra_latn'" in str(caught.value)
    with pytest.raises(UnknownLanguageError):
        catalog.resolve("xx")


def test_listed_codes_are_iso_639_1_where_one_exists_unique_and_resolve_back(catalog):
    public = {code: catalog.public_code(code) for code in catalog.codes}
    assert len(set(public.values())) == len(catalog.codes) == 202
    assert all(catalog.resolve(listed) == code for code, listed in public.items())
    assert public["arb_Arab"] == "ar" and public["por_Latn"] == "pt"
    assert public["zho_Hans"] == "zh-Hans" and public["zho_Hant"] == "zh-Hant"
    assert public["ary_Arab"] == "ary_Arab"  # no ISO 639-1 code: FLORES-200
    assert public["kas_Arab"] == "ks" and public["kas_Deva"] == "kas_Deva"
    assert sum(len(listed) == 2 for listed in public.values()) > 100


def test_names_are_english_with_the_script_only_where_it_tells_two_apart(catalog):
    assert catalog.name("fra_Latn") == "French"
    assert catalog.name("zho_Hant") == "Chinese (Traditional)"
    assert catalog.name("kas_Deva") == "Kashmiri (Devanagari)"
