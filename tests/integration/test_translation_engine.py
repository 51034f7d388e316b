"""The translation engine on the tiny NLLB (real CTranslate2): complete, ordered, deterministic."""

from __future__ import annotations

import asyncio
import random

import pytest

from babelcap.converters.tiny.nllb import template_sentences
from babelcap.server.translation import TranslationEngine, TranslationSettings
from babelcap.server.translation.languages import UnknownLanguageError
from babelcap.server.translation.limits import (
    EmptyTranslationError,
    LimitExceededError,
    TranslationLimits,
)

# Whole sentences only (the template set also holds bare colour lists such as "red, blue").
ROWS = [row for row in template_sentences() if row["eng_Latn"].endswith(".")]


@pytest.fixture(scope="module")
def engine(artifacts):
    return TranslationEngine(TranslationSettings(model=artifacts / "nllb-ct2"))


def _run(engine, *args, **kwargs):
    async def go():
        try:
            return await engine.translate(*args, **kwargs)
        finally:
            await engine.aclose()

    return asyncio.run(go())


def _document(lang, rows):
    paragraphs = [rows[0:4], rows[4:8], rows[8:12]]
    return "\n\n".join(" ".join(r[lang] for r in p) for p in paragraphs)


def test_three_paragraphs_of_twelve_sentences_come_back_whole_and_in_order(engine):
    rows = ROWS[300:312]
    result = _run(engine, [_document("eng_Latn", rows)], ["fra_Latn", "spa_Latn"])
    for lang in ("fra_Latn", "spa_Latn"):
        assert result.texts[lang] == [_document(lang, rows)]
    assert result.sentences == 24
    again = _run(engine, [_document("eng_Latn", rows)], ["fra_Latn", "spa_Latn"])
    assert again.texts == result.texts


def test_twenty_thousand_characters_are_translated_completely(engine):
    rows = ROWS
    text = " ".join(r["eng_Latn"] for r in rows)
    assert len(text) >= 20_000
    result = _run(engine, [text], ["fra_Latn"])
    assert result.texts["fra_Latn"][0] == " ".join(r["fra_Latn"] for r in rows)
    assert engine.longest_source_tokens <= engine.settings.max_sentence_tokens + 2


def test_a_run_on_sentence_is_split_not_truncated(engine):
    clause = "a small dog is sleeping in the park"
    text = ", ".join([clause] * 120) + "."
    result = _run(engine, [text], ["fra_Latn"])
    assert engine.longest_source_tokens <= engine.settings.max_sentence_tokens + 2
    assert result.sentences > 1
    assert result.texts["fra_Latn"][0].strip()


def test_two_hundred_target_languages_in_one_call(engine):
    others = [c for c in engine.languages.codes if c not in ("fra_Latn", "spa_Latn")]
    codes = [*others[:198], "fra_Latn", "spa_Latn"]
    assert len(set(codes)) == 200
    result = _run(engine, [ROWS[-1]["eng_Latn"]], codes)
    assert len(result.texts) == 200
    assert result.texts["fra_Latn"] == [ROWS[-1]["fra_Latn"]]
    assert result.texts["spa_Latn"] == [ROWS[-1]["spa_Latn"]]


def test_nothing_is_invented_for_empty_numeric_or_same_language_text(engine):
    texts = ["", "   \n ", "42 🎉", "https://example.com/x", "Un petit chien dort dans le parc."]
    result = _run(engine, texts, ["spa_Latn"])
    assert result.texts["spa_Latn"][:4] == texts[:4]
    same = _run(engine, [texts[-1]], ["fr"], source="fra_Latn")
    assert same.texts["fra_Latn"] == [texts[-1]]
    assert same.sentences == 0


def test_iso_codes_map_and_unknown_codes_name_suggestions(engine):
    assert _run(engine, [ROWS[0]["eng_Latn"]], ["fr", "spa"]).texts == {
        "fra_Latn": [ROWS[0]["fra_Latn"]],
        "spa_Latn": [ROWS[0]["spa_Latn"]],
    }
    with pytest.raises(UnknownLanguageError) as caught:
        _run(engine, ["Hello."], ["fra_latn"])
    assert "fra_Latn" in caught.value.suggestions
    assert "'fra_latn'" in str(caught.value)


