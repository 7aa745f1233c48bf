"""A shopper on the demo storefront chats through the embedded widget, in Debian Chromium."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.browser.conftest import NightdeskServer, germany_standard_days, greeting_texts

pytestmark = pytest.mark.browser

REPLY_TIMEOUT_MS = 60_000
RECONNECT_TIMEOUT_MS = 90_000
WIDGET = "#nightdesk-widget"


def open_widget(page: Any, server: NightdeskServer) -> None:
    page.goto(f"{server.url}/demo")
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    page.get_by_role("dialog", name="Nightdesk Demo Home").wait_for()


def send(page: Any, text: str) -> None:
    box = page.get_by_role("textbox", name="Your message")
    box.fill(text)
    box.press("Enter")


def bubbles(page: Any, side: str) -> list[str]:
    """Texts of the stored messages shown, `mine` (the shopper's) or `theirs` (bot and agents)."""
    return page.locator(f"{WIDGET} li.nd-{side}[data-id] .nd-bubble").all_inner_texts()  # type: ignore[no-any-return]


def wait_for_replies(page: Any, count: int, timeout: int = REPLY_TIMEOUT_MS) -> list[str]:
    page.locator(f"{WIDGET} li.nd-theirs[data-id]").nth(count - 1).wait_for(timeout=timeout)
    return bubbles(page, "theirs")


def shown_ids(page: Any) -> list[int]:
    return [int(x) for x in page.eval_on_selector_all(f"{WIDGET} li[data-id]", "els => els.map(e => e.dataset.id)")]


def server_history(server: NightdeskServer, token: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{server.url}/api/v1/widget/session", json={"session_token": token, "locale": "de-DE",
                                                                        "timezone": "Europe/Berlin"})
    response.raise_for_status()
    return response.json()["history"]  # type: ignore[no-any-return]


def stored_token(page: Any, server: NightdeskServer) -> str:
    raw = page.evaluate("key => localStorage.getItem(key)", f"nightdesk:{server.url}")
    return str(yaml.safe_load(raw)["token"])


def test_shopper_asks_a_question_and_gets_the_shops_answer(nightdesk: NightdeskServer, page: Any) -> None:
    open_widget(page, nightdesk)
    send(page, "Hello!")
    replies = wait_for_replies(page, 1)
    assert replies[0] in greeting_texts()

    send(page, "How long does shipping to Germany take?")
    replies = wait_for_replies(page, 2)
    low, high = germany_standard_days()
    assert re.search(rf"\b{low}\s*[–-]\s*{high}\b", replies[1]), replies[1]
    assert bubbles(page, "mine") == ["Hello!", "How long does shipping to Germany take?"]

    # The chat is open and the page visible: the shop sees the replies as read.
    token = stored_token(page, nightdesk)
    page.wait_for_function("""async ([url, token]) => {
        const r = await fetch(url + '/api/v1/widget/session', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify({session_token: token})});
        const s = await r.json();
        const out = s.history.filter(m => m.direction === 'out');
        return out.length >= 2 && out.every(m => m.status === 'read');
    }""", arg=[nightdesk.url, token], polling=500, timeout=20_000)


def test_typing_indicator_shows_while_the_bot_works(nightdesk: NightdeskServer, page: Any) -> None:
    open_widget(page, nightdesk)
    page.locator(f"{WIDGET}[data-connected='true']").wait_for()
    # Record every time the dots become visible: the bot may be quicker than a screenshot.
    page.evaluate("""() => {
        const dots = document.querySelector('#nightdesk-widget').shadowRoot.querySelector('.nd-typing');
        window.__typingShown = 0;
        new MutationObserver(() => { if (!dots.hidden) window.__typingShown += 1; })
            .observe(dots, {attributes: true, attributeFilter: ['hidden']});
    }""")
    send(page, "What is your return policy?")
    wait_for_replies(page, 1)
    assert page.evaluate("window.__typingShown") >= 1
    page.locator(f"{WIDGET} .nd-typing").wait_for(state="hidden")


def test_returning_shopper_sees_the_history_after_reload(nightdesk: NightdeskServer, page: Any, browser: Any) -> None:
    open_widget(page, nightdesk)
    send(page, "Hi there")
    first = wait_for_replies(page, 1)
    ids_before = shown_ids(page)

    page.reload()
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    page.locator(f"{WIDGET} li.nd-theirs[data-id]").first.wait_for()
    assert shown_ids(page) == ids_before
    assert bubbles(page, "mine") == ["Hi there"]
    assert bubbles(page, "theirs") == first

    # Another shopper (another browser profile) starts with an empty chat.
    other = browser.new_context()
    try:
        stranger = other.new_page()
        open_widget(stranger, nightdesk)
        stranger.locator(f"{WIDGET}[data-connected='true']").wait_for()
        assert shown_ids(stranger) == []
    finally:
        other.close()


