"""The agent console in a real browser with two agents: a P1 ticket reaches the agent who speaks the
shopper's language, the other agent cannot see or claim it, the reply reaches the shopper's widget,
and after hand-back the bot answers again."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.conftest import NightdeskServer
from tests.fakes.translators import FakeLibreTranslate
from tests.servers import RedisServer

pytestmark = pytest.mark.browser
TOKEN = "console-test-admin-token"


@pytest.fixture(scope="module")
def translator() -> Iterator[FakeLibreTranslate]:
    server = FakeLibreTranslate(api_key="lt-console-key").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def desk(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory,
         translator: FakeLibreTranslate) -> Iterator[NightdeskServer]:
    server = NightdeskServer(tmp_path_factory.mktemp("console-var"), redis_server.url,
                             env={"NIGHTDESK_ADMIN_TOKEN": TOKEN, "NIGHTDESK_TRANSLATOR": "libretranslate",
                                  "NIGHTDESK_TRANSLATOR_URL": translator.url,
                                  "NIGHTDESK_TRANSLATOR_API_KEY": "lt-console-key"}).start()
    admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert admin.post("/api/v1/console/teams", json={"name": "shenzhen", "timezone": "Asia/Shanghai",
                                                     "languages": ["de", "zh", "en"]}).status_code == 201
    for login, name, langs, roles in (("max", "Max Bauer", ["de", "en"], ["agent"]),
                                      ("lina", "Lina Chen", ["zh"], ["agent"]),
                                      ("wei", "Wei Zhang", ["en"], ["agent", "lead"])):
        response = admin.post("/api/v1/console/agents", json={"login": login, "password": f"{login}-password",
                                                              "team": "shenzhen", "display_name": name,
                                                              "languages": langs, "roles": roles})
        assert response.status_code == 201, response.text
    admin.close()
    yield server
    server.stop()


def db_rows(server: NightdeskServer, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(server.var_dir / "nightdesk.db") as conn:
        return list(conn.execute(sql, args))


def login(browser: Any, server: NightdeskServer, who: str, locale: str) -> Any:
    context = browser.new_context(locale=locale, timezone_id="Asia/Shanghai")
    context.grant_permissions(["notifications"], origin=server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    page.goto(server.url + "/console")
    page.get_by_label("Login").fill(who)
    page.get_by_label("Password").fill(f"{who}-password")
    page.get_by_role("button", name="Log in").click()
    page.locator("#live", has_text="live").wait_for(timeout=15_000)
    return page


def test_two_agents_p1_routing_reply_and_hand_back(desk: NightdeskServer, browser: Any) -> None:
    max_page = login(browser, desk, "max", "de-DE")
    lina_page = login(browser, desk, "lina", "zh-CN")

    shopper_context = browser.new_context(locale="de-DE", timezone_id="Europe/Berlin")
    shopper = shopper_context.new_page()
    shopper.goto(desk.url + "/")
    shopper.get_by_role("button", name=re.compile("Open chat")).click()
    shopper.get_by_label("Your message").fill("Mein Paket ist nicht da, ich mache eine Rückbuchung bei der Bank!")
    shopper.get_by_role("button", name="Send message").click()
    shopper.locator(".nd-msg.nd-theirs").first.wait_for(timeout=30_000)
    bot_replies_before = shopper.locator(".nd-msg.nd-theirs").count()

    (conversation_id,) = db_rows(desk, "SELECT id FROM conversations WHERE channel = 'widget' ORDER BY id DESC")[0]
    # The engine escalates a chargeback threat by itself when its NLU is loaded; staff can also escalate by
    # hand. Either way there is one ticket for this customer, and this call returns it.
    response = httpx.post(desk.url + "/api/v1/console/escalations", timeout=30,
                          headers={"Authorization": f"Bearer {TOKEN}"},
                          json={"conversation_id": conversation_id, "trigger": "threat", "priority_hint": "P1",
                                "reason": "chargeback threat", "language": "de"})
    assert response.status_code == 201, response.text
    ticket_id = response.json()["ticket_id"]
    assert response.json()["priority"] == "P1"
    assert db_rows(desk, "SELECT count(*) FROM handoff_tickets WHERE conversation_id = ?", str(conversation_id)) == [(1,)]

    # Max (German) gets it live, with a notification toast; Lina (Chinese only) does not see it.
    ticket_row = max_page.locator(f'[data-ticket-id="{ticket_id}"]')
    ticket_row.wait_for(timeout=15_000)
    assert ticket_row.get_attribute("data-priority") == "P1"
    max_page.locator(f'body[data-notified~="{ticket_id}"]').wait_for(timeout=30_000)
    max_page.locator(f'[data-ticket-id="{ticket_id}"]', has_text="routed to you").wait_for(timeout=10_000)
    lina_page.reload()
    lina_page.locator("#live", has_text="live").wait_for(timeout=15_000)
    assert lina_page.locator(f'[data-ticket-id="{ticket_id}"]').count() == 0
    assert lina_page.locator("#tickets", has_text="Nothing waiting for you.").is_visible()
    assert lina_page.request.post(f"{desk.url}/api/v1/console/tickets/{ticket_id}/claim").status == 403
    assert lina_page.request.get(f"{desk.url}/api/v1/console/tickets/{ticket_id}").status == 403

    # Max opens it: the conversation, the trigger and the summary are there; he claims and replies.
    ticket_row.click()
    max_page.locator(".msg.in", has_text="Rückbuchung").wait_for(timeout=10_000)
    assert max_page.locator("#context", has_text="threat").is_visible()
    assert max_page.locator("#summary li").count() >= 1
    max_page.get_by_role("button", name="Claim").click()
    max_page.locator("#ticket-status", has_text="claimed").wait_for(timeout=10_000)
    reply = "Hallo, hier ist Max. Ich kümmere mich sofort um Ihre Bestellung."
    max_page.locator("#reply-text").fill(reply)
    max_page.get_by_role("button", name="Send reply").click()
    shopper.locator(".nd-msg.nd-theirs", has_text="hier ist Max").wait_for(timeout=20_000)
    assert db_rows(desk, "SELECT author FROM messages WHERE text = ?", reply) == [("agent:max",)]

    # While Max owns the thread the bot stays silent.
    shopper.get_by_label("Your message").fill("Danke, ich warte.")
    shopper.get_by_role("button", name="Send message").click()
    max_page.locator(".msg.in", has_text="ich warte").wait_for(timeout=20_000)
    assert shopper.locator(".nd-msg.nd-theirs").count() == bot_replies_before + 1

    # Hand back: the bot answers the next message.
    max_page.get_by_role("button", name="Hand back to bot").click()
    max_page.locator("#toast", has_text="Handed back").wait_for(timeout=10_000)
    shopper.get_by_label("Your message").fill("Hallo?")
    shopper.get_by_role("button", name="Send message").click()
    shopper.locator(".nd-msg.nd-theirs").nth(bot_replies_before + 1).wait_for(timeout=30_000)
    last = db_rows(desk, "SELECT author FROM messages WHERE conversation_id = ? AND direction = 'out' "
                         "ORDER BY id DESC LIMIT 1", conversation_id)
    assert last == [("bot",)]

    for page in (max_page, lina_page):
        assert not page.js_errors, page.js_errors
        page.context.close()
    shopper_context.close()


def test_lead_reads_a_french_ticket_translated_and_replies_in_french(
        desk: NightdeskServer, browser: Any, translator: FakeLibreTranslate) -> None:
    shopper_context = browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    shopper = shopper_context.new_page()
    shopper.goto(desk.url + "/")
    shopper.get_by_role("button", name=re.compile("Open chat")).click()
    shopper.get_by_label("Your message").fill("Je veux un remboursement.")
    shopper.get_by_role("button", name="Send message").click()
    shopper.locator(".nd-msg.nd-theirs").first.wait_for(timeout=30_000)
    (conversation_id,) = db_rows(desk, "SELECT id FROM conversations WHERE channel = 'widget' ORDER BY id DESC")[0]
    response = httpx.post(desk.url + "/api/v1/console/escalations", timeout=30,
                          headers={"Authorization": f"Bearer {TOKEN}"},
                          json={"conversation_id": conversation_id, "trigger": "manual", "priority_hint": "P3",
                                "reason": "refund over the limit", "language": "fr"})
    assert response.status_code == 201, response.text
    ticket_id = response.json()["ticket_id"]

    # Nobody speaks French; the lead sees the team queue and reads the message with its translation.
    wei = login(browser, desk, "wei", "en-GB")
    wei.locator(f'[data-ticket-id="{ticket_id}"]').click()
    message = wei.locator(".msg.in", has_text="Je veux un remboursement.").first
    message.wait_for(timeout=15_000)
    assert message.locator(".translation").inner_text() == "I want a refund."

    # She starts typing the next message while the first is still being translated: the draft stays.
    translator.delay = 1.0
    wei.locator("#reply-text").fill("Your refund is being processed.")
    wei.get_by_label("Translate into the shopper's language").check()
    wei.get_by_role("button", name="Send reply").click()
    wei.locator("#reply-text").fill("One more thing.")
    shopper.locator(".nd-msg.nd-theirs", has_text="Votre remboursement est en cours.").wait_for(timeout=20_000)
    wei.locator(".msg.out", has_text="Votre remboursement est en cours.").wait_for(timeout=20_000)
    assert wei.locator("#reply-text").input_value() == "One more thing."
    assert any(r["path"] == "/translate" and r["body"]["target"] == "fr" for r in translator.requests)

    # The translator going down is said plainly, and nothing half-translated goes out.
    translator.delay = 8.0
    wei.get_by_role("button", name="Send reply").click()
    wei.locator("#composer-error", has_text="translation failed").wait_for(timeout=20_000)
    translator.delay = 0.0
    assert db_rows(desk, "SELECT count(*) FROM messages WHERE text LIKE '%One more thing%'") == [(0,)]

    # The lead passes the ticket to Max (who then sees it in his queue and in nobody else's).
    (max_id,) = db_rows(desk, "SELECT id FROM handoff_agents WHERE login = 'max'")[0]
    wei.get_by_label("Reassign to").select_option(value=str(max_id))
    wei.get_by_role("button", name="Reassign").click()
    wei.locator("#toast", has_text="Reassigned").wait_for(timeout=10_000)
    assert db_rows(desk, "SELECT agent_id FROM handoff_tickets WHERE id = ?", ticket_id) == [(max_id,)]
    assert not wei.js_errors, wei.js_errors
    wei.context.close()
    shopper_context.close()


def test_console_api_refuses_what_the_caller_may_not_do(desk: NightdeskServer) -> None:
    anonymous = httpx.get(desk.url + "/api/v1/console/tickets", timeout=10)
    assert anonymous.status_code == 401 and "log in" in anonymous.json()["detail"]
    with httpx.Client(base_url=desk.url, timeout=30) as lina:
        assert lina.post("/api/v1/auth/login", json={"login": "lina", "password": "lina-password"}).status_code == 200
        created = lina.post("/api/v1/console/agents", json={"login": "eve", "password": "eve-password-1",
                                                             "team": "shenzhen", "roles": ["admin"]})
        assert created.status_code == 403 and "admin" in created.json()["detail"]
        tickets = db_rows(desk, "SELECT id FROM handoff_tickets WHERE language != 'zh'")
        assert tickets, "the other tests in this module opened tickets"
        for (ticket_id,) in tickets:
            refused = lina.post(f"/api/v1/console/tickets/{ticket_id}/reply", json={"text": "hello"})
            assert refused.status_code == 403 and "not routed to you" in refused.json()["detail"], refused.text
            handed = lina.post(f"/api/v1/console/tickets/{ticket_id}/hand_back", json={})
            assert handed.status_code == 403 and "not routed to you" in handed.json()["detail"], handed.text
        assert lina.get("/api/v1/console/tickets").json()["tickets"] == []
    admin = httpx.Client(base_url=desk.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    no_agent = admin.get("/api/v1/console/tickets")
    assert no_agent.status_code == 403 and "agent account" in no_agent.json()["detail"]
    bad_team = admin.post("/api/v1/console/teams", json={"name": "mars", "timezone": "Mars/Olympus"})
    assert bad_team.status_code == 400 and "IANA" in bad_team.json()["detail"]
    admin.close()
