"""Sentence splitting keeps every character and finds what must not be translated."""

from __future__ import annotations

from babelcap.server.translation.segment import split_long, split_text


def _join(segments):
    return "".join(s.text + s.trailing for s in segments)


def test_paragraphs_and_sentences_round_trip_exactly():
    text = "  First one. Second one?\n\nThird!\n\n\n  Fourth, with Mr. Smith.  "
    segments = split_text(text, "eng_Latn")
    assert _join(segments) == text
    assert [s.text for s in segments if s.translate] == [
        "First one.",
        "Second one?",
        "Third!",
        "Fourth, with Mr. Smith.",
    ]


def test_numbers_emoji_and_bare_urls_pass_through():
    segments = split_text("42 🎉\n\nhttps://example.com/a?b=1\n\n2026-11-25", "eng_Latn")
    assert not any(s.translate for s in segments)


def test_long_text_is_split_at_clauses_then_words_and_loses_nothing():
    words = lambda s: len(s.split())  # noqa: E731
    text = "one two three, four five six; seven eight nine ten eleven twelve"
    parts = split_long(text, words, 4)
    assert all(words(p) <= 4 for p in parts)
    assert " ".join(parts).split() == text.split()