def test_html_in_a_message_is_shown_as_text_never_run(nightdesk: NightdeskServer, page: Any) -> None:
    payload = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>bold</b>'
    open_widget(page, nightdesk)
    send(page, payload)
    wait_for_replies(page, 1)
    assert bubbles(page, "mine") == [payload]
    mine = page.locator(f"{WIDGET} li.nd-mine[data-id] .nd-bubble")
    assert mine.locator("img, script, b").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_messages_typed_while_the_server_restarts_arrive_once(nightdesk: NightdeskServer, page: Any) -> None:
    open_widget(page, nightdesk)
    send(page, "Hello!")
    wait_for_replies(page, 1)

    nightdesk.stop()
    page.locator(f"{WIDGET}[data-connected='false']").wait_for(timeout=30_000)
    send(page, "Do you ship to Japan?")
    send(page, "And how much does express cost?")
    pending = page.locator(f"{WIDGET} li[data-pending='1']")
    assert pending.count() == 2

    nightdesk.start()
    page.locator(f"{WIDGET} li[data-pending='1']").first.wait_for(state="detached", timeout=RECONNECT_TIMEOUT_MS)
    page.locator(f"{WIDGET} li[data-pending='1']").last.wait_for(state="detached", timeout=RECONNECT_TIMEOUT_MS)
    wait_for_replies(page, 3, timeout=RECONNECT_TIMEOUT_MS)

    assert bubbles(page, "mine") == ["Hello!", "Do you ship to Japan?", "And how much does express cost?"]
    ids = shown_ids(page)
    assert len(ids) == len(set(ids)), "a message is shown twice"
    stored = server_history(nightdesk, stored_token(page, nightdesk))
    assert [m["text"] for m in stored if m["direction"] == "in"] == bubbles(page, "mine")
    assert {m["id"] for m in stored if m["direction"] == "in"} <= set(ids)
    assert set(ids) <= {m["id"] for m in stored}


def test_message_over_the_length_limit_is_refused_with_a_notice(nightdesk: NightdeskServer, page: Any) -> None:
    open_widget(page, nightdesk)
    page.locator(f"{WIDGET}[data-connected='true']").wait_for()
    limit = int(re.sub(r"\D", "", page.locator(f"{WIDGET} .nd-counter").inner_text().split("/")[1]))
    box = page.get_by_role("textbox", name="Your message")
    box.fill("a" * (limit + 1))
    notice = page.locator(f"{WIDGET} .nd-notice")
    assert "limit" in notice.inner_text()
    assert page.get_by_role("button", name="Send message").is_disabled()
    box.press("Enter")
    assert page.locator(f"{WIDGET} li.nd-msg").count() == 0
    box.fill("a" * limit)
    assert notice.is_hidden()
    assert page.get_by_role("button", name="Send message").is_enabled()


def test_offline_shop_asks_for_an_email_and_keeps_it(nightdesk_offline: NightdeskServer, page: Any) -> None:
    open_widget(page, nightdesk_offline)
    form = page.get_by_role("form", name="Leave your email")
    form.wait_for()
    email = form.get_by_role("textbox", name="Your email address")

    email.fill("not-an-address")
    form.get_by_role("button", name="Save").click()
    notice = page.locator(f"{WIDGET} .nd-email-notice")
    page.wait_for_function(
        "() => document.querySelector('#nightdesk-widget').shadowRoot"
        ".querySelector('.nd-email-notice').textContent.length > 0")
    assert "email address" in notice.inner_text()

    email.fill("Shopper.Night@Example.COM")
    form.get_by_role("button", name="Save").click()
    page.wait_for_function(
        "() => document.querySelector('#nightdesk-widget').shadowRoot"
        ".querySelector('.nd-email-notice').textContent.startsWith('Thanks')")
    assert "Shopper.Night@example.com" in notice.inner_text()

    # The chat itself still works while the team is away.
    send(page, "Hello!")
    assert wait_for_replies(page, 1)[0] in greeting_texts()


@pytest.fixture
def other_shop(nightdesk: NightdeskServer, tmp_path: Path) -> Iterator[str]:
    """A seller's own shop page on another origin, with the snippet pasted in as the README says."""
    (tmp_path / "index.html").write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Another shop</title>"
        "<style>button { background: red; font-size: 40px; }</style></head>"
        "<body><h1>Another shop</h1>"
        f"<script src='{nightdesk.url}/widget.js' data-nightdesk-url='{nightdesk.url}' "
        "data-title='Nightdesk Demo Home' data-color='#225588' defer></script></body></html>",
        encoding="utf-8",
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    # "localhost" and "127.0.0.1" are different origins: the widget's calls are cross-origin.
    yield f"http://localhost:{httpd.server_address[1]}/index.html"
    httpd.shutdown()
    httpd.server_close()


def test_a_shop_on_another_domain_falls_back_to_long_polling_when_websockets_are_blocked(
    nightdesk: NightdeskServer, page: Any, other_shop: str
) -> None:
    blocked: list[str] = []

    def refuse(ws: Any) -> None:  # what a proxy that drops WebSocket upgrades does
        blocked.append(ws.url)
        ws.close()

    page.route_web_socket(re.compile(r".*/ws/widget.*"), refuse)
    page.goto(other_shop)
    page.get_by_role("button", name=re.compile("^Open chat")).click()
    page.locator(f"{WIDGET}[data-transport='poll']").wait_for(timeout=60_000)
    send(page, "Hello!")
    assert wait_for_replies(page, 1)[0] in greeting_texts()
    assert bubbles(page, "mine") == ["Hello!"]
    assert blocked, "the widget never tried a WebSocket"
