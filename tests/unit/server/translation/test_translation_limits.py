"""Per-request limits: what is refused, and that the refusal names the limit and the flag."""

from __future__ import annotations

import pytest

from babelcap.core import defaults
from babelcap.core.errors import TranslationError
from babelcap.server.translation.limits import (
    LimitExceededError,
    TranslationLimits,
    check_texts,
)


def test_defaults_come_from_core_defaults():
    limits = TranslationLimits()
    assert limits.max_chars == defaults.TRANSLATION_MAX_CHARS
    assert limits.max_sentences == defaults.TRANSLATION_MAX_SENTENCES


def test_characters_of_all_texts_count_together():
    limits = TranslationLimits(max_chars=10)
    check_texts(["12345", "12345"], limits)
    with pytest.raises(LimitExceededError) as caught:
        check_texts(["12345", "123456"], limits)
    message = str(caught.value)
    assert "11 characters" in message and "limit of 10" in message
    assert "--max-translation-chars" in message and caught.value.code == "too_many_characters"


def test_a_lone_surrogate_is_refused_naming_the_text():
    with pytest.raises(TranslationError, match="text 1 holds a lone surrogate at character 2"):
        check_texts(["fine", "ab\ud800c"], TranslationLimits())
