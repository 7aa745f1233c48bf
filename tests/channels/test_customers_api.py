"""The agent console's customer API on the real app: one profile across channels, the WhatsApp window,
merge and unmerge by an agent with the audit trail."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.demo import load_demo
from bot.store.db import Database
from bot.store.models import Conversation
from tests.channels.appserver import AppServer
from tests.conftest import DEMO_PROJECT
from tests.fakes.meta_graph import FakeMetaGraph

SHOPPER = "4915112345678"


@pytest.fixture
async def nightdesk(meta_graph: FakeMetaGraph, database_url: str, redis_url: str,
                    tmp_path: Path) -> AsyncIterator[AppServer]:
    settings = Settings(
        database_url=database_url, redis_url=redis_url, var_dir=tmp_path, project=DEMO_PROJECT,
        whatsapp_app_secret=meta_graph.app_secret, whatsapp_verify_token="verify-me",
        whatsapp_access_token=meta_graph.access_token, whatsapp_phone_number_id=meta_graph.phone_number_id,
        whatsapp_graph_url=meta_graph.base_url, whatsapp_api_version=meta_graph.version,
        whatsapp_template_name="order_followup",
    )
    await load_demo(settings)
    server = await asyncio.to_thread(AppServer(settings).start)
    meta_graph.webhook_url = f"{server.url}/webhooks/whatsapp"
    yield server
    await asyncio.to_thread(server.stop)


async def _customer_of(database_url: str, conversation_id: int) -> int:
    db = Database(database_url)
    async with db.sessions() as s:
        conv = await s.get(Conversation, conversation_id)
        assert conv is not None
        customer = conv.customer_id
    await db.dispose()
    return customer


async def _whatsapp_customer(database_url: str) -> int:
    db = Database(database_url)
    async with db.sessions() as s:
        customer = (await s.execute(select(Conversation.customer_id).where(
            Conversation.channel == "whatsapp"))).scalar_one()
    await db.dispose()
    return int(customer)


async def test_agent_sees_one_profile_merges_and_unmerges(nightdesk: AppServer, meta_graph: FakeMetaGraph,
                                                         database_url: str) -> None:
    async with httpx.AsyncClient(base_url=nightdesk.url) as client:
        # The same person on WhatsApp and in the widget: two profiles so far.
        await meta_graph.deliver(meta_graph.user_message(SHOPPER, text="Hi, question about my lamp"))
        await meta_graph.wait_for_sent(1, SHOPPER)
        session = (await client.post("/api/v1/widget/session", json={})).json()
        posted = await client.post("/api/v1/widget/messages", json={
            "token": session["session_token"], "client_id": uuid.uuid4().hex, "text": "me again, from the shop"})
        assert posted.status_code == 200
        widget_customer = await _customer_of(database_url, session["conversation_id"])

        assert (await client.get(f"/api/v1/customers/{widget_customer}")).status_code == 401
        assert (await client.post("/api/v1/auth/login", json={"login": "mei", "password": "demo-agent"})
                ).status_code == 200

        wa_customer = await _whatsapp_customer(database_url)
        profile = (await client.get(f"/api/v1/customers/{wa_customer}")).json()
        [wa_conv] = profile["conversations"]
        assert wa_conv["channel"] == "whatsapp"
        assert wa_conv["whatsapp_window"]["open"] is True and wa_conv["whatsapp_window"]["closes_at"]

        merged = await client.post(f"/api/v1/customers/{widget_customer}/merge",
                                   json={"into": wa_customer, "reason": "same person, confirmed on the phone"})
        assert merged.status_code == 200, merged.text
        profile = merged.json()
        assert profile["id"] == wa_customer and profile["merged_profiles"] == [widget_customer]
        assert {c["channel"] for c in profile["conversations"]} == {"whatsapp", "widget"}
        assert [(h["action"], h["actor"]) for h in profile["merge_history"]] == [("merge", "agent:mei")]
        # Asking for the merged profile shows the one it lives in now.
        assert (await client.get(f"/api/v1/customers/{widget_customer}")).json()["id"] == wa_customer
        again = await client.post(f"/api/v1/customers/{widget_customer}/merge",
                                  json={"into": wa_customer, "reason": "oops, twice"})
        assert again.status_code == 409 and "already merged" in again.json()["detail"]

        split = await client.post(f"/api/v1/customers/{widget_customer}/unmerge",
                                  json={"reason": "not the same person after all"})
        assert split.status_code == 200, split.text
        assert {c["channel"] for c in split.json()["conversations"]} == {"widget"}
        history = (await client.get(f"/api/v1/customers/{wa_customer}")).json()["merge_history"]
        assert [(h["action"], h["reason"]) for h in history] == [
            ("merge", "same person, confirmed on the phone"), ("unmerge", "not the same person after all")]
