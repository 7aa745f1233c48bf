"""WhatsApp end to end: the fake Meta Graph API delivers signed webhooks to the real app (pipeline, engine
worker, sender on real Redis and both databases) and receives its replies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.demo import load_demo
from bot.events import Events
from bot.pipeline import ReplyDraft, announce_outbound, enqueue_reply
from bot.redis_conn import connect
from bot.store.db import Database
from bot.store.models import Conversation, DecisionTrace, Message
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
        whatsapp_template_name="order_followup", whatsapp_template_language="en_US",
    )
    await load_demo(settings)  # what `nightdesk run` does first: store, KB, staff and teams
    server = await asyncio.to_thread(AppServer(settings).start)
    server.state.channels["whatsapp"].clock = meta_graph.now  # one clock for Meta and Nightdesk
    meta_graph.webhook_url = f"{server.url}/webhooks/whatsapp"
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


async def messages(db: Database, direction: str) -> list[Message]:
    async with db.sessions() as s:
        rows = await s.execute(select(Message).where(Message.channel == "whatsapp", Message.direction == direction)
                               .order_by(Message.id))
        return list(rows.scalars())


async def test_subscription_handshake(nightdesk: AppServer) -> None:
    async with httpx.AsyncClient(base_url=nightdesk.url) as client:
        ok = await client.get("/webhooks/whatsapp", params={
            "hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"})
        bad = await client.get("/webhooks/whatsapp", params={
            "hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert bad.status_code == 403


async def test_a_bad_signature_stores_nothing(nightdesk: AppServer, meta_graph: FakeMetaGraph,
                                              db: Database) -> None:
    payload = meta_graph.user_message(SHOPPER, text="Where is my order?")
    forged = await meta_graph.deliver(payload, signature=meta_graph.sign(json.dumps(payload).encode(), "wrong"),
                                      retries=2, backoff=0.01)
    assert forged.attempts == [403, 403, 403]  # Meta keeps retrying; each attempt is refused
    async with httpx.AsyncClient() as client:
        unsigned = await client.post(meta_graph.webhook_url or "", json=payload)
        garbage = await client.post(meta_graph.webhook_url or "", content=b"not json",
                                    headers={"X-Hub-Signature-256": meta_graph.sign(b"not json")})
    assert unsigned.status_code == 401
    assert garbage.status_code == 400 and "not JSON" in garbage.json()["detail"]
    async with db.sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Message))).scalar_one() == 0
        assert (await s.execute(select(func.count()).select_from(Conversation))).scalar_one() == 0
    assert meta_graph.sent == []


async def test_malformed_payload_is_refused_with_the_reason(nightdesk: AppServer,
                                                            meta_graph: FakeMetaGraph) -> None:
    payload = meta_graph.user_message(SHOPPER, text="hi")
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
    delivery = await meta_graph.deliver(payload, retries=0)
    assert delivery.attempts == [400]


async def test_fifty_duplicate_deliveries_get_one_reply(nightdesk: AppServer, meta_graph: FakeMetaGraph,
                                                        db: Database) -> None:
    payload = meta_graph.user_message(SHOPPER, text="Hello, is anyone there?", name="Lena")
    deliveries = await asyncio.gather(*[meta_graph.deliver(payload) for _ in range(50)])
    assert all(d.final_status == 200 for d in deliveries)
    # Every delivery has been answered 200, so each was already accepted or dropped as a duplicate.
    inbound = await messages(db, "in")
    assert [m.text for m in inbound] == ["Hello, is anyone there?"]
    assert inbound[0].payload["sender_name"] == "Lena"
    assert inbound[0].payload["window_closes_at"]  # the console shows until when free text is possible
    [reply] = await meta_graph.wait_for_sent(1, SHOPPER)

    async def settled() -> bool:
        out = await messages(db, "out")
        return bool(out) and all(m.status in ("sent", "failed") for m in out)

    await wait_until(settled)
    out = await messages(db, "out")
    assert [m.external_id for m in out] == [reply.wamid]
    assert len(meta_graph.messages_to(SHOPPER)) == len(out)
    wamid = payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert wamid in meta_graph.read_receipts  # blue ticks for the shopper


async def test_a_shopper_from_a_spanish_number_is_answered_in_spanish_from_the_first_words(
        nightdesk: AppServer, meta_graph: FakeMetaGraph) -> None:
    # "orden" alone is too little for the language detector (it read as English); the number's country says
    # Spanish, and the bot's question about the order comes in Spanish.
    spanish = "34612345678"
    delivery = await meta_graph.deliver(meta_graph.user_message(spanish, text="orden ND-100234"))
    assert delivery.final_status == 200
    [reply] = await meta_graph.wait_for_sent(1, spanish)
    assert "pedido ND-100234" in reply.text, reply.text


async def test_status_events_are_stored_on_the_reply(nightdesk: AppServer, meta_graph: FakeMetaGraph,
                                                     db: Database) -> None:
    await meta_graph.deliver(meta_graph.user_message(SHOPPER, text="Where is my parcel?"))
    [reply] = await meta_graph.wait_for_sent(1, SHOPPER)

    async def stored_as(status: str) -> bool:
        out = await messages(db, "out")
        return bool(out) and out[0].external_id == reply.wamid and out[0].status == status

    await wait_until(lambda: stored_as("sent"))
    for status in ("delivered", "read"):
        assert (await meta_graph.deliver(meta_graph.status_event(reply.wamid, status, SHOPPER))).final_status == 200
        await wait_until(lambda s=status: stored_as(s))  # type: ignore[misc]
    # A late "delivered" never downgrades "read".
    await meta_graph.deliver(meta_graph.status_event(reply.wamid, "delivered", SHOPPER))
    await meta_graph.deliver(meta_graph.status_event(reply.wamid, "failed", SHOPPER,
                                                     error=(131026, "Message undeliverable")))
    await wait_until(lambda: stored_as("failed"))
    [out] = await messages(db, "out")
    assert out.error is not None and "131026" in out.error and "undeliverable" in out.error


async def _agent_reply(db: Database, redis_url: str, text: str) -> int:
    """An agent's reply takes the same outbound path as the bot's (queued -> nd:outbound -> sender)."""
    redis = connect(redis_url)
    async with db.sessions() as s, s.begin():
        conv = (await s.execute(select(Conversation).where(Conversation.channel == "whatsapp"))).scalar_one()
        msg = await enqueue_reply(s, conv, ReplyDraft(text=text, author="agent:li"))
    await announce_outbound(redis, Events(redis), [msg])
    await redis.aclose()
    return msg.id


async def test_outside_the_24_hour_window_the_template_goes_out(
        nightdesk: AppServer, meta_graph: FakeMetaGraph, db: Database, redis_url: str) -> None:
    await meta_graph.deliver(meta_graph.user_message(SHOPPER, text="Can I return the lamp?"))
    await meta_graph.wait_for_sent(1, SHOPPER)
    meta_graph.advance(timedelta(hours=26))
    message_id = await _agent_reply(db, redis_url, "Yes, here is your return label.")
    sent = await meta_graph.wait_for_sent(2, SHOPPER)
    assert sent[1].type == "template"
    assert sent[1].body["template"]["name"] == "order_followup"
    assert not any(r.get("text", {}).get("body") == "Yes, here is your return label." for r in meta_graph.rejected)

    async def template_recorded() -> bool:
        async with db.sessions() as s:
            m = await s.get(Message, message_id)
            return m is not None and m.status == "sent" and m.external_id == sent[1].wamid

    await wait_until(template_recorded)


async def test_a_rate_limited_reply_is_retried_and_delivered(nightdesk: AppServer, meta_graph: FakeMetaGraph,
                                                             db: Database) -> None:
    meta_graph.fail_next(130429, title="Rate limit hit")
    await meta_graph.deliver(meta_graph.user_message(SHOPPER, text="Hello?"))
    [reply] = await meta_graph.wait_for_sent(1, SHOPPER)
    assert [r["code"] for r in meta_graph.rejected] == [130429]

    async def delivered() -> bool:
        out = await messages(db, "out")
        return bool(out) and out[0].status == "sent" and out[0].external_id == reply.wamid

    await wait_until(delivered)


async def test_an_expired_token_fails_the_reply_and_alerts_the_operator(
        nightdesk: AppServer, meta_graph: FakeMetaGraph, db: Database, redis_url: str) -> None:
    meta_graph.expire_token()
    await meta_graph.deliver(meta_graph.user_message(SHOPPER, text="Hello?"))

    async def failed() -> bool:
        out = await messages(db, "out")
        return bool(out) and out[0].status == "failed"

    await wait_until(failed)
    [out] = await messages(db, "out")
    assert out.error is not None and "190" in out.error
    redis = connect(redis_url)
    alerts = [json.loads(a) for a in await redis.lrange("nd:alerts", 0, -1)]
    await redis.aclose()
    assert [a["kind"] for a in alerts] == ["whatsapp_token_expired"]
    assert meta_graph.sent == []


async def test_media_the_bot_cannot_read_is_stored_flagged_and_answered(
        nightdesk: AppServer, meta_graph: FakeMetaGraph, db: Database) -> None:
    await meta_graph.deliver(meta_graph.user_message(SHOPPER, kind="audio", content={
        "id": "MEDIA-VOICE-1", "mime_type": "audio/ogg; codecs=opus", "voice": True}))
    [reply] = await meta_graph.wait_for_sent(1, SHOPPER)
    assert reply.text  # the shopper is not left without an answer
    [inbound] = await messages(db, "in")
    assert inbound.payload["unreadable"] == ["audio"]
    assert inbound.payload["attachments"][0]["media_id"] == "MEDIA-VOICE-1"
    async with db.sessions() as s:
        trace = (await s.execute(select(DecisionTrace.trace).where(
            DecisionTrace.inbound_message_id == inbound.id))).scalar_one()
    # A person listens to it: the bot hands over and says so.
    assert trace["decision"]["kind"] in ("escalate", "after_hours")
    assert "unreadable_media" in [t["name"] for t in trace["decision"]["triggers"]]
    async with db.sessions() as s:
        conversation = await s.get(Conversation, inbound.conversation_id)
    assert conversation is not None and conversation.timezone == "Europe/Berlin"  # from the +49 number
    # A voice note says nothing of its language: the +49 number's country does.
    assert trace["language"] == "de" and conversation.language == "de"
    if trace["decision"]["kind"] == "after_hours":  # the promise is in the shopper's own clock time
        assert "Ihrer Zeit" in reply.text, reply.text


async def test_a_new_shoppers_burst_of_messages_is_all_accepted(nightdesk: AppServer, meta_graph: FakeMetaGraph,
                                                                db: Database) -> None:
    # Meta delivers a new user's quick messages in parallel: all must be stored, in one conversation.
    burst = [meta_graph.user_message("4917000000001", text=f"part {i} of my question") for i in range(10)]
    deliveries = await asyncio.gather(*[meta_graph.deliver(p, retries=0) for p in burst])
    assert [d.final_status for d in deliveries] == [200] * 10
    inbound = await messages(db, "in")
    assert sorted(m.text for m in inbound) == sorted(f"part {i} of my question" for i in range(10))
    assert len({m.conversation_id for m in inbound}) == 1


async def test_a_webhook_meta_retries_while_nightdesk_restarts_is_answered_once(
        nightdesk: AppServer, meta_graph: FakeMetaGraph, db: Database) -> None:
    await asyncio.to_thread(nightdesk.stop)
    payload = meta_graph.user_message(SHOPPER, text="Are you there?")
    delivery = asyncio.create_task(meta_graph.deliver(payload, retries=10, backoff=0.2))
    await asyncio.sleep(0.5)  # Meta's first attempts hit a closed port
    again = await asyncio.to_thread(AppServer(nightdesk.settings, port=nightdesk.port).start)
    try:
        again.state.channels["whatsapp"].clock = meta_graph.now
        result = await delivery
        assert result.attempts[0] != 200 and result.final_status == 200
        # Meta redelivers once more for good measure: still one message, one reply.
        assert (await meta_graph.deliver(payload)).final_status == 200
        [reply] = await meta_graph.wait_for_sent(1, SHOPPER)
        assert [m.text for m in await messages(db, "in")] == ["Are you there?"]

        async def settled() -> bool:
            out = await messages(db, "out")
            return bool(out) and all(m.status in ("sent", "failed") for m in out)

        await wait_until(settled)
        assert [m.external_id for m in await messages(db, "out")] == [reply.wamid]
    finally:
        await asyncio.to_thread(again.stop)