def test_concurrent_calls_share_batches(engine):
    async def go():
        before = engine.batches
        calls = [engine.translate([ROWS[i]["eng_Latn"]], ["fra_Latn"]) for i in range(16)]
        results = await asyncio.gather(*calls)
        await engine.aclose()
        return engine.batches - before, results

    batches, results = asyncio.run(go())
    assert [r.texts["fra_Latn"][0] for r in results] == [ROWS[i]["fra_Latn"] for i in range(16)]
    assert batches <= 2  # 16 calls, one micro-batch (two at most if a window closed between)


def _many(count, start=0):
    """``count`` distinct short English sentences."""
    return [
        f"The small dog number {i} is sleeping in the park." for i in range(start, start + count)
    ]


def test_a_200000_letter_run_without_spaces_is_split_into_pieces_not_cut(engine):
    letters = random.Random(0).choices("abcdefghijklmnopqrstuvwxyz", k=200_000)
    text = "".join(letters)
    result = _run(engine, [text], ["fra_Latn"])
    limit = engine.settings.max_sentence_tokens
    pieces = len(engine._pieces.encode(text, out_type=str))
    assert result.sentences >= pieces // limit > 100  # every token sent, in pieces
    # Each piece is sent with its language code and </s>: nothing was dropped.
    assert pieces <= result.input_tokens - 2 * result.sentences <= pieces + result.sentences
    assert engine.longest_source_tokens <= limit + 2
    assert len(result.texts["fra_Latn"][0]) > 1000


def test_an_empty_translation_of_real_text_is_an_error_never_an_empty_string(engine):
    # The tiny model never learnt Chinese: 20,000 characters into English come back empty.
    text = "".join(chr(0x4E00 + (i * 7919) % 20_000) for i in range(20_000))
    with pytest.raises(EmptyTranslationError, match="empty translation into eng_Latn for text 0"):
        _run(engine, [text], ["en"], source="zh")


def test_limits_refuse_a_call_before_any_work(engine):
    before = engine.batches
    with pytest.raises(LimitExceededError, match="3 characters, over the server's limit of 2"):
        _run(engine, ["abc"], ["fr"], limits=TranslationLimits(max_chars=2))
    with pytest.raises(LimitExceededError) as caught:
        _run(engine, _many(5), ["fr", "es"], limits=TranslationLimits(max_sentences=9))
    assert "10 sentences x target languages" in str(caught.value)
    assert "--max-translation-sentences" in str(caught.value)
    assert engine.batches == before


def test_a_cancelled_call_drops_its_remaining_sentences(engine):
    async def go():
        before = engine.batches
        big = asyncio.create_task(engine.translate(_many(4000), ["fra_Latn"]))
        while engine.batches == before:
            await asyncio.sleep(0.01)
        big.cancel()
        with pytest.raises(asyncio.CancelledError):
            await big
        await asyncio.sleep(1.0)  # the round in flight finishes
        after_cancel = engine.batches
        await asyncio.sleep(1.0)
        idle = engine.batches == after_cancel
        await engine.aclose()
        return after_cancel - before, idle

    dropped_before = engine.dropped_total
    batches, idle = asyncio.run(go())
    assert idle and batches <= 4  # 4000 sentences would take 16 rounds of 256
    assert engine.dropped_total - dropped_before > 3000


def test_a_small_call_shares_rounds_with_a_big_one_and_ends_first(engine):
    async def go():
        finished = []

        async def call(name, texts):
            await engine.translate(texts, ["fra_Latn"])
            finished.append(name)

        big = asyncio.create_task(call("big", _many(1500)))
        await asyncio.sleep(0.2)
        await call("small", [ROWS[0]["eng_Latn"]])
        await big
        await engine.aclose()
        return finished

    assert asyncio.run(go()) == ["small", "big"]
