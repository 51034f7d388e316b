"""Tag parsing from what models really write."""

from __future__ import annotations

import pytest

from babelcap.client.tags import parse_tags


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("red car, Blue Sky, red car.", ["blue sky", "red car"]),
        ("1. Beach\n2) Sunset\n3: palm trees\n", ["beach", "palm trees", "sunset"]),
        ('- "Summer"\n* vibes\n• ocean.', ["ocean", "summer", "vibes"]),
        ("Tags: coffee;  morning   light ; Coffee", ["coffee", "morning light"]),
        ("#travel #Adventure", ["adventure", "travel"]),
        ("**Bold**, `code`", ["bold", "code"]),
        ("", []),
        ("The image shows a long sentence that is not a tag at all, red", ["red"]),
    ],
)
def test_parse_tags(text, tags):
    assert parse_tags(text) == tags
