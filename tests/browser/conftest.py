"""Browser-test fixtures: the real `nightdesk run` server (restartable) and Debian Chromium via Playwright."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.servers import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO_PROJECT = ROOT / "examples" / "demo-store"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = float(os.environ.get("NIGHTDESK_TEST_START_TIMEOUT", "180"))


def greeting_texts(project: Path = DEMO_PROJECT) -> list[str]:
    """The project's own greeting responses (domain.yml), in every language it has them."""
    domain = yaml.safe_load((project / "domain.yml").read_text(encoding="utf-8"))
    return [variant["text"] for variant in domain["responses"]["utter_greet"]]


def germany_standard_days(project: Path = DEMO_PROJECT) -> tuple[int, int]:
    seller = yaml.safe_load((project / "store" / "seller.yml").read_text(encoding="utf-8"))
    standard = next(m for m in seller["shipping"]["DE"] if m["method"] == "standard")
    return int(standard["min_days"]), int(standard["max_days"])


class NightdeskServer:
    """`python -m bot.cli run` as a subprocess on a fixed free port, so it can be stopped and started again
    at the same address (a widget in an open page reconnects to it)."""

    def __init__(self, var_dir: Path, redis_url: str, database_url: str | None = None,
                 env: dict[str, str] | None = None, project: Path = DEMO_PROJECT) -> None:
        self.var_dir = var_dir
        self.project = project
        self.port = free_port()
        self.redis_url = redis_url
        self.database_url = database_url
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = var_dir / "server.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.var_dir / 'nightdesk.db'}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> NightdeskServer:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        if self.starts == 0:
            # A fresh server gets a fresh Redis, like its fresh database: streams, consumer groups and
            # dedup keys left by an earlier server would otherwise point at another database's rows.
            # (A restart keeps everything: that is what the restart tests are about.)
            import redis

            client = redis.Redis.from_url(self.redis_url)
            client.flushdb()
            client.close()
        env = dict(os.environ)
        env.update({
            "NIGHTDESK_VAR_DIR": str(self.var_dir),
            "REDIS_URL": self.redis_url,
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "NIGHTDESK_LOG_JSON": "true",
        })
        env.pop("DATABASE_URL", None)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        log = self.log_path.open("ab")
        log.write(f"\n---- start #{self.starts + 1} ----\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--project", str(self.project),
             "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.starts += 1
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"nightdesk run exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"nightdesk run not healthy after {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def nightdesk(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NightdeskServer]:
    """The real server on the embedded SQLite default and the suite's real Redis."""
    server = NightdeskServer(tmp_path_factory.mktemp("nightdesk-var"), redis_server.url).start()
    yield server
    server.stop()


def closed_team_project(dest: Path) -> Path:
    """A copy of the demo project whose support team has no opening hours: nobody can answer live."""
    shutil.copytree(DEMO_PROJECT, dest, ignore=shutil.ignore_patterns("var"))
    staff_file = dest / "staff.yml"
    staff = yaml.safe_load(staff_file.read_text(encoding="utf-8"))
    for team in staff["teams"]:
        team["hours"] = {}
    staff_file.write_text(yaml.safe_dump(staff, allow_unicode=True), encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def nightdesk_offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NightdeskServer]:
    """The real server for a shop whose team is never on duty (the widget goes to offline mode).

    It runs next to `nightdesk`, so it gets a Redis server of its own: two Nightdesk deployments must
    never share streams or pub/sub channels.
    """
    base = tmp_path_factory.mktemp("nightdesk-offline")
    own_redis = RedisServer(base / "redis").start()
    server = NightdeskServer(base / "var", own_redis.url, project=closed_team_project(base / "project")).start()
    yield server
    server.stop()
    own_redis.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # Module scope: Playwright's sync API keeps an event loop running while it lives, which would
    # break the asyncio tests that run after the browser tests.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(locale="de-DE", timezone_id="Europe/Berlin")  # type: ignore[attr-defined]
    shop_page = context.new_page()
    errors: list[str] = []
    shop_page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield shop_page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
