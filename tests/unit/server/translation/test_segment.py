"""Sentence splitting keeps every character, finds what must not be translated, and splits
over-long sentences (spaces or none) into pieces under the model's limit without losing any."""

from __future__ import annotations

import sentencepiece

from babelcap.server.translation.segment import split_pieces, split_text, windows

WORD_START = "\u2581"


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


def test_windows_join_back_exactly_and_cut_at_clauses_then_spaces():
    text = "one two three, four five six seven eight nine ten eleven twelve thirteen"
    parts = windows(text, 20)
    assert "".join(parts) == text
    assert all(len(p) <= 20 for p in parts)
    assert parts[0] == "one two three, "  # the clause break, not the last space
    assert all(p.startswith(" ") for p in parts[2:])  # then before a space: no word is cut


def test_windows_of_a_script_without_spaces_are_cut_by_characters():
    text = "".join(chr(0x4E00 + i % 2000) for i in range(20_000))  # 20,000 Chinese characters
    parts = windows(text, 4096)
    assert "".join(parts) == text
    assert [len(p) for p in parts] == [4096] * 4 + [20_000 - 4 * 4096]
    chinese = "第一句话，第二句话，第三句话" * 10
    assert all(p.endswith("，") for p in windows(chinese, 40)[:-1])  # at Chinese commas


def test_long_token_runs_split_at_marks_then_word_starts_then_anywhere():
    words = [f"{WORD_START}w{i}" for i in range(30)]
    pieces = [*words[:7], ",", *words[7:]]
    chunks = split_pieces(pieces, 10)
    assert [t for chunk in chunks for t in chunk] == pieces  # nothing lost, nothing added
    assert chunks[0][-1] == ","  # after the clause mark, in the second half of the run
    assert all(len(chunk) <= 10 for chunk in chunks)
    assert all(chunk[0].startswith(WORD_START) for chunk in chunks)  # then at word starts
    cjk = [chr(0x4E00 + i) for i in range(45)]  # no word starts at all
    assert [len(chunk) for chunk in split_pieces(cjk, 10)] == [10, 10, 10, 10, 5]
    assert split_pieces(cjk[:10], 10) == [cjk[:10]]


def test_a_200000_letter_run_is_split_into_pieces_under_the_limit_not_cut(artifacts):
    model = artifacts / "nllb-ct2" / "sentencepiece.bpe.model"
    tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(model))
    text = "".join("abcdefghijklmnopqrstuvwxyz"[(i * 7919) % 26] for i in range(200_000))
    pieces = [
        piece for part in windows(text, 4096) for piece in tokenizer.encode(part, out_type=str)
    ]
    chunks = [c for part in windows(text, 4096)
              for c in split_pieces(tokenizer.encode(part, out_type=str), 200)]  # fmt: skip
    assert len(chunks) > 100 and max(len(c) for c in chunks) <= 200
    assert [t for chunk in chunks for t in chunk] == pieces
    assert "".join(t for t in pieces).replace(WORD_START, "") == text
