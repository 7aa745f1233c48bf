"""The IMAP listener and SMTP replies against real Dovecot and the aiosmtpd relay.

These tests hand accepted mails to a recorder that groups them by thread (the engine is not involved);
the end-to-end tests through the app are in test_email_e2e.py.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aioimaplib
import redis.asyncio as aioredis

from bot.channels.base import InboundMessage, OutboundMessage
from bot.channels.email import EmailChannel, EmailSettings, MailboxListener
from tests.channels.conftest import ALICE, SHOP
from tests.channels.mailtools import body_of, ids, shopper_mail, smtp_send, wait_for_mailbox
from tests.mailservers import DovecotServer, SmtpRelay


@dataclass
class Accepted:
    message_id: int
    conversation_id: int
    duplicate: bool


class ThreadRecorder:
    """Records what the listener hands over; one conversation per thread key, like the pipeline."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.conversations: dict[str, int] = {}

    async def accept(self, msg: InboundMessage) -> Accepted:
        self.messages.append(msg)
        conv = self.conversations.setdefault(msg.thread_key or msg.external_id, len(self.conversations) + 1)
        return Accepted(len(self.messages), conv, False)

    async def wait_for(self, count: int, wait_s: float = 20.0) -> list[InboundMessage]:
        deadline = time.monotonic() + wait_s
        while True:
            if len(self.messages) >= count or time.monotonic() > deadline:
                return self.messages
            await asyncio.sleep(0.05)


def _settings(dovecot: DovecotServer, relay: SmtpRelay) -> EmailSettings:
    return EmailSettings(imap_host="127.0.0.1", imap_port=dovecot.port, imap_ssl=False,
                         username=SHOP.login, password=SHOP.password, smtp_host="127.0.0.1",
                         smtp_port=relay.port, smtp_starttls=False, shop_address=SHOP.address,
                         shop_name="Lumen Home", signature="Lumen Home support", poll_interval=0.5)


async def test_new_mail_wakes_the_idle_listener(mailboxes: DovecotServer, smtp_relay: SmtpRelay,
                                                redis_client: aioredis.Redis) -> None:
    recorder = ThreadRecorder()
    listener = MailboxListener(_settings(mailboxes, smtp_relay), redis_client, recorder.accept)
    listener.start()
    try:
        await asyncio.wait_for(listener.ready.wait(), 20)
        assert listener.idle_supported
        await smtp_send(smtp_relay, shopper_mail("Alice <alice@example.com>", SHOP.address, "Lamp",
                                                 "Where is my lamp?"))
        [msg] = await recorder.wait_for(1)
        assert msg.text == "Where is my lamp?" and msg.sender == "alice@example.com"
    finally:
        await listener.stop()


async def test_restarting_the_listener_neither_skips_nor_repeats(
        mailboxes: DovecotServer, smtp_relay: SmtpRelay, redis_client: aioredis.Redis) -> None:
    settings = _settings(mailboxes, smtp_relay)
    recorder = ThreadRecorder()
    first = MailboxListener(settings, redis_client, recorder.accept)
    first.start()
    await asyncio.wait_for(first.ready.wait(), 20)
    for n in (1, 2):
        await smtp_send(smtp_relay, shopper_mail("alice@example.com", SHOP.address, f"Mail {n}", f"Mail {n}"))
    await recorder.wait_for(2)
    await first.stop()

    # Mail arrives while nobody listens.
    await smtp_send(smtp_relay, shopper_mail("alice@example.com", SHOP.address, "Mail 3", "Mail 3"))
    await wait_for_mailbox(mailboxes, SHOP, 3)

    second = MailboxListener(settings, redis_client, recorder.accept)
    second.start()
    try:
        await asyncio.wait_for(second.ready.wait(), 20)
        await smtp_send(smtp_relay, shopper_mail("alice@example.com", SHOP.address, "Mail 4", "Mail 4"))
        await recorder.wait_for(4)
        await asyncio.sleep(0.5)  # a repeat, if any, would arrive now
        assert [m.text for m in recorder.messages] == ["Mail 1", "Mail 2", "Mail 3", "Mail 4"]
    finally:
        await second.stop()


class _GlitchyListener(MailboxListener):
    """The real listener, except that the server's first FETCH answer comes back OK but without the mail."""

    glitches = 1

    def _client(self) -> Any:
        client = super()._client()
        listener = self

        class OneBadFetch:
            def __getattr__(self, name: str) -> Any:
                return getattr(client, name)

            async def uid(self, command: str, *args: Any) -> Any:
                if command == "fetch" and listener.glitches:
                    listener.glitches -= 1
                    return aioimaplib.Response("OK", [b"Fetch completed."])
                return await client.uid(command, *args)

        return OneBadFetch()


async def test_a_fetch_without_the_mail_is_retried_not_skipped(
        mailboxes: DovecotServer, smtp_relay: SmtpRelay, redis_client: aioredis.Redis) -> None:
    settings = _settings(mailboxes, smtp_relay)
    await smtp_send(smtp_relay, shopper_mail("alice@example.com", SHOP.address, "Glitch", "Is my rug on its way?"))
    await wait_for_mailbox(mailboxes, SHOP, 1)
    recorder = ThreadRecorder()
    listener = _GlitchyListener(settings, redis_client, recorder.accept)
    listener.start()
    try:
        [msg] = await recorder.wait_for(1, wait_s=30)
        assert listener.glitches == 0  # the bad answer was given, and the mail still came through
        assert msg.text == "Is my rug on its way?"
        assert await listener.last_uid() >= 1
    finally:
        await listener.stop()


