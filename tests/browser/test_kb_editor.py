"""The KB editor in a real browser: a content owner edits and publishes an article and the bot's answer
changes without a restart, rolls it back, tries questions in German and Japanese, and turns a group of
unanswered questions into a new article. Agents can read but not edit."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import DEMO_PROJECT, NightdeskServer
from tests.browser.test_widget import WIDGET, bubbles, open_widget, send, wait_for_replies
from tests.servers import RedisServer

pytestmark = pytest.mark.browser
TOKEN = "kb-editor-test-admin-token"
ASK_RETURNS = "How many days do I have to send an item back?"


@pytest.fixture(scope="module")
def kb_server(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NightdeskServer]:
    base = tmp_path_factory.mktemp("kb-editor")
    project = base / "project"
    shutil.copytree(DEMO_PROJECT, project, ignore=shutil.ignore_patterns("var"))
    server = NightdeskServer(base / "var", redis_server.url, env={"NIGHTDESK_ADMIN_TOKEN": TOKEN},
                             project=project).start()
    admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    assert admin.post("/api/v1/console/teams", json={"name": "content", "timezone": "Asia/Shanghai",
                                                     "languages": ["en", "de"]}).status_code == 201
    for login, roles in (("olga", ["content_owner"]), ("andy", ["agent"])):
        response = admin.post("/api/v1/console/agents", json={"login": login, "password": f"{login}-password",
                                                              "team": "content", "roles": roles,
                                                              "languages": ["en", "de"],
                                                              "display_name": login.title()})
        assert response.status_code == 201, response.text
    response = admin.post("/api/v1/kb/import")
    assert response.status_code == 200, response.text
    admin.close()
    yield server
    server.stop()


def open_editor(browser: Any, server: NightdeskServer, who: str = "olga") -> Any:
    context = browser.new_context(locale="en-GB", timezone_id="Europe/Berlin")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    page.goto(server.url + "/kb")
    page.get_by_label("Login").fill(who)
    page.get_by_label("Password").fill(f"{who}-password")
    page.get_by_role("button", name="Log in").click()
    page.locator("#articles .article").first.wait_for(timeout=20_000)
    return page


def try_it(page: Any, question: str, locale: str = "") -> None:
    page.get_by_role("button", name="Try it").click()
    page.get_by_label("Shopper question").fill(question)
    page.get_by_label("Shopper language").select_option(locale)
    page.get_by_role("button", name="Ask").click()
    page.locator("#try-article").wait_for(timeout=20_000)


def test_edit_publish_changes_the_answer_then_roll_back(kb_server: NightdeskServer, browser: Any) -> None:
    page = open_editor(browser, kb_server)
    try_it(page, ASK_RETURNS, "en")
    assert page.locator("#try-article").inner_text() == "returns-refunds"
    assert "30 days" in page.locator("#try-answer").inner_text()

    page.get_by_role("button", name="Articles").click()
    page.get_by_label("Search articles").fill("returns")
    page.locator('#articles .article[data-id="returns-refunds"]').click()
    page.locator("#edit-locale", has_text="en").wait_for()
    body = page.locator("#body")
    body.fill(body.input_value().replace("within **30 days of delivery**", "within **45 days of delivery**"))
    assert "45 days of delivery" in page.locator("#preview").inner_text()  # live Markdown preview
    page.get_by_role("button", name="Publish").click()
    page.locator("#editor-status", has_text="Published version 2").wait_for(timeout=60_000)

    # The German translation is now marked outdated, side by side with the others.
    assert page.locator('#locales .locale[data-locale="de"] .badge', has_text="outdated").is_visible()
    assert page.locator('#articles .article[data-id="returns-refunds"]', has_text="de outdated").is_visible()

    try_it(page, ASK_RETURNS, "en")
    assert "45 days" in page.locator("#try-answer").inner_text()
    # The bot's own search API (what the engine uses) answers with the new version, no restart.
    answer = httpx.post(kb_server.url + "/api/v1/kb/search", json={"query": ASK_RETURNS, "locale": "en"},
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()
    assert answer["candidates"][0]["version"] == 2 and "45 days" in answer["candidates"][0]["answer"]

    page.get_by_role("button", name="Articles").click()
    page.get_by_role("button", name="Diff v1→v2").click()
    diff = page.locator("#diff")
    diff.locator(".add").first.wait_for(timeout=10_000)
    assert "45 days" in diff.locator(".add").first.inner_text()
    assert "30 days" in diff.locator(".del").first.inner_text()
    page.get_by_role("button", name="Roll back to v1").click()
    page.locator("#editor-status", has_text="version 3 is a copy of v1").wait_for(timeout=60_000)
    try_it(page, ASK_RETURNS, "en")
    assert "30 days" in page.locator("#try-answer").inner_text()
    assert not page.js_errors


def test_try_it_in_german_and_japanese(kb_server: NightdeskServer, browser: Any) -> None:
    page = open_editor(browser, kb_server)
    try_it(page, "Muss ich Zoll oder Einfuhrumsatzsteuer zahlen, wenn das Paket ankommt?")
    assert page.locator("#try-article").inner_text() == "customs-duties"
    assert page.locator("#try-served").inner_text() == "de"
    assert "would answer" in page.locator("#try-verdict").inner_text()
    assert page.locator("#try-runnerups li").count() >= 1

    try_it(page, "商品を返品したいのですが、どうすればいいですか？")
    assert page.locator("#try-article").inner_text() == "returns-refunds"
    assert page.locator("#try-served").inner_text() == "ja"
    assert "30日以内" in page.locator("#try-answer").inner_text()

    try_it(page, "パスワードを忘れてしまいました。再設定の方法は？", "ja")
    assert page.locator("#try-article").inner_text() == "password-reset"
    assert page.locator("#try-served").inner_text() == "en"
    assert page.locator("#try-result .badge", has_text="fallback").is_visible()
    assert not page.js_errors


def _log_unanswered(server: NightdeskServer) -> None:
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from knowledge_base.service import KnowledgeBase

    async def log() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{Path(server.var_dir) / 'nightdesk.db'}")
        kb = KnowledgeBase(async_sessionmaker(engine, expire_on_commit=False))
        for text, lang, reason in (("Can you gift wrap my order?", "en", "fallback"),
                                   ("Könnt ihr das als Geschenk verpacken?", "de", "fallback"),
                                   ("ギフト包装はできますか？", "ja", "unanswered_part")):
            await kb.log_unanswered(text, reason=reason, language=lang, channel="widget", conversation_id="c1")
        await engine.dispose()

    # Playwright's sync API owns this thread's event loop; the service runs on a loop of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, log()).result()


def test_new_article_from_an_unanswered_group(kb_server: NightdeskServer, browser: Any) -> None:
    _log_unanswered(kb_server)
    page = open_editor(browser, kb_server)
    page.get_by_role("button", name="Unanswered").click()
    group = page.locator(".group", has_text="Can you gift wrap my order?")
    group.wait_for(timeout=30_000)
    assert "3 messages" in group.inner_text() and "ja ×1" in group.inner_text()
    assert group.locator(".reasons").inner_text() == "(fell back ×2, one of several questions ×1)"
    group.get_by_label("New article id").fill("gift-wrapping")
    group.get_by_label("New article title").fill("Gift wrapping")
    group.get_by_role("button", name="New article from this group").click()
    page.locator("#article-id", has_text="gift-wrapping").wait_for(timeout=20_000)
    assert "ギフト包装はできますか？" in page.locator("#questions").input_value()
    page.locator("#body").fill("We gift wrap any order for **USD 4.90**: tick *Gift wrap* at checkout.")
    page.get_by_role("button", name="Publish").click()
    page.locator("#editor-status", has_text="Published version 1").wait_for(timeout=60_000)

    try_it(page, "Könnt ihr meine Bestellung als Geschenk einpacken?", "de")
    assert page.locator("#try-article").inner_text() == "gift-wrapping"
    assert "4.90" in page.locator("#try-answer").inner_text()
    page.get_by_role("button", name="Unanswered").click()
    page.locator("#groups", has_text="Nothing unanswered").wait_for(timeout=20_000)
    assert not page.js_errors


def test_agents_read_but_cannot_edit(kb_server: NightdeskServer) -> None:
    with httpx.Client(base_url=kb_server.url, timeout=30) as client:
        assert client.get("/api/v1/kb/articles").status_code == 401
        token = client.post("/api/v1/auth/login", json={"login": "andy", "password": "andy-password"}) \
            .headers["x-session-token"]
        headers = {"Authorization": f"Bearer {token}"}
        listing = client.get("/api/v1/kb/articles", headers=headers)
        assert listing.status_code == 200 and any(a["article_id"] == "warranty" for a in listing.json()["articles"])
        edit = client.put("/api/v1/kb/articles/warranty/en/draft", headers=headers,
                          json={"title": "Warranty", "body": "none", "questions": []})
        assert edit.status_code == 403 and "content_owner" in edit.json()["detail"]
        assert client.post("/api/v1/kb/articles/warranty/en/rollback", headers=headers,
                           json={"version": 1}).status_code == 403


def test_the_kbs_markdown_answers_are_formatted_in_the_widget_and_the_shoppers_words_are_not(
        kb_server: NightdeskServer, page: Any) -> None:
    open_widget(page, kb_server)
    send(page, "what's your policy on returning items?")
    wait_for_replies(page, 1)
    theirs = page.locator(f"{WIDGET} li.nd-theirs[data-id] .nd-bubble").last
    # returns-refunds: "You can return items within **30 days of delivery**." and a numbered list.
    assert theirs.locator("strong", has_text="30 days of delivery").count() == 1, theirs.inner_text()
    assert theirs.locator("ol > li").count() == 3
    assert "**" not in theirs.inner_text()

    send(page, "How many business days does standard delivery usually take?")
    wait_for_replies(page, 2)
    table = page.locator(f"{WIDGET} li.nd-theirs[data-id] .nd-bubble").last.locator("table")
    assert table.count() == 1, bubbles(page, "theirs")[-1]
    assert table.locator("tbody tr").count() >= 5
    assert "United States" in table.locator("tbody tr").first.inner_text()

    # The shopper's own words are shown exactly as typed, asterisks and all.
    send(page, "thanks, **great** help")
    wait_for_replies(page, 3)
    assert bubbles(page, "mine")[-1] == "thanks, **great** help"
    assert page.locator(f"{WIDGET} li.nd-mine[data-id] .nd-bubble strong").count() == 0


def test_the_agent_reads_the_bots_markdown_answers_formatted(kb_server: NightdeskServer, browser: Any) -> None:
    context = browser.new_context(locale="en-GB", timezone_id="Europe/Berlin")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(kb_server.url + "/console")
    page.get_by_label("Login").fill("andy")
    page.get_by_label("Password").fill("andy-password")
    page.get_by_role("button", name="Log in").click()
    page.locator("#live", has_text="live").wait_for(timeout=15_000)

    admin = {"Authorization": f"Bearer {TOKEN}"}
    shopper = httpx.post(kb_server.url + "/api/v1/converse", timeout=60, headers=admin,
                         json={"sender": "markdown-reader", "text": "what's your policy on returning items?"})
    assert shopper.status_code == 200, shopper.text
    assert "**30 days of delivery**" in shopper.json()["replies"][0]["text"]
    escalated = httpx.post(kb_server.url + "/api/v1/console/escalations", timeout=30, headers=admin,
                           json={"conversation_id": shopper.json()["conversation_id"], "trigger": "manual",
                                 "priority_hint": "P3", "reason": "check the return", "language": "en"})
    assert escalated.status_code == 201, escalated.text
    page.locator(f'[data-ticket-id="{escalated.json()["ticket_id"]}"]').click(timeout=15_000)
    answer = page.locator(".msg.bot .rich").first
    answer.wait_for(timeout=15_000)
    # The console showed "**30 days of delivery**" with its asterisks.
    assert answer.locator("strong", has_text="30 days of delivery").count() == 1, answer.inner_text()
    assert answer.locator("ol > li").count() == 3 and "**" not in answer.inner_text()
    assert page.locator(".msg.in .rich").count() == 0  # the shopper's words stay as typed
    assert not errors, errors
    context.close()
