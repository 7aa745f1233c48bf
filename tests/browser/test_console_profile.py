"""One customer across channels, as an agent handles it in the console: the profile shows every identity
and conversation, and a lead merges two profiles and splits them again, each step in the audit trail."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.conftest import NightdeskServer
from tests.servers import RedisServer

pytestmark = pytest.mark.browser
TOKEN = "profile-test-token"


@pytest.fixture(scope="module")
def shop(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NightdeskServer]:
    # Its own Redis database would still share pub/sub with other servers; this module runs alone.
    server = NightdeskServer(tmp_path_factory.mktemp("profile-var"), redis_server.url,
                             env={"NIGHTDESK_DEMO": "true", "NIGHTDESK_ADMIN_TOKEN": TOKEN}).start()
    yield server
    server.stop()


def converse(server: NightdeskServer, sender: str, text: str) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/api/v1/converse", json={"sender": sender, "text": text},
                          headers={"authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def customer_of(server: NightdeskServer, conversation_id: int) -> int:
    with sqlite3.connect(server.var_dir / "nightdesk.db") as conn:
        return int(conn.execute("select customer_id from conversations where id = ?", (conversation_id,)).fetchone()[0])


def test_a_lead_merges_two_profiles_and_splits_them_again(shop: NightdeskServer, browser: Any) -> None:
    escalated = converse(shop, "profile-a", "I want to talk to a human agent please")
    ticket_id = escalated["decision"]["ticket_id"]
    assert ticket_id
    customer_a = customer_of(shop, escalated["conversation_id"])
    customer_b = customer_of(shop, converse(shop, "profile-b", "hello")["conversation_id"])

    page = browser.new_context(locale="en-US").new_page()
    page.on("dialog", lambda dialog: dialog.accept("same phone, different person after all"))
    page.goto(shop.url + "/console")
    page.get_by_label("Login").fill("lead")
    page.get_by_label("Password").fill("demo-lead")
    page.get_by_role("button", name="Log in").click()
    page.locator(f'[data-ticket-id="{ticket_id}"]').click()
    profile = page.locator("#profile")
    try:
        profile.get_by_text(f"customer #{customer_a}").wait_for(timeout=15_000)
    except Exception:
        raise AssertionError(page.locator("#context").inner_text()[-800:]) from None
    assert "api: profile-a" in profile.inner_text()

    page.fill("#merge-into", str(customer_b))
    page.fill("#merge-reason", "the shopper told me both chats are theirs")
    page.click("#merge")
    profile = page.locator("#profile")
    profile.get_by_text(f"(merged: #{customer_a})").wait_for(timeout=15_000)
    text = profile.inner_text()
    assert f"customer #{customer_b}" in text and "api: profile-a" in text and "api: profile-b" in text
    assert "agent:lead" in text and "the shopper told me both chats are theirs" in text

    page.click(f"text=Unmerge #{customer_a}")
    page.locator("#profile").get_by_text(f"customer #{customer_a}").wait_for(timeout=15_000)
    after = page.locator("#profile").inner_text()
    assert "merged:" not in after.split("\n")[0]
    assert "same phone, different person after all" in after
