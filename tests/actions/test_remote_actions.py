"""The remote action-server path: the same actions served by a real `python -m rasa_sdk` on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from actions.demo_store import DemoStore, load_demo_store
from actions.models import StoreBase
from actions.responses import ResponseCatalog
from actions.runner import ActionCall, ActionFailed, ActionServerUnavailable, RemoteActionRunner, load_domain
from actions.seller import SellerProfile
from tests.actions.conftest import first_order
from tests.conftest import DEMO_PROJECT, ROOT

DOMAIN = load_domain(DEMO_PROJECT / "domain.yml")
CATALOG = ResponseCatalog.from_dict(DOMAIN["responses"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def store_db(tmp_path: Path, seller: SellerProfile) -> AsyncIterator[tuple[str, DemoStore]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(StoreBase.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    await load_demo_store(sessions)
    yield url, DemoStore(sessions, seller)
    await engine.dispose()


@pytest.fixture
def action_server(store_db: tuple[str, DemoStore], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = os.environ | {"NIGHTDESK_DATABASE_URL": store_db[0], "NIGHTDESK_INVOICE_DIR": str(tmp_path / "inv"),
                        "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "action-server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rasa_sdk", "--actions", "actions.order_actions", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"action server exited: {(tmp_path / 'action-server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("action server did not start within 60 s")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/webhook"
    finally:
        # Sanic runs workers in the server's process group; stop the whole group we started.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


async def test_remote_action_server_answers_order_status_and_changes_the_order(
    action_server: str, store_db: tuple[str, DemoStore], demo_data: dict[str, Any]
) -> None:
    runner = RemoteActionRunner(action_server, DOMAIN)
    try:
        raw = first_order(demo_data, "in_transit", with_shipment=True)
        status = await runner.run(ActionCall("action_order_status", "shopper-7",
                                             slots={"verified_order": raw["number"]}))
        replies = status.render(CATALOG, "ja")
        # The server judges lateness by today's date: the demo parcels' estimated days pass as time goes on.
        due = date.fromisoformat(raw["shipments"][0]["estimated_delivery"])
        late = due < datetime.now(UTC).date()
        assert status.response_names == ["utter_order_status_late" if late else "utter_order_status_in_transit"]
        assert raw["shipments"][0]["tracking_url"] in replies[0].text and "配送中" in replies[0].text

        paid = first_order(demo_data, "paid")
        asked = await runner.run(ActionCall("action_cancel_order", "shopper-7", slots={"verified_order": paid["number"]}))
        assert asked.response_names == ["utter_confirm_cancel"]
        done = await runner.run(ActionCall("action_cancel_order", "shopper-7",
                                           slots={"verified_order": paid["number"], "confirmed": True}))
        assert done.response_names == ["utter_cancel_done"] and done.slots == {"confirmed": None}
        # The action server wrote to the same database the bot reads.
        assert (await store_db[1].get_order(paid["number"])).status == "cancelled"

        with pytest.raises(ActionFailed, match="HTTP 404"):
            await runner.run(ActionCall("action_does_not_exist", "shopper-7"))
    finally:
        await runner.aclose()


async def test_unreachable_action_server_is_reported() -> None:
    runner = RemoteActionRunner(f"http://127.0.0.1:{free_port()}/webhook", DOMAIN, timeout=2)
    try:
        with pytest.raises(ActionServerUnavailable):
            await runner.run(ActionCall("action_human_handoff", "shopper-8"))
    finally:
        await runner.aclose()
