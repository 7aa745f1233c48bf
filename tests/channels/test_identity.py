"""One shopper, one customer: identities from different channels link by contact or proven order,
merges show one history, and an unmerge puts everything back, all with an audit trail."""

from __future__ import annotations

import uuid

import pytest

from bot.channels.base import InboundMessage
from bot.events import Events
from bot.identity import (
    MergeError,
    customer_conversations,
    link_by_contact,
    link_by_order,
    merge_history,
    on_order_proven,
    unmerge_customer,
)
from bot.pipeline import Accepted, Ingest, current_customer_id
from bot.redis_conn import connect
from bot.store.db import Database
from bot.store.models import Conversation, Customer


async def _ingest(database_url: str, redis_url: str) -> tuple[Database, Ingest]:
    db = Database(database_url)
    await db.migrate()
    redis = connect(redis_url)
    return db, Ingest(db, redis, Events(redis))


def _msg(channel: str, sender: str, text: str, **kw: object) -> InboundMessage:
    return InboundMessage(channel=channel, external_id=uuid.uuid4().hex, sender=sender, text=text, **kw)  # type: ignore[arg-type]


async def _identity_of(db: Database, accepted: Accepted) -> tuple[int, int]:
    async with db.sessions() as s:
        conv = await s.get(Conversation, accepted.conversation_id)
        assert conv is not None
        return conv.identity_id, conv.customer_id


async def test_email_given_on_whatsapp_links_to_the_email_customer(database_url: str, redis_url: str) -> None:
    db, ingest = await _ingest(database_url, redis_url)
    mail = await ingest.accept(_msg("email", "alice@example.com", "Where is order 1042?", thread_key="t1"))
    wa = await ingest.accept(_msg("whatsapp", "4915112345678", "Hi, about my order"))
    wa_identity, wa_customer = await _identity_of(db, wa)
    _, mail_customer = await _identity_of(db, mail)
    assert wa_customer != mail_customer

    async with db.sessions() as s, s.begin():
        result = await link_by_contact(s, wa_identity, email=" Alice@Example.com ")
    assert result.merged and result.customer_id == mail_customer and result.matched_by == "email"

    # A new WhatsApp message now lands on the one customer, and the history shows both channels.
    await ingest.accept(_msg("whatsapp", "4915112345678", "still there?"))
    async with db.sessions() as s:
        convs = await customer_conversations(s, wa_customer)
        assert {c.channel for c in convs} == {"email", "whatsapp"}
        assert {c.customer_id for c in convs} == {mail_customer}
        [audit] = await merge_history(s, mail_customer)
        assert audit.action == "merge" and audit.actor == "bot" and "alice@example.com" in audit.reason
    await db.dispose()


async def test_phone_given_in_an_email_links_to_the_whatsapp_customer(database_url: str, redis_url: str) -> None:
    db, ingest = await _ingest(database_url, redis_url)
    wa = await ingest.accept(_msg("whatsapp", "4915112345678", "hello"))
    mail = await ingest.accept(_msg("email", "alice@example.com", "hello", thread_key="t2"))
    mail_identity, _ = await _identity_of(db, mail)
    _, wa_customer = await _identity_of(db, wa)
    async with db.sessions() as s, s.begin():
        result = await link_by_contact(s, mail_identity, phone="+49 151 12345678")
    assert result.merged and result.customer_id == wa_customer and result.matched_by == "phone"
    await db.dispose()


async def test_an_unknown_email_is_remembered_for_later_channels(database_url: str, redis_url: str) -> None:
    db, ingest = await _ingest(database_url, redis_url)
    widget = await ingest.accept(_msg("widget", "session-abc", "hi"))
    widget_identity, widget_customer = await _identity_of(db, widget)
    async with db.sessions() as s, s.begin():
        result = await link_by_contact(s, widget_identity, email="bob@example.org")
    assert not result.merged and result.customer_id == widget_customer
    mail = await ingest.accept(_msg("email", "bob@example.org", "it's me again", thread_key="t3"))
    mail_identity, _ = await _identity_of(db, mail)
    async with db.sessions() as s, s.begin():
        # The mail identity finds the widget customer through the remembered address.
        result = await link_by_contact(s, mail_identity, email="bob@example.org")
    assert result.merged and result.customer_id == widget_customer
    await db.dispose()


