"""What the agent sees beside a ticket (context packet, summary, suggested reply) and canned responses
with variables."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from handoff.canned import CannedResponses, UnknownVariable, render
from handoff.context import KBSuggestion, TranscriptEntry, build_context_packet, summarize
from handoff.triggers import EscalationFacts, evaluate_triggers
from tests.handoff.helpers import parse

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def transcript() -> list[TranscriptEntry]:
    lines = [
        ("email", "shopper", "Hallo. Ich habe am 2. März die Bestellung #A1001 über 129,90 € aufgegeben."),
        ("email", "bot", "Ihre Bestellung ist unterwegs."),
        ("widget", "shopper", "Hallo? Das Paket ist immer noch nicht da, die Sendungsverfolgung bewegt sich "
                              "seit einer Woche nicht."),
        ("widget", "bot", "Das tut mir leid. Möchten Sie mit einer Person sprechen?"),
        ("whatsapp", "shopper", "Ok. Ich brauche das Paket bis Freitag, sonst mache ich eine Rückbuchung. "
                                "Danke."),
    ]
    return [TranscriptEntry(T0 + timedelta(minutes=10 * i), ch, who, text, language="de")
            for i, (ch, who, text) in enumerate(lines)]


def kb() -> list[KBSuggestion]:
    return [
        KBSuggestion("shipping-delays", 3, "Shipping delays", "en", "Parcels can take up to 14 days.", 0.81),
        KBSuggestion("shipping-delays", 2, "Lieferverzögerungen", "de",
                     "Pakete können bis zu 14 Tage brauchen. Wir prüfen Ihre Sendung beim Versanddienst.", 0.78),
    ]


def test_context_packet_has_the_whole_story_and_is_json_ready() -> None:
    last = parse("Ich brauche das Paket bis Freitag, sonst mache ich eine Rückbuchung.", "de", "threat", "urgent",
                 intent="order_status")
    triggers = evaluate_triggers(EscalationFacts(parse=last))
    packet = build_context_packet(
        transcript=list(reversed(transcript())), parse=last, triggers=triggers,
        customer={"id": "cust-1", "name": "Anna Schmidt", "email": "anna@example.de"},
        orders=[{"number": "A1001", "total": "129.90", "currency": "EUR", "status": "in_transit"}],
        kb_suggestions=kb(), ticket_id=7)
    data = json.loads(json.dumps(packet.to_dict()))
    assert data["channels"] == ["email", "widget", "whatsapp"]  # chronological across channels
    assert [e["author"] for e in data["transcript"]][:2] == ["shopper", "bot"]
    assert data["language"] == "de" and data["intent"] == "order_status"
    assert [t["name"] for t in data["triggers"]] == ["threat", "urgency"]
    assert data["sentiment"]["labels"] == ["threat", "urgent"]
    assert data["orders"][0]["number"] == "A1001"
    reply = data["suggested_reply"]
    assert reply["locale"] == "de" and reply["in_shopper_language"]
    assert reply["text"].startswith("Hallo Anna Schmidt,") and "14 Tage" in reply["text"]
    assert "#A1001" in data["facts"] and "129,90 €" in data["facts"]


def test_summary_keeps_the_informative_sentences_with_order_and_amount() -> None:
    texts = [e.text for e in transcript() if e.author == "shopper"]
    summary = summarize(texts, max_sentences=3)
    assert len(summary) == 3
    assert any("#A1001" in s for s in summary)
    assert not any(s in ("Hallo.", "Hallo?", "Ok.", "Danke.") for s in summary)
    # Chronological order is kept so that it reads like the story.
    positions = [" ".join(texts).find(s) for s in summary]
    assert positions == sorted(positions)


def test_suggested_reply_falls_back_to_another_language_and_says_so() -> None:
    packet = build_context_packet(transcript=transcript(), parse=None, language="ja",
                                  kb_suggestions=kb(), customer={"name": "Sato"})
    assert packet.suggested_reply is not None
    assert packet.suggested_reply.locale == "en" and not packet.suggested_reply.in_shopper_language


def test_canned_response_fills_order_and_customer_variables() -> None:
    canned = CannedResponses.from_dict({
        "tracking": {
            "en": {"title": "Tracking link", "body": "Hi {{customer.name}}, track order {{ order.number }} here: "
                                                     "{{order.tracking_url}}"},
            "de": {"title": "Sendungslink", "body": "Hallo {{customer.name}}, hier können Sie Bestellung "
                                                    "{{order.number}} verfolgen: {{order.tracking_url}}"},
        },
    })
    values = {"customer": {"name": "Anna"},
              "order": {"number": "A1001", "tracking_url": "https://www.dhl.de/track?id=JJD000390007"}}
    assert canned.get("tracking", "de-AT").render(values) == (
        "Hallo Anna, hier können Sie Bestellung A1001 verfolgen: https://www.dhl.de/track?id=JJD000390007")
    assert canned.get("tracking", "fr").locale == "en"


def test_unknown_variable_is_a_clear_error() -> None:
    with pytest.raises(UnknownVariable) as info:
        render("Refund {{order.refund_id}} is on its way", {"order": {"number": "A1001"}})
    assert "{{order.refund_id}}" in str(info.value) and "{{order.number}}" in str(info.value)
    with pytest.raises(UnknownVariable):
        render("Tracking: {{order.tracking_url}}", {"order": {"tracking_url": None}})
