"""Small rules of the engine that need no database: reading a typed satisfaction rating, an intent's articles, a
destination named alone, a return's reason told afterwards."""

from __future__ import annotations

import pytest

from actions.responses import ResponseCatalog
from bot.engine import (
    ConversationEngine,
    KBAnswer,
    KBHit,
    _destination_alone,
    _order_number_like,
    _rating,
    _tells_reason,
)
from bot.runtime import DomainResponses
from nlu.types import Entity, ParseResult, Sentiment
from tests.conftest import DEMO_PROJECT


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


class _Examples:
    """The NLU side of `_articles_of`: an intent's training examples."""

    def __init__(self, examples: dict[str, list[str]]) -> None:
        self.by_intent = examples

    def parse(self, text: str, previous_language: str | None = None):  # type: ignore[no-untyped-def]
        raise AssertionError("not read")

    def examples(self, intent: str) -> list[tuple[str, str]]:
        return [(text, "en") for text in self.by_intent.get(intent, [])]


class _Articles:
    """A KB whose answer to a question is looked up in a table; `version` moves on publish."""

    def __init__(self, answers: dict[str, str | None]) -> None:
        self.answers = answers
        self.version = 1
        self.searches = 0

    def search(self, query: str, language: str) -> KBAnswer:
        self.searches += 1
        article = self.answers.get(query)
        hits = [KBHit(article, self.version, article, "", language, 0.9)] if article else []
        return KBAnswer(hits, confident=bool(article), close_call=False, fallback_used=False, trace={})

    async def record_unanswered(self, text: str, language: str, channel: str, conversation_id: int,
                                reason: str) -> None:
        raise AssertionError("not recorded")


def test_an_intents_articles_are_those_its_examples_find_and_follow_the_kb_version() -> None:
    examples = [f"where is order {i}" for i in range(30)] + ["status please", "any news", "is it shipped"]
    answers: dict[str, str | None] = {text: "order-tracking" for text in examples[:28]}
    answers |= {examples[28]: "shipping-times", examples[29]: "shipping-times", "status please": "how-to-order",
                "any news": None}
    kb = _Articles(answers)
    engine = ConversationEngine(
        nlu=_Examples({"order_status": examples}), knowledge=kb, actions=None, handoff=None,
        responses=DomainResponses(ResponseCatalog.from_domain(DEMO_PROJECT / "domain.yml", "en")),
        languages=["en"], fallback_language="en")
    # 31 confident answers: 28 order-tracking, 2 shipping-times (at least two), 1 how-to-order (one alone is chance).
    assert engine._articles_of("order_status") == {"order-tracking", "shipping-times"}
    assert kb.searches == len(examples)
    assert engine._articles_of("order_status") == {"order-tracking", "shipping-times"}
    assert kb.searches == len(examples), "searched once per KB version"
    kb.version = 2
    kb.answers["status please"] = "shipping-address"
    kb.answers["any news"] = "shipping-address"
    assert engine._articles_of("order_status") == {"order-tracking", "shipping-times", "shipping-address"}
    assert kb.searches == 2 * len(examples)
    assert engine._articles_of("cancel_order") == frozenset()


def _read(text: str, intent: str | None, country: str | None = None, order: str | None = None) -> ParseResult:
    entities = []
    for name, found in (("country", country), ("order_number", order)):
        if found:
            at = text.index(found)
            entities.append(Entity(name, found, found, at, at + len(found), "test"))
    return ParseResult(text, "en", 1.0, intent, 0.9, [], entities, Sentiment({}, []))


@pytest.mark.parametrize(("text", "country"), [
    ("and to Norway?", "Norway"), ("Und Norwegen?", "Norwegen"), ("¿y a Italia?", "Italia"),
    ("オーストラリアは？", "オーストラリア"), ("what about Canada?", "Canada"), ("Norway?", "Norway"),
])
def test_a_destination_named_alone_is_a_follow_up(text: str, country: str) -> None:
    assert _destination_alone(text, _read(text, "shipping_estimate", country=country))


@pytest.mark.parametrize(("text", "country"), [
    ("do you ship to Norway?", "Norway"), ("Liefern Sie nach Norwegen?", "Norwegen"), ("shipping to Canada?", "Canada"),
])
def test_a_destination_with_a_question_around_it_is_no_follow_up(text: str, country: str) -> None:
    assert not _destination_alone(text, _read(text, "shipping_estimate", country=country))
    assert not _destination_alone("how long does it take?", _read("how long does it take?", "shipping_estimate"))


@pytest.mark.parametrize(("text", "intent"), [
    ("it's too small", "deny"), ("wrong size", "return_request"), ("die Farbe gefällt mir nicht", "deny"),
    ("broken", None), ("色が写真と違います", None),
])
def test_a_reason_after_the_return_was_opened(text: str, intent: str | None) -> None:
    assert _tells_reason(text, _read(text, intent), intent)


@pytest.mark.parametrize(("text", "intent"), [
    ("no thanks", "deny"), ("nein danke", "deny"), ("No, that's all.", "deny"), ("いいえ、大丈夫です", "deny"),
    ("nothing else", "deny"), ("nichts weiter, danke", "deny"), ("non, rien d'autre", "deny"),
    ("how long does the refund take?", "refund_status"), ("when do I get my money back?", None),
    ("thanks!", "thanks"), ("and ND-100105 too", None),
])
def test_no_reason_after_the_return_was_opened(text: str, intent: str | None) -> None:
    order = "ND-100105" if "ND-" in text else None
    assert not _tells_reason(text, _read(text, intent, order=order), intent)
