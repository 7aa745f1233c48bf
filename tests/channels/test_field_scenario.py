"""The scenario from the field: one shopper writes about the same order by email, in the widget and on
WhatsApp within an hour. The result must be one customer, one conversation history, one handoff ticket.

Everything is real: the trained demo NLU, the demo store, Dovecot + the SMTP relay, the fake Meta Graph
API, the widget's HTTP API, the pipeline and the handoff service on Redis and the database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.demo import load_demo
from bot.identity import customer_conversations, merge_history
from bot.pipeline import current_customer_id
from bot.store.db import Database
from bot.store.models import Conversation, DecisionTrace, Message
from handoff.models import HandoffTicket
from nlu.model import train_model
from tests.channels.appserver import AppServer
from tests.channels.conftest import SHOP
from tests.channels.mailtools import shopper_mail, smtp_send
from tests.conftest import DEMO_PROJECT
from tests.fakes.meta_graph import FakeMetaGraph
from tests.mailservers import DovecotServer, SmtpRelay

ORDER = "ND-100105"
EMAIL = "chloe.bernard311@example.org"  # the email on that order in the demo store
PHONE = "33612345678"


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("demo-nlu") / "nlu"
    train_model(DEMO_PROJECT / "data", None, out)
    yield out


@pytest.fixture
async def nightdesk(demo_model: Path, mailboxes: DovecotServer, smtp_relay: SmtpRelay, meta_graph: FakeMetaGraph,
                    database_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[AppServer]:
    settings = Settings(
        database_url=database_url, redis_url=redis_url, var_dir=tmp_path, project=DEMO_PROJECT,
        model_dir=demo_model,
        email_imap_host="127.0.0.1", email_imap_port=mailboxes.port, email_imap_ssl=False,
        email_username=SHOP.login, email_password=SHOP.password,
        email_smtp_host="127.0.0.1", email_smtp_port=smtp_relay.port, email_smtp_starttls=False,
        email_from=SHOP.address,
        whatsapp_app_secret=meta_graph.app_secret, whatsapp_verify_token="verify-me",
        whatsapp_access_token=meta_graph.access_token, whatsapp_phone_number_id=meta_graph.phone_number_id,
        whatsapp_graph_url=meta_graph.base_url, whatsapp_api_version=meta_graph.version,
        whatsapp_template_name="order_followup",
    )
    await load_demo(settings)
    server = await asyncio.to_thread(AppServer(settings).start)
    meta_graph.webhook_url = f"{server.url}/webhooks/whatsapp"
    await server.call(lambda: asyncio.wait_for(server.state.mail_listener.ready.wait(), 30))
    yield server
    await asyncio.to_thread(server.stop)


async def wait_for(fetch: Callable[[], Awaitable[Any]], wait_s: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        value = await fetch()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the expected state was not reached")
        await asyncio.sleep(0.1)


class Shopper:
    """Chloe, writing on three channels; each `say` waits for the bot's decision on that message."""

    def __init__(self, server: AppServer, db: Database, relay: SmtpRelay, meta: FakeMetaGraph) -> None:
        self.server, self.db, self.relay, self.meta = server, db, relay, meta
        self.widget_token: str | None = None
        self.last_mail: Any = None

    async def _decision(self, channel: str, text: str) -> dict[str, Any]:
        async def find() -> dict[str, Any] | None:
            async with self.db.sessions() as s:
                row = (await s.execute(
                    select(DecisionTrace.trace).join(Message, Message.id == DecisionTrace.inbound_message_id)
                    .where(Message.channel == channel, Message.text == text))).first()
                return row[0] if row else None

        return await wait_for(find)  # type: ignore[no-any-return]

    async def email(self, text: str) -> dict[str, Any]:
        mail = shopper_mail(f"Chloe Bernard <{EMAIL}>", SHOP.address, f"Order {ORDER}", text,
                            reply_to=self.last_mail)
        if self.last_mail is not None:
            mail.replace_header("Subject", f"Re: Order {ORDER}")
        self.last_mail = mail
        await smtp_send(self.relay, mail)
        return await self._decision("email", text)

    async def widget(self, text: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.server.url) as client:
            if self.widget_token is None:
                opened = await client.post("/api/v1/widget/session", json={"locale": "en-GB",
                                                                            "timezone": "Europe/Paris"})
                self.widget_token = opened.json()["session_token"]
            sent = await client.post("/api/v1/widget/messages", json={
                "token": self.widget_token, "client_id": uuid.uuid4().hex, "text": text})
            assert sent.status_code == 200, sent.text
        return await self._decision("widget", text)

    async def whatsapp(self, text: str) -> dict[str, Any]:
        delivery = await self.meta.deliver(self.meta.user_message(PHONE, text=text, name="Chloe"))
        assert delivery.final_status == 200
        return await self._decision("whatsapp", text)


def _kind(trace: dict[str, Any]) -> str:
    return str(trace["decision"]["kind"])


async def test_one_shopper_on_three_channels_is_one_customer_with_one_ticket(
        nightdesk: AppServer, smtp_relay: SmtpRelay, meta_graph: FakeMetaGraph, database_url: str) -> None:
    db = Database(database_url)
    chloe = Shopper(nightdesk, db, smtp_relay, meta_graph)
    try:
        # The order question on each channel, proving the order with its email where needed.
        first = await chloe.email(f"Hello, where is my order {ORDER}?")
        assert _kind(first) == "act", first["decision"]
        widget = await chloe.widget(f"Where is my order {ORDER}? My email is {EMAIL}")
        assert _kind(widget) == "act", widget["decision"]
        wa = await chloe.whatsapp(f"Hi, where is my order {ORDER}? my email is {EMAIL}")
        assert _kind(wa) == "act", wa["decision"]

        # Losing patience everywhere at once.
        for say in (chloe.email, chloe.widget, chloe.whatsapp):
            trace = await say("This is ridiculous, I want to talk to a real person about it now!")
            assert _kind(trace) in ("escalate", "after_hours"), trace["decision"]

        async with db.sessions() as s:
            convs = list((await s.execute(select(Conversation).order_by(Conversation.id))).scalars())
            assert {c.channel for c in convs} == {"email", "widget", "whatsapp"}
            customers = {await current_customer_id(s, c.customer_id) for c in convs}
            assert len(customers) == 1, "one shopper must be one customer"
            [customer_id] = customers
            history = await customer_conversations(s, customer_id)
            assert {c.id for c in history} == {c.id for c in convs}
            trail = await merge_history(s, customer_id)
            assert [a.action for a in trail] == ["merge", "merge"]
            assert all(f"proved order {ORDER}" in a.reason for a in trail)
            tickets = list((await s.execute(select(HandoffTicket))).scalars())
            assert len(tickets) == 1, [(t.customer_id, t.order_number, t.channel) for t in tickets]
            [ticket] = tickets
            assert ticket.customer_id == str(customer_id) and ticket.order_number == ORDER
            assert set(ticket.channels) >= {"email", "widget", "whatsapp"}
    finally:
        await db.dispose()