async def test_proving_an_order_links_and_verifies(database_url: str, redis_url: str) -> None:
    db, ingest = await _ingest(database_url, redis_url)
    mail = await ingest.accept(_msg("email", "carol@example.net", "order?", thread_key="t4"))
    widget = await ingest.accept(_msg("widget", "session-xyz", "order 1042, carol@example.net"))
    widget_identity, _ = await _identity_of(db, widget)
    _, mail_customer = await _identity_of(db, mail)
    async with db.sessions() as s, s.begin():
        result = await link_by_order(s, widget_identity, order_number="1042",
                                     order_email="carol@example.net", order_phone=None)
    assert result.merged and result.customer_id == mail_customer and result.matched_by == "order"
    async with db.sessions() as s:
        [audit] = await merge_history(s, mail_customer)
        assert "proved order 1042" in audit.reason
    await db.dispose()


async def test_unmerge_puts_conversations_back_with_an_audit_trail(database_url: str, redis_url: str) -> None:
    db, ingest = await _ingest(database_url, redis_url)
    mail = await ingest.accept(_msg("email", "dave@example.com", "hello", thread_key="t5"))
    wa = await ingest.accept(_msg("whatsapp", "14155550100", "hello"))
    wa_identity, wa_customer = await _identity_of(db, wa)
    _, mail_customer = await _identity_of(db, mail)
    async with db.sessions() as s, s.begin():
        await link_by_contact(s, wa_identity, email="dave@example.com", actor="agent:li")
    later = await ingest.accept(_msg("whatsapp", "14155550100", "after the merge"))

    async with db.sessions() as s, s.begin():
        await unmerge_customer(s, wa_customer, actor="agent:li", reason="two different Daves")
    async with db.sessions() as s:
        assert await current_customer_id(s, wa_customer) == wa_customer
        wa_convs = await customer_conversations(s, wa_customer)
        assert {c.id for c in wa_convs} == {wa.conversation_id, later.conversation_id}
        assert {c.channel for c in await customer_conversations(s, mail_customer)} == {"email"}
        trail = await merge_history(s, wa_customer)
        assert [(a.action, a.actor) for a in trail] == [("merge", "agent:li"), ("unmerge", "agent:li")]
        assert trail[1].reason == "two different Daves"
        customer = await s.get(Customer, wa_customer)
        assert customer is not None and customer.merged_into_id is None
    async with db.sessions() as s:
        with pytest.raises(MergeError, match="not merged"):
            await unmerge_customer(s, wa_customer, actor="agent:li", reason="again")
    await db.dispose()


async def test_the_engine_hook_moves_the_conversation_to_the_orders_customer(database_url: str,
                                                                           redis_url: str) -> None:
    db, ingest = await _ingest(database_url, redis_url)
    mail = await ingest.accept(_msg("email", "erin@example.com", "order ND-100105?", thread_key="t6"))
    wa = await ingest.accept(_msg("whatsapp", "4915199999999", "order ND-100105, erin@example.com"))
    _, mail_customer = await _identity_of(db, mail)
    async with db.sessions() as s, s.begin():
        conv = await s.get(Conversation, wa.conversation_id)
        assert conv is not None
        await on_order_proven(conv, "ND-100105", {"email": "erin@example.com", "phone": None, "total": 80.0})
        assert conv.customer_id == mail_customer  # what the rest of the turn (and escalation) sees
    async with db.sessions() as s:
        wa_conv = await s.get(Conversation, wa.conversation_id)
        assert wa_conv is not None and wa_conv.customer_id == mail_customer
    await db.dispose()