async def test_auto_reply_is_read_but_not_handed_to_the_bot(
        mailboxes: DovecotServer, smtp_relay: SmtpRelay, redis_client: aioredis.Redis) -> None:
    recorder = ThreadRecorder()
    listener = MailboxListener(_settings(mailboxes, smtp_relay), redis_client, recorder.accept)
    listener.start()
    try:
        await asyncio.wait_for(listener.ready.wait(), 20)
        await smtp_send(smtp_relay, shopper_mail("alice@example.com", SHOP.address, "Out of office",
                                                 "I am away.", headers={"Auto-Submitted": "auto-replied"}))
        await smtp_send(smtp_relay, shopper_mail("alice@example.com", SHOP.address, "Lamp", "Real question"))
        await recorder.wait_for(1)
        await asyncio.sleep(0.3)
        assert [m.text for m in recorder.messages] == ["Real question"]
        assert listener.ignored == 1
    finally:
        await listener.stop()


async def test_three_mail_thread_is_one_conversation_and_replies_thread_in_the_shoppers_mailbox(
        mailboxes: DovecotServer, smtp_relay: SmtpRelay, redis_client: aioredis.Redis) -> None:
    settings = _settings(mailboxes, smtp_relay)
    recorder = ThreadRecorder()
    listener = MailboxListener(settings, redis_client, recorder.accept)
    channel = EmailChannel(settings, redis_client)
    listener.start()
    try:
        await asyncio.wait_for(listener.ready.wait(), 20)
        mail = shopper_mail("Alice <alice@example.com>", SHOP.address, "Order 1042", "Where is order 1042?")
        for turn in range(3):
            await smtp_send(smtp_relay, mail)
            [*_, inbound] = await recorder.wait_for(turn + 1)
            conv = recorder.conversations[inbound.thread_key or ""]
            await channel.send(OutboundMessage(message_id=100 + turn, conversation_id=conv, channel="email",
                                               recipient=inbound.sender, text=f"Answer {turn + 1}"))
            replies = await wait_for_mailbox(mailboxes, ALICE, turn + 1)
            # The shopper answers the bot's latest reply from her mail client.
            mail = shopper_mail("Alice <alice@example.com>", SHOP.address, str(replies[-1]["Subject"]),
                                f"Follow-up {turn + 1}", reply_to=replies[-1])
        assert len(recorder.conversations) == 1
        assert [m.text for m in recorder.messages] == ["Where is order 1042?", "Follow-up 1", "Follow-up 2"]

        replies = await wait_for_mailbox(mailboxes, ALICE, 3)
        assert [body_of(r, "plain").splitlines()[0] for r in replies] == [
            "Answer 1", "Answer 2", "Answer 3"]
        root = recorder.messages[0].external_id
        for reply, inbound in zip(replies, recorder.messages, strict=True):
            assert reply["Subject"] == "Re: Order 1042"
            assert ids(reply["In-Reply-To"]) == [inbound.external_id]
            assert ids(reply["References"])[0] == root and ids(reply["References"])[-1] == inbound.external_id
            assert reply["Auto-Submitted"] == "auto-replied"
    finally:
        await listener.stop()


async def test_two_processes_on_one_mailbox_read_each_mail_once_and_take_over(
        mailboxes: DovecotServer, smtp_relay: SmtpRelay, redis_client: aioredis.Redis) -> None:
    settings = _settings(mailboxes, smtp_relay)
    recorder = ThreadRecorder()
    first = MailboxListener(settings, redis_client, recorder.accept, lease_s=3.0)
    second = MailboxListener(settings, redis_client, recorder.accept, lease_s=3.0)
    first.start()
    await asyncio.wait_for(first.ready.wait(), 20)
    second.start()
    try:
        for n in (1, 2, 3):
            await smtp_send(smtp_relay, shopper_mail("alice@example.com", SHOP.address, f"Mail {n}", f"Mail {n}"))
        await recorder.wait_for(3)
        assert first.leading and not second.leading and second.processed == 0
        await first.stop()  # the reading process goes away; the standby takes over
        await asyncio.wait_for(second.ready.wait(), 20)
        await smtp_send(smtp_relay, shopper_mail("alice@example.com", SHOP.address, "Mail 4", "Mail 4"))
        await recorder.wait_for(4)
        assert [m.text for m in recorder.messages] == ["Mail 1", "Mail 2", "Mail 3", "Mail 4"]
        assert second.processed == 1
    finally:
        await first.stop()
        await second.stop()


async def test_the_listener_reconnects_after_the_mail_server_restarts(
        mailboxes: DovecotServer, smtp_relay: SmtpRelay, redis_client: aioredis.Redis) -> None:
    recorder = ThreadRecorder()
    listener = MailboxListener(_settings(mailboxes, smtp_relay), redis_client, recorder.accept)
    listener.start()
    try:
        await asyncio.wait_for(listener.ready.wait(), 20)
        await asyncio.to_thread(mailboxes.stop)
        await smtp_send(smtp_relay, shopper_mail("alice@example.com", SHOP.address, "During", "Sent during the outage"))
        await asyncio.to_thread(mailboxes.start)
        await smtp_send(smtp_relay, shopper_mail("alice@example.com", SHOP.address, "After", "Sent after it"))
        await recorder.wait_for(2, wait_s=60)
        assert [m.text for m in recorder.messages] == ["Sent during the outage", "Sent after it"]
    finally:
        await listener.stop()
