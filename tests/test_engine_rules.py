"""Small rules of the engine that need no database: reading a typed satisfaction rating."""

from __future__ import annotations

import pytest

from bot.engine import _order_number_like, _rating


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


@pytest.mark.parametrize(("text", "number"), [
    ("100105", "100105"), ("#100105", "100105"), ("it's 100105", "100105"), ("Bestellnummer 100105", "100105"),
    ("注文番号は100105です", "100105"),
])
def test_a_bare_order_number_in_answer_to_the_question(text: str, number: str) -> None:
    assert _order_number_like(text) == number


@pytest.mark.parametrize("text", ["+33 6 12 34 56 78", "+4915112345678", "paul.weber747@example.org", "123",
                                  "100105 or 100106", "I ordered it on 12 March 2026 and it still has not arrived"])
def test_no_bare_order_number(text: str) -> None:
    assert _order_number_like(text) is None
