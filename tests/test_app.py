"""The whole product as an operator and an integrator meet it: `nightdesk run --demo` on real servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import NightdeskServer
from tests.servers import RedisServer

TOKEN = "test-admin-token"


@pytest.fixture(scope="module")
def demo(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NightdeskServer]:
    server = NightdeskServer(tmp_path_factory.mktemp("app-var"), redis_server.url,
                             env={"NIGHTDESK_DEMO": "true", "NIGHTDESK_ADMIN_TOKEN": TOKEN}).start()
    yield server
    server.stop()


def converse(server: NightdeskServer, sender: str, text: str, **extra: object) -> dict:
    response = httpx.post(f"{server.url}/api/v1/converse", json={"sender": sender, "text": text, **extra},
                          headers={"authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_health_ready_and_metrics(demo: NightdeskServer) -> None:
    assert httpx.get(f"{demo.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{demo.url}/ready").json()
    assert ready["status"] == "ready" and ready["checks"] == {"database": "ok", "redis": "ok", "model": "ok"}
    converse(demo, "metrics-shopper", "hello")
    metrics = httpx.get(f"{demo.url}/metrics").text
    assert 'nightdesk_inbound_messages_total{channel="api",duplicate="no"}' in metrics


def test_converse_needs_the_admin_token(demo: NightdeskServer) -> None:
    response = httpx.post(f"{demo.url}/api/v1/converse", json={"sender": "x", "text": "hi"})
    assert response.status_code == 401
    wrong = httpx.post(f"{demo.url}/api/v1/converse", json={"sender": "x", "text": "hi"},
                       headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_a_malformed_turn_is_rejected_with_what_is_wrong(demo: NightdeskServer) -> None:
    response = httpx.post(f"{demo.url}/api/v1/converse", json={"sender": "x"},
                          headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 400
    assert "text" in response.json()["detail"]


def test_a_german_knowledge_question_is_answered_in_german_with_a_citation(demo: NightdeskServer) -> None:
    body = converse(demo, "de-shopper", "Muss ich in Deutschland Zoll oder Einfuhrumsatzsteuer bezahlen?")
    decision = body["decision"]
    assert decision["kind"] == "answer" and decision["language"] == "de"
    assert decision["article_id"] == "customs-duties" and decision["article_version"] >= 1
    assert body["trace"]["kb"]["candidates"], "the trace lists the KB candidates with their scores"
    assert body["replies"] and body["replies"][0]["language"] == "de"


def test_each_question_of_a_message_is_answered_and_cited(demo: NightdeskServer) -> None:
    body = converse(demo, "two-questions", "How long does shipping to Germany take, and do I have to pay customs?")
    decision = body["decision"]
    assert decision["action"] == "action_shipping_estimate"
    [also] = decision["also_answered"]
    assert also["article_id"] == "customs-duties" and also["article_version"] >= 1 and also["answer_locale"] == "en"
    assert body["replies"][0]["text"].startswith("Delivery to Germany") and "IOSS" in body["replies"][1]["text"]


def test_a_question_the_kb_cannot_answer_beside_one_it_can_goes_to_the_review_list(demo: NightdeskServer) -> None:
    body = converse(demo, "gift-wrap", "What's your return policy? And do you offer gift wrapping?")
    assert body["decision"]["article_id"] == "returns-refunds"
    assert 'answer to "do you offer gift wrapping"' in body["replies"][-1]["text"]
    groups = httpx.get(f"{demo.url}/api/v1/kb/unanswered/groups", headers={"authorization": f"Bearer {TOKEN}"},
                       timeout=30).json()["groups"]
    [group] = [g for g in groups if "do you offer gift wrapping?" in g["examples"]]
    assert group["reasons"].get("unanswered_part") == 1
    assert not any("return policy" in example for g in groups for example in g["examples"])


def test_a_guessed_order_number_with_a_wrong_email_reveals_nothing(demo: NightdeskServer) -> None:
    # ND-100105 is in transit with tracking number UA696272698CN (examples/demo-store/store/orders.json).
    converse(demo, "guesser", "where is my order ND-100105?")
    wrong = converse(demo, "guesser", "my email is not.the.owner@example.com")
    unknown = converse(demo, "guesser-2", "where is my order ND-999999?")
    unknown = converse(demo, "guesser-2", "my email is not.the.owner@example.com")
    wrong_text = " ".join(r["text"] for r in wrong["replies"])
    assert "UA696272698CN" not in wrong_text and "China Post" not in wrong_text
    assert wrong_text == " ".join(r["text"] for r in unknown["replies"]), "wrong pair and unknown order look alike"
    owner = converse(demo, "owner", "where is my order ND-100105?")
    owner = converse(demo, "owner", "chloe.bernard311@example.org")
    assert "UA696272698CN" in " ".join(r["text"] for r in owner["replies"])
    assert owner["decision"]["kind"] == "act" and owner["decision"]["action"] == "action_order_status"


def test_repeated_wrong_guesses_are_rate_limited(demo: NightdeskServer) -> None:
    rules = []
    for attempt in range(5):
        rules.append(converse(demo, "brute", f"status of order ND-1001{attempt:02d}")["decision"]["rule"])
        rules.append(converse(demo, "brute", f"guess{attempt}@example.com")["decision"]["rule"])
    assert "ownership_rate_limited" not in rules
    # Five wrong proofs later, even the right email for a real order is refused for a while.
    converse(demo, "brute", "where is my order ND-100105?")
    after = converse(demo, "brute", "where is my order ND-100105? my email is chloe.bernard311@example.org")
    assert after["decision"]["rule"] == "ownership_rate_limited"
    assert "UA696272698CN" not in " ".join(r["text"] for r in after["replies"])


def test_a_threat_escalates_and_the_bot_then_stays_silent(demo: NightdeskServer) -> None:
    first = converse(demo, "angry", "This is a scam, I will file a chargeback with my bank and sue you!")
    assert first["decision"]["kind"] in ("escalate", "after_hours")
    assert first["decision"]["ticket_id"]
    assert any(t["name"] == "threat" for t in first["decision"]["triggers"])
    second = converse(demo, "angry", "hello? anyone there?")
    assert second["decision"]["kind"] == "silent" and second["replies"] == []


def test_an_invoice_link_serves_a_pdf(demo: NightdeskServer) -> None:
    converse(demo, "invoice", "can I get the invoice for order ND-100106")
    body = converse(demo, "invoice", "maya.singh21@example.com")
    text = " ".join(r["text"] for r in body["replies"])
    link = next(word for word in text.split() if "/files/invoices/" in word).rstrip(".,)")
    pdf = httpx.get(link if link.startswith("http") else f"{demo.url}{link}")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")


def test_wrong_settings_stop_start_up_with_the_setting_named(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bot.cli", "run", "--no-train"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "NIGHTDESK_PORT": "99999", "NIGHTDESK_VAR_DIR": str(tmp_path)},
                            timeout=120)
    assert result.returncode == 2
    assert "NIGHTDESK_PORT" in result.stderr


def test_the_agent_sees_the_shoppers_orders_and_why_it_escalated(demo: NightdeskServer) -> None:
    converse(demo, "upset-owner", "where is my order ND-100105?")
    converse(demo, "upset-owner", "chloe.bernard311@example.org")
    escalated = converse(demo, "upset-owner", "This is taking forever, I will open a chargeback with my bank!")
    ticket_id = escalated["decision"]["ticket_id"]
    assert ticket_id
    lead = httpx.Client(base_url=demo.url, timeout=30)
    assert lead.post("/api/v1/auth/login", json={"login": "lead", "password": "demo-lead"}).status_code == 200
    detail = lead.get(f"/api/v1/console/tickets/{ticket_id}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["ticket"]["priority"] == "P1"  # a chargeback threat with an order in transit
    context = body["context"]
    assert any(t["name"] == "threat" for t in body["ticket"]["triggers"])
    order = next(o for o in context["orders"] if o["number"] == "ND-100105")
    assert order["status"] == "in_transit" and order["tracking_url"].startswith("https://")
    shopper_lines = [m["text"] for m in body["messages"] if m["direction"] == "in"]
    assert "chloe.bernard311@example.org" in shopper_lines
    assert context["summary"], "the agent gets a short summary of the conversation"


def test_an_agent_reply_can_carry_a_file_the_shopper_can_open(demo: NightdeskServer) -> None:
    escalated = converse(demo, "needs-a-photo", "I want to speak to a human please, the lamp arrived broken")
    ticket_id = escalated["decision"]["ticket_id"]
    lead = httpx.Client(base_url=demo.url, timeout=30)
    lead.post("/api/v1/auth/login", json={"login": "lead", "password": "demo-lead"})
    refused = lead.post(f"/api/v1/console/tickets/{ticket_id}/attachments",
                        files={"file": ("evil.html", b"<script>alert(1)</script>", "text/html")})
    assert refused.status_code == 415
    pdf = b"%PDF-1.4\n% return label\n"
    uploaded = lead.post(f"/api/v1/console/tickets/{ticket_id}/attachments",
                         files={"file": ("return label.pdf", pdf, "application/pdf")})
    assert uploaded.status_code == 200, uploaded.text
    attachment = uploaded.json()
    sent = lead.post(f"/api/v1/console/tickets/{ticket_id}/reply",
                     json={"text": "Here is your return label.", "attachments": [attachment]})
    assert sent.status_code == 200, sent.text
    message = sent.json()["message"]
    assert message["attachments"][0]["url"] == attachment["url"]
    assert httpx.get(attachment["url"]).content == pdf
    empty = lead.post(f"/api/v1/console/tickets/{ticket_id}/reply", json={"text": " "})
    assert empty.status_code == 400


def test_the_same_unsettled_order_raised_again_on_another_channel_joins_its_ticket(demo: NightdeskServer) -> None:
    # ND-100110 is in transit with FedEx for charlotte.smith802@example.net (orders.json).
    converse(demo, "repeat-email", "where is my order ND-100110?")
    converse(demo, "repeat-email", "charlotte.smith802@example.net")
    first = converse(demo, "repeat-email", "I would like to talk to a person about it please")
    assert first["decision"]["ticket_id"]
    converse(demo, "repeat-whatsapp", "where is my order ND-100110?", channel="whatsapp")
    proven = converse(demo, "repeat-whatsapp", "charlotte.smith802@example.net", channel="whatsapp")
    assert proven["decision"]["kind"] == "act" and "613309851179" in proven["replies"][0]["text"]
    again = converse(demo, "repeat-whatsapp", "order ND-100110 still has not arrived", channel="whatsapp")
    decision = again["decision"]
    assert decision["kind"] in ("escalate", "after_hours")
    assert any(t["name"] == "repeat_contact" for t in decision["triggers"])
    assert decision["ticket_id"] == first["decision"]["ticket_id"], "one ticket per customer and order"


def test_converse_replies_are_delivered_by_the_response_itself(demo: NightdeskServer) -> None:
    import sqlite3

    body = converse(demo, "delivery-shopper", "hello")
    ids = [r["id"] for r in body["replies"]]
    assert ids
    path = demo.effective_database_url.split("///", 1)[1]
    with sqlite3.connect(path) as db:
        statuses = {s for (s,) in db.execute(
            f"SELECT status FROM messages WHERE id IN ({','.join('?' * len(ids))})", ids)}
    assert statuses == {"delivered"}


def test_a_shopper_in_a_language_the_shop_does_not_speak_goes_to_a_person(demo: NightdeskServer) -> None:
    body = converse(demo, "polish-shopper", "Dzień dobry, czy mogę zwrócić dywan, który kupiłam w zeszłym tygodniu?")
    assert body["trace"]["foreign_language"] == "pl"
    assert body["trace"]["language"] == "en"  # the shop's fallback, not the closest configured language
    assert body["decision"]["kind"] in ("escalate", "after_hours") and body["decision"]["ticket_id"]
    assert "unsupported_language" in body["decision"]["rule"]
