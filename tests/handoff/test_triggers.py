"""Which messages make the bot hand over to a person, and how urgent the ticket is."""

from __future__ import annotations

from handoff.priority import PriorityRule, PriorityRules, assign_priority
from handoff.triggers import EscalationFacts, EscalationRules, evaluate_triggers
from tests.handoff.helpers import parse


def names(facts: EscalationFacts, rules: EscalationRules | None = None) -> list[str]:
    return [t.name for t in evaluate_triggers(facts, rules)]


def test_a_calm_question_does_not_escalate() -> None:
    facts = EscalationFacts(parse=parse("Where is my parcel?"), failed_turns=1, order_total=40.0)
    assert evaluate_triggers(facts) == []


def test_chargeback_threat_is_p1_and_the_reason_is_recorded() -> None:
    facts = EscalationFacts(parse=parse("I will file a chargeback with my bank", "en", "threat", "angry"))
    triggers = evaluate_triggers(facts)
    assert [t.name for t in triggers] == ["threat", "anger"]
    assert "chargeback" in triggers[0].reason and "0.93" in triggers[0].reason
    tier, reason = assign_priority(triggers, facts)
    assert tier == "P1" and "threat" in reason


def test_angry_with_an_order_in_transit_is_p1_without_it_p2() -> None:
    angry = parse("Das ist eine Frechheit!", "de", "angry")
    in_transit = EscalationFacts(parse=angry, order_in_transit=True)
    assert assign_priority(evaluate_triggers(in_transit), in_transit)[0] == "P1"
    delivered = EscalationFacts(parse=angry)
    assert assign_priority(evaluate_triggers(delivered), delivered)[0] == "P2"


def test_urgent_is_p2_human_request_is_p3() -> None:
    urgent = EscalationFacts(parse=parse("I need it by tomorrow!", "en", "urgent"))
    assert assign_priority(evaluate_triggers(urgent), urgent)[0] == "P2"
    human = EscalationFacts(parse=parse("人工客服", "zh", "human"))
    assert names(human) == ["human_request"]
    assert assign_priority(evaluate_triggers(human), human)[0] == "P3"


def test_two_failed_turns_high_value_and_repeat_contact_fire() -> None:
    facts = EscalationFacts(parse=parse("???"), failed_turns=2, order_total=899.0, order_currency="EUR",
                            recent_similar_contacts=2)
    triggers = evaluate_triggers(facts)
    assert {t.name for t in triggers} == {"failed_turns", "high_value_order", "repeat_contact"}
    value = next(t for t in triggers if t.name == "high_value_order")
    assert "899.00 EUR" in value.reason


def test_media_and_unsupported_language_escalate() -> None:
    facts = EscalationFacts(parse=parse("...", "sw"), has_unreadable_media=True, language_supported=False)
    assert set(names(facts)) == {"unreadable_media", "unsupported_language"}


def test_the_unsupported_language_reason_names_the_language_the_shopper_wrote() -> None:
    from dataclasses import replace

    polish = replace(parse("Dzień dobry, gdzie jest moja paczka?", "en"), foreign_language="pl")
    triggers = evaluate_triggers(EscalationFacts(parse=polish, language_supported=False))
    assert [t.name for t in triggers] == ["unsupported_language"]
    assert "'pl'" in triggers[0].reason


def test_rules_are_configurable() -> None:
    rules = EscalationRules(human_request=False, failed_turns_limit=3, order_value_threshold=None)
    facts = EscalationFacts(parse=parse("agent please", "en", "human"), failed_turns=2, order_total=10_000.0)
    assert names(facts, rules) == []


def test_priority_rules_are_configurable_and_default_is_p4() -> None:
    facts = EscalationFacts(parse=parse("hello", "en", "human"), out_of_hours=True)
    rules = PriorityRules(rules=[PriorityRule(tier="P2", any_of=["human_request"], description="VIP shop")])
    assert assign_priority(evaluate_triggers(facts), facts, rules)[0] == "P2"
    tier, reason = assign_priority([], facts)
    assert tier == "P4" and "out of hours" in reason


def test_saying_earlier_messages_went_unanswered_is_a_repeat_contact() -> None:
    # "this is the third time I'm writing, nobody answers" read as calm and was asked for an order number: the shop
    # could not link the earlier messages to this shopper, but the shopper says they exist.
    for text in ["this is the third time I'm writing, nobody answers, I want my money back NOW",
                 "I've emailed you 3 times and still no reply", "Immer noch keine Antwort auf meine Mail!",
                 "Ich schreibe euch jetzt zum dritten Mal", "Es la tercera vez que les escribo y nadie me responde",
                 "Personne ne répond à mes messages", "Nessuno mi risponde da una settimana", "Ninguém me responde",
                 "何度もメールしていますが返事がありません", "我已经第三次联系你们了，一直没人回复"]:
        triggers = evaluate_triggers(EscalationFacts(parse=parse(text)))
        assert [t.name for t in triggers] == ["repeat_contact"], text
        assert "unanswered" in triggers[0].reason
    # Off in the rules, it stays off.
    assert names(EscalationFacts(parse=parse("nobody answers my emails")), EscalationRules(repeat_contact=False)) == []


def test_a_knock_at_the_door_or_a_third_order_is_no_repeat_contact() -> None:
    for text in ["the courier said nobody answered the door", "the driver rang but no one answered the bell",
                 "this is the third time I order from you, love it", "Ich bestelle zum dritten Mal bei euch",
                 "3回目の注文です", "这是我第三次买你们的东西", "where is my order"]:
        assert names(EscalationFacts(parse=parse(text))) == [], text
