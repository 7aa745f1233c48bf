"""Email end to end: shoppers' mail goes through the aiosmtpd relay into Dovecot, the real app reads it by
IMAP IDLE, and its replies come back over SMTP into the shopper's mailbox, read over IMAP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.demo import load_demo
from bot.events import Events
from bot.pipeline import ReplyDraft, announce_outbound, enqueue_reply
from bot.redis_conn import connect
from bot.store.db import Database
from bot.store.models import Conversation, DecisionTrace, Message
from tests.channels.appserver import AppServer
from tests.channels.conftest import ALICE, AMAZON_ALIAS, SHOP
from tests.channels.mailtools import ids, read_mailbox, shopper_mail, smtp_send, wait_for_mailbox
from tests.conftest import DEMO_PROJECT
from tests.mailservers import DovecotServer, SmtpRelay


@pytest.fixture
async def nightdesk(mailboxes: DovecotServer, smtp_relay: SmtpRelay, database_url: str, redis_url: str,
                    tmp_path: Path) -> AsyncIterator[AppServer]:
    settings = Settings(
        database_url=database_url, redis_url=redis_url, var_dir=tmp_path, project=DEMO_PROJECT,
        email_imap_host="127.0.0.1", email_imap_port=mailboxes.port, email_imap_ssl=False,
        email_username=SHOP.login, email_password=SHOP.password,
        email_smtp_host="127.0.0.1", email_smtp_port=smtp_relay.port, email_smtp_starttls=False,
        email_from=SHOP.address, email_shop_name="Lumen Home", email_signature="Lumen Home support",
        amazon_seller_email="seller@shop.test",
    )
    await load_demo(settings)
    server = await asyncio.to_thread(AppServer(settings).start)
    await server.call(lambda: asyncio.wait_for(server.state.mail_listener.ready.wait(), 30))
    yield server
    await asyncio.to_thread(server.stop)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def wait_until(check: Callable[[], Awaitable[bool]], wait_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + wait_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the expected state was not reached")
        await asyncio.sleep(0.05)


async def inbound_mails(db: Database, channel: str = "email") -> list[Message]:
    async with db.sessions() as s:
        rows = await s.execute(select(Message).where(Message.channel == channel, Message.direction == "in")
                               .order_by(Message.id))
        return list(rows.scalars())


async def decided(db: Database, message_id: int) -> bool:
    async with db.sessions() as s:
        found = await s.execute(select(DecisionTrace.id).where(DecisionTrace.inbound_message_id == message_id))
        return found.first() is not None


async def answer_if_the_bot_did_not(db: Database, redis_url: str, inbound: Message) -> None:
    """The bot answers, or (after an escalation) an agent does; either way a reply goes out by mail."""
    async with db.sessions() as s, s.begin():
        trace = (await s.execute(select(DecisionTrace).where(
            DecisionTrace.inbound_message_id == inbound.id))).scalar_one()
        if trace.trace.get("reply_message_ids"):
            return
        conv = await s.get(Conversation, inbound.conversation_id)
        assert conv is not None
        reply = await enqueue_reply(s, conv, ReplyDraft(text="Hi, this is Li from Lumen Home.", author="agent:li"))
    redis = connect(redis_url)
    await announce_outbound(redis, Events(redis), [reply])
    await redis.aclose()


async def test_a_three_mail_thread_is_one_conversation_and_replies_thread_in_the_shoppers_mailbox(
        nightdesk: AppServer, mailboxes: DovecotServer, smtp_relay: SmtpRelay, db: Database,
        redis_url: str) -> None:
    mail: EmailMessage = shopper_mail("Alice <alice@example.com>", SHOP.address, "Order 1042",
                                      "Hello, where is my order 1042?\n-- \nAlice")
    seen_replies = 0
    for turn in range(3):
        await smtp_send(smtp_relay, mail)
        await wait_until(lambda n=turn: _count(db, n + 1))  # type: ignore[misc]
        inbound = (await inbound_mails(db))[turn]
        await wait_until(lambda m=inbound.id: decided(db, m))  # type: ignore[misc]
        await answer_if_the_bot_did_not(db, redis_url, inbound)
        replies = await wait_for_mailbox(mailboxes, ALICE, seen_replies + 1)
        assert len(replies) > seen_replies, "no reply reached the shopper's mailbox"
        seen_replies = len(replies)
        # Alice answers the latest reply from her mail client, quoting it.
        mail = shopper_mail("Alice <alice@example.com>", SHOP.address, str(replies[-1]["Subject"]),
                            f"Thanks, follow-up number {turn + 1}", reply_to=replies[-1])

    stored = await inbound_mails(db)
    assert len({m.conversation_id for m in stored}) == 1
    assert [m.text for m in stored] == ["Hello, where is my order 1042?", "Thanks, follow-up number 1",
                                         "Thanks, follow-up number 2"]
    assert "-- \nAlice" in stored[0].payload["email"]["full_text"]  # the full text is kept for agents
    root = stored[0].external_id
    inbound_ids = [m.external_id for m in stored]
    for reply in await read_mailbox(mailboxes, ALICE):
        assert reply["Subject"] == "Re: Order 1042"
        assert ids(reply["In-Reply-To"])[0] in inbound_ids
        assert ids(reply["References"])[0] == root
        assert ids(reply["References"])[-1] == ids(reply["In-Reply-To"])[0]
        assert "Lumen Home" in str(reply["From"]) and SHOP.address in str(reply["From"])


async def _count(db: Database, n: int, channel: str = "email") -> bool:
    return len(await inbound_mails(db, channel)) >= n


async def test_restarting_the_imap_listener_neither_skips_nor_repeats(
        nightdesk: AppServer, mailboxes: DovecotServer, smtp_relay: SmtpRelay, db: Database) -> None:
    listener = nightdesk.state.mail_listener
    for n in (1, 2):
        await smtp_send(smtp_relay, shopper_mail("alice@example.com", SHOP.address, f"Question {n}",
                                                 f"Question {n}"))
    await wait_until(lambda: _count(db, 2))
    await nightdesk.call(listener.stop)
    await smtp_send(smtp_relay, shopper_mail("alice@example.com", SHOP.address, "Question 3", "Question 3"))
    await wait_for_mailbox(mailboxes, SHOP, 3)  # in the mailbox while nobody listens
    before = listener.processed

    async def restart() -> None:
        listener.start()
        await asyncio.wait_for(listener.ready.wait(), 30)

    await nightdesk.call(restart)
    await wait_until(lambda: _count(db, 3))
    assert [m.text for m in await inbound_mails(db)] == ["Question 1", "Question 2", "Question 3"]
    assert listener.processed - before == 1  # only the new mail was read again, nothing repeated


async def test_an_auto_reply_gets_no_answer(nightdesk: AppServer, smtp_relay: SmtpRelay, db: Database) -> None:
    auto = shopper_mail("alice@example.com", SHOP.address, "Automatic reply: Re: Order 1042",
                        "I am out of the office until Monday.", headers={"Auto-Submitted": "auto-replied"})
    bounce = shopper_mail("MAILER-DAEMON@example.com", SHOP.address, "Undelivered Mail Returned to Sender",
                          "Delivery failed.")
    real = shopper_mail("bob@example.org", SHOP.address, "Lamp", "Does the lamp come with a bulb?")
    for mail in (auto, bounce, real):
        await smtp_send(smtp_relay, mail)
    await wait_until(lambda: _count(db, 1))
    [only] = await inbound_mails(db)
    await wait_until(lambda: decided(db, only.id))
    assert only.text == "Does the lamp come with a bulb?"
    assert nightdesk.state.mail_listener.ignored == 2
    assert smtp_relay.messages_to("alice@example.com") == []
    assert smtp_relay.messages_to("mailer-daemon@example.com") == []


async def test_amazon_buyer_message_is_answered_from_the_seller_address_in_the_thread(
        nightdesk: AppServer, mailboxes: DovecotServer, smtp_relay: SmtpRelay, db: Database,
        redis_url: str) -> None:
    mail = shopper_mail("Jane - Amazon Marketplace <x7k2m9p4q@marketplace.amazon.com>", SHOP.address,
                        "Inquiry from Amazon customer Jane (Order: 305-1234567-7654321)",
                        "Hello, when will my desk lamp arrive?", msgid_domain="marketplace.amazon.com")
    await smtp_send(smtp_relay, mail)
    await wait_until(lambda: _count(db, 1, "amazon"))
    [inbound] = await inbound_mails(db, "amazon")
    assert inbound.payload["reply_deadline"] > inbound.created_at.isoformat()[:19]
    async with db.sessions() as s:
        conv = await s.get(Conversation, inbound.conversation_id)
        assert conv is not None and conv.channel == "amazon"
    await wait_until(lambda: decided(db, inbound.id))
    await answer_if_the_bot_did_not(db, redis_url, inbound)
    [reply, *_] = await wait_for_mailbox(mailboxes, AMAZON_ALIAS, 1)
    assert "seller@shop.test" in str(reply["From"])
    assert ids(reply["In-Reply-To"]) == [inbound.external_id]
    assert str(reply["Subject"]).startswith("Re: Inquiry from Amazon customer Jane")
