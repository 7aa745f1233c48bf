"""Archiving an article: a content owner archives it in the KB editor and the bot stops answering with it;
`nightdesk kb` on the same database and Redis brings it back and a changed file in, while the server runs,
and the server serves them without a restart. Agents cannot archive."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import DEMO_PROJECT, NightdeskServer
from tests.servers import RedisServer

pytestmark = pytest.mark.browser
TOKEN = "kb-archive-test-admin-token"
ASK_RETURNS = "How many days do I have to send an item back?"
ROOT = Path(__file__).resolve().parents[2]


def kb_cli(server: NightdeskServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`nightdesk kb ...` in its own process, on the server's database and Redis."""
    env = dict(os.environ, NIGHTDESK_VAR_DIR=str(server.var_dir), REDIS_URL=server.redis_url, OMP_NUM_THREADS="1")
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "bot.cli", "kb", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def server(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NightdeskServer]:
    base = tmp_path_factory.mktemp("kb-archive")
    project = base / "project"
    shutil.copytree(DEMO_PROJECT, project, ignore=shutil.ignore_patterns("var"))
    server = NightdeskServer(base / "var", redis_server.url, env={"NIGHTDESK_ADMIN_TOKEN": TOKEN}, project=project)
    # The KB is imported from the command line before any server runs.
    imported = kb_cli(server, "import", "--project", str(project), "--author", "seller")
    assert imported.returncode == 0, imported.stderr
    server.start()
    admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    assert admin.post("/api/v1/console/teams", json={"name": "content", "timezone": "Asia/Shanghai",
                                                     "languages": ["en"]}).status_code == 201
    for login, roles in (("olga", ["content_owner"]), ("andy", ["agent"])):
        response = admin.post("/api/v1/console/agents", json={"login": login, "password": f"{login}-password",
                                                              "team": "content", "roles": roles,
                                                              "display_name": login.title()})
        assert response.status_code == 201, response.text
    admin.close()
    yield server
    server.stop()


def staff(server: NightdeskServer, login: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=120)
    response = client.post("/api/v1/auth/login", json={"login": login, "password": f"{login}-password"})
    assert response.status_code == 200, response.text
    return client


def candidates(client: httpx.Client) -> list[str]:
    response = client.post("/api/v1/kb/search", json={"query": ASK_RETURNS, "locale": "en", "k": 5})
    assert response.status_code == 200, response.text
    return [c["article_id"] for c in response.json()["candidates"]]


def test_archive_in_the_editor_removes_the_article_from_search(server: NightdeskServer, browser: Any) -> None:
    olga = staff(server, "olga")
    assert candidates(olga)[0] == "returns-refunds"
    assert staff(server, "andy").post("/api/v1/kb/articles/returns-refunds/archive").status_code == 403

    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.goto(server.url + "/kb")
    page.get_by_label("Login").fill("olga")
    page.get_by_label("Password").fill("olga-password")
    page.get_by_role("button", name="Log in").click()
    page.locator('#articles .article[data-id="returns-refunds"]').click()
    page.locator("#article-id", has_text="returns-refunds").wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Archive article").click()
    page.locator("#toast", has_text="archived").wait_for(timeout=20_000)
    assert page.locator('#articles .article[data-id="returns-refunds"]').count() == 0
    context.close()

    # The server that archived serves the new KB version as soon as the request returns.
    assert "returns-refunds" not in candidates(olga)
    listed = olga.get("/api/v1/kb/articles", params={"archived": "true", "q": "returns-refunds"}).json()
    assert [(a["article_id"], a["archived"]) for a in listed["articles"]] == [("returns-refunds", True)]
    assert olga.post("/api/v1/kb/articles/no-such-article/archive").status_code == 404

    # Restored from the command line while the server runs: announced through Redis, served without a restart.
    restored = kb_cli(server, "archive", "returns-refunds", "--restore")
    assert restored.returncode == 0, restored.stderr
    version = int(restored.stdout.rsplit("KB version", 1)[1].split()[0])
    wait_for_kb_version(olga, version)
    assert candidates(olga)[0] == "returns-refunds"


def test_a_cli_import_reaches_the_running_server(server: NightdeskServer) -> None:
    changed = server.project / "kb" / "returns-refunds.en.md"
    changed.write_text(changed.read_text(encoding="utf-8").replace("30 days", "45 days"), encoding="utf-8")
    imported = kb_cli(server, "import", "--project", str(server.project), "--author", "olga")
    assert imported.returncode == 0, imported.stderr
    assert "0 created, 1 updated" in imported.stdout
    olga = staff(server, "olga")
    wait_for_kb_version(olga, int(imported.stdout.rsplit("KB version", 1)[1].split(",")[0]))
    response = olga.post("/api/v1/kb/search", json={"query": ASK_RETURNS, "locale": "en"})
    best = response.json()["candidates"][0]
    assert (best["article_id"], best["version"]) == ("returns-refunds", 2)
    assert "45 days" in best["answer"]


def wait_for_kb_version(client: httpx.Client, version: int) -> None:
    """The server follows announcements in the background; wait (on events, not a fixed time) until it serves it."""
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        served = client.get("/api/v1/kb/articles").json()["kb_version"]
        if served >= version:
            return
        time.sleep(0.2)
    raise AssertionError(f"the server still serves KB version {served}, not {version}")
