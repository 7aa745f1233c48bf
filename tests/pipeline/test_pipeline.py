"""The message pipeline on real Redis and both databases: write-ahead, dedup, exactly one reply."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from actions.responses import ResponseCatalog
from bot.channels.base import InboundMessage, OutboundMessage, SendError, SendResult
from bot.engine import ConversationEngine
from bot.events import Events
from bot.pipeline import GROUP_ENGINE, STREAM_IN, EngineWorker, Ingest, Sender, running
from bot.redis_conn import connect
from bot.runtime import DomainResponses
from bot.store.db import Database
from bot.store.models import DecisionTrace, Message
from tests.conftest import DEMO_PROJECT


class RecordingChannel:
    """The far side of a channel: remembers what was sent, can fail transiently first."""

    name = "test"

    def __init__(self, transient_failures: int = 0) -> None:
        self.sent: list[OutboundMessage] = []
        self.failures_left = transient_failures

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.failures_left:
            self.failures_left -= 1
            raise SendError("rate limited", retryable=True, code="429", retry_after=0.01)
        self.sent.append(message)
        return SendResult(external_id=f"ext-{message.message_id}")


def engine() -> ConversationEngine:
    return ConversationEngine(nlu=None, knowledge=None, actions=None, handoff=None,
                              responses=DomainResponses(ResponseCatalog.from_domain(DEMO_PROJECT / "domain.yml", "en")),
                              languages=["en", "de"], fallback_language="en")


async def setup(database_url: str, redis_url: str) -> tuple[Database, Ingest, Events]:
    db = Database(database_url)
    await db.migrate()
    redis = connect(redis_url)
    events = Events(redis)
    return db, Ingest(db, redis, events), events


def inbound(text: str, external_id: str | None = None, sender: str = "shopper-1") -> InboundMessage:
    return InboundMessage(channel="test", external_id=external_id or uuid.uuid4().hex, sender=sender, text=text)


async def wait_until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def count(db: Database, *where) -> int:  # type: ignore[no-untyped-def]
    async with db.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(Message).where(*where))).scalar_one())


async def test_an_accepted_message_is_stored_before_any_worker_runs(database_url, redis_url):
    db, ingest, _ = await setup(database_url, redis_url)
    accepted = await ingest.accept(inbound("hello"))
    assert not accepted.duplicate
    async with db.sessions() as s:
        stored = await s.get(Message, accepted.message_id)
    assert stored is not None and stored.status == "received" and stored.text == "hello"
    assert await ingest.redis.xlen(STREAM_IN) == 1
    await db.dispose()


async def test_fifty_duplicate_deliveries_give_one_message_and_one_reply(database_url, redis_url):
    db, ingest, events = await setup(database_url, redis_url)
    results = await asyncio.gather(*(ingest.accept(inbound("hi there", external_id="wamid.1")) for _ in range(50)))
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.message_id for r in results}) == 1
    channel = RecordingChannel()
    worker = EngineWorker(db, ingest.redis, events, engine(), "engine-a", claim_idle_ms=500)
    sender = Sender(db, ingest.redis, events, {"test": channel}.get, "sender-a", claim_idle_ms=500)
    async with running([worker.run, sender.run]):
        await wait_until(lambda: _sent(channel, 1))
        await asyncio.sleep(0.5)
    assert len(channel.sent) == 1
    assert await count(db, Message.direction == "out") == 1
    await db.dispose()


class TogetherEngine:
    """Lets two workers decide the same message at the same time: each waits until both are deciding."""

    def __init__(self, inner: ConversationEngine) -> None:
        self.inner = inner
        self.deciding = 0
        self.both = asyncio.Event()

    async def handle(self, session, conversation, message):  # type: ignore[no-untyped-def]
        self.deciding += 1
        if self.deciding == 2:
            self.both.set()
        await asyncio.wait_for(self.both.wait(), 10)
        return await self.inner.handle(session, conversation, message)


async def test_two_workers_deciding_one_message_store_one_decision_and_both_return_it(database_url, redis_url):
    # `nightdesk chat` decides its messages itself; a server on the same stream decided them too, and the
    # loser crashed on the decision trace's unique key.
    db, ingest, events = await setup(database_url, redis_url)
    accepted = await ingest.accept(inbound("anything"))
    together = TogetherEngine(engine())
    first = EngineWorker(db, ingest.redis, events, together, "engine-a")  # type: ignore[arg-type]
    second = EngineWorker(db, ingest.redis, events, together, "engine-b")  # type: ignore[arg-type]
    a, b = await asyncio.gather(first.process(accepted.message_id), second.process(accepted.message_id))
    assert together.deciding == 2
    assert [m.id for m in a] == [m.id for m in b] and len(a) == 1
    assert await count(db, Message.direction == "out") == 1
    async with db.sessions() as s:
        traces = (await s.execute(select(DecisionTrace))).scalars().all()
    assert len(traces) == 1 and traces[0].trace["reply_message_ids"] == [a[0].id]
    await db.dispose()


async def _sent(channel: RecordingChannel, n: int) -> bool:
    return len(channel.sent) >= n


async def test_a_transient_send_failure_is_retried_and_the_status_recorded(database_url, redis_url):
    db, ingest, events = await setup(database_url, redis_url)
    await ingest.accept(inbound("anything"))
    channel = RecordingChannel(transient_failures=2)
    worker = EngineWorker(db, ingest.redis, events, engine(), "engine-a")
    sender = Sender(db, ingest.redis, events, {"test": channel}.get, "sender-a")
    async with running([worker.run, sender.run]):
        await wait_until(lambda: _sent(channel, 1))
        await wait_until(lambda: _status(db, "sent"))
    async with db.sessions() as s:
        reply = (await s.execute(select(Message).where(Message.direction == "out"))).scalar_one()
        trace = (await s.execute(select(DecisionTrace))).scalar_one()
    assert reply.external_id == f"ext-{reply.id}"
    assert trace.trace["decision"]["kind"] == "fallback"
    assert trace.trace["reply_message_ids"] == [reply.id]
    await db.dispose()


async def _status(db: Database, status: str) -> bool:
    return await count(db, Message.direction == "out", Message.status == status) >= 1


async def test_a_permanent_send_failure_is_not_retried(database_url, redis_url):
    class Broken(RecordingChannel):
        async def send(self, message: OutboundMessage) -> SendResult:
            self.failures_left += 1
            raise SendError("token expired", retryable=False, code="190")

    db, ingest, events = await setup(database_url, redis_url)
    await ingest.accept(inbound("anything"))
    channel = Broken()
    async with running([EngineWorker(db, ingest.redis, events, engine(), "e").run,
                        Sender(db, ingest.redis, events, {"test": channel}.get, "s").run]):
        await wait_until(lambda: _status(db, "failed"))
    assert channel.failures_left == 1
    async with db.sessions() as s:
        reply = (await s.execute(select(Message).where(Message.direction == "out"))).scalar_one()
    assert reply.error and "190" in reply.error
    await db.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_stranded_messages_are_announced_again(database_url, redis_url):
    db, ingest, _ = await setup(database_url, redis_url)
    accepted = await ingest.accept(inbound("lost between commit and XADD"))
    await ingest.redis.delete(STREAM_IN)  # as if the process died right after the commit
    assert await ingest.requeue_stranded(older_than_s=0) == 1
    entries = await ingest.redis.xrange(STREAM_IN)
    assert [int(f[b"message_id"]) for _, f in entries] == [accepted.message_id]
    await db.dispose()


class HeldEngine:
    """Decides nothing until let go: keeps a worker's slots busy."""

    def __init__(self, inner: ConversationEngine) -> None:
        self.inner = inner
        self.deciding = 0
        self.go = asyncio.Event()

    async def handle(self, session, conversation, message):  # type: ignore[no-untyped-def]
        self.deciding += 1
        await asyncio.wait_for(self.go.wait(), 20)
        return await self.inner.handle(session, conversation, message)


