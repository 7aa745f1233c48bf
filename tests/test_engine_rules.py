"""Small rules of the engine that need no database: reading a typed satisfaction rating."""

from __future__ import annotations

import pytest

from bot.engine import _rating


@pytest.mark.parametrize(("text", "rating"), [
    ("4", 4), ("/csat{\"score\":4}", 4), ("/csat:2", 2), ("５", 5), ("5 stars, great service", 5), ("4/5", 4),
    ("4 out of 5", 4), ("3 Sterne", 3), ("3 von 5 Sternen", 3), ("5 étoiles", 5), ("★★★★", 4), ("⭐️⭐️⭐️", 3),
    ("5 - great", 5), ("4, quick answers", 4), ("5!", 5), ("星5", 5),
])
def test_typed_ratings(text: str, rating: int) -> None:
    assert _rating(text) == rating


@pytest.mark.parametrize("text", ["I ordered 2 rugs", "2 rugs arrived broken", "5 days late!", "4.5", "10/10", "6",
                                  "great", "ND-100105", "1:30"])
def test_numbers_that_are_no_rating(text: str) -> None:
    assert _rating(text) is None
