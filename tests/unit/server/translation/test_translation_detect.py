"""Language identification (py3langid, offline) restricted to the model's languages."""

from __future__ import annotations

import asyncio
import time

import pytest

from babelcap.server.translation.detect import LanguageDetector
from babelcap.server.translation.languages import LanguageCatalog


@pytest.fixture(scope="module")
def detector(artifacts):
    found = LanguageDetector(LanguageCatalog.from_model(artifacts / "nllb-ct2"))
    found.load()
    return found


@pytest.mark.parametrize(
    ("text", "flores"),
    [
        ("The weather is lovely today, let us walk to the park.", "eng_Latn"),
        ("Bonjour, comment allez-vous aujourd'hui ?", "fra_Latn"),
        ("Un perro pequeño duerme en el parque.", "spa_Latn"),
        ("今天天气很好，我们去公园散步吧。", "zho_Hans"),
        ("الطقس جميل اليوم ونحن نمشي في الحديقة", "arb_Arab"),
    ],
)
def test_common_languages_are_found_as_flores_codes(detector, text, flores):
    found = detector.detect_sync(text)
    assert found[0].language == flores
    assert 0 < found[0].confidence <= 100 and len(found) <= 3
    assert [d.confidence for d in found] == sorted((d.confidence for d in found), reverse=True)


def test_text_without_letters_is_english_with_no_confidence(detector):
    assert [(d.language, d.confidence) for d in detector.detect_sync("42 🎉 !!")] == [
        ("eng_Latn", 0.0)
    ]


def test_only_the_models_languages_are_candidates():
    small = LanguageDetector(LanguageCatalog(["eng_Latn", "fra_Latn"]))
    found = small.detect_sync("Un perro pequeño duerme en el parque.")
    assert {d.language for d in found} <= {"eng_Latn", "fra_Latn"}


def test_a_megabyte_is_judged_on_its_start_in_a_thread(detector):
    text = "Bonjour, comment allez-vous ? " * 35_000
    started = time.perf_counter()
    found = asyncio.run(detector.detect(text))
    assert found[0].language == "fra_Latn"
    assert time.perf_counter() - started < 1.0