async def test_a_busy_worker_takes_no_more_messages_than_it_has_slots_and_another_worker_gets_the_rest(
        database_url, redis_url):
    # A worker read up to 20 messages at once and queued those its slots could not take: they were its own until
    # it acknowledged them, so another worker sat idle beside the queue.
    db, ingest, events = await setup(database_url, redis_url)
    for i in range(6):
        await ingest.accept(inbound(f"message {i}", sender=f"shopper-{i}"))
    held = HeldEngine(engine())
    busy = EngineWorker(db, ingest.redis, events, held, "engine-busy", concurrency=2)  # type: ignore[arg-type]
    async with running([busy.run]):
        await wait_until(lambda: _deciding(held, 2))
        await asyncio.sleep(0.3)
        pending = await ingest.redis.xpending(STREAM_IN, GROUP_ENGINE)
        assert pending["pending"] == 2, f"the busy worker took {pending['pending']} messages with 2 slots"
        other = EngineWorker(db, ingest.redis, events, engine(), "engine-free", concurrency=4)
        async with running([other.run]):
            await wait_until(lambda: _decided(db, 4))
        held.go.set()
        await wait_until(lambda: _decided(db, 6))
    assert held.deciding == 2
    await db.dispose()


async def _deciding(engine: HeldEngine, n: int) -> bool:
    return engine.deciding >= n


async def _decided(db: Database, n: int) -> bool:
    async with db.sessions() as s:
        return int((await s.execute(select(func.count()).select_from(DecisionTrace))).scalar_one()) >= n
