"""Waiting for a turn (bot/turns.py) on real Redis and both databases: woken by the worker's announcement,
and still answered from the database when the announcement is lost or the message was decided before."""

from __future__ import annotations

import asyncio

import pytest

import bot.pipeline
import bot.turns
from bot.pipeline import EngineWorker, running
from bot.schemas import MessagePublic
from bot.turns import TurnWaiter
from tests.pipeline.test_pipeline import engine, inbound, setup


class CountingReads:
    """Counts the waiter's reads of the database (bot.turns.decided), passing them on."""

    def __init__(self) -> None:
        self.reads = 0
        self.stored = bot.turns.decided

    async def __call__(self, db, message_id):  # type: ignore[no-untyped-def]
        self.reads += 1
        return await self.stored(db, message_id)


def same(replies: list[MessagePublic], stored: list[MessagePublic]) -> bool:
    """The same replies (SQLite gives back times without their zone, UTC)."""
    def plain(r: MessagePublic) -> MessagePublic:
        return r.model_copy(update={"created_at": r.created_at.replace(tzinfo=None)})
    return [plain(r) for r in replies] == [plain(r) for r in stored]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> CountingReads:
    counting = CountingReads()
    monkeypatch.setattr(bot.turns, "decided", counting)
    return counting


async def test_a_waiting_caller_is_woken_by_the_workers_announcement_without_reading_the_database(
        database_url, redis_url, reads):
    db, ingest, events = await setup(database_url, redis_url)
    waiter = TurnWaiter(db, events)
    worker = EngineWorker(db, ingest.redis, events, engine(), "engine-a")
    async with running([worker.run]):
        for text in ("hello", "thank you"):
            msg = inbound(text)
            async with waiter.expecting(msg) as turn_of:
                accepted = await ingest.accept(msg)
                turn = await turn_of(accepted, 20.0)
            stored = await reads.stored(db, accepted.message_id)  # what the database holds, read apart
            assert turn is not None and stored is not None
            assert turn.trace == stored.trace and turn.trace["decision"]["kind"] == "fallback"  # an engine without NLU
            assert same(turn.replies, stored.replies) and turn.replies[0].text
    assert reads.reads == 0
    await events.aclose()
    await db.dispose()


async def test_a_lost_announcement_still_gets_the_turn_from_the_database(
        database_url, redis_url, reads, monkeypatch):
    db, ingest, events = await setup(database_url, redis_url)
    monkeypatch.setattr(bot.pipeline, "queue_turn_done", lambda *args: None)  # pub/sub dropped it
    waiter = TurnWaiter(db, events)
    worker = EngineWorker(db, ingest.redis, events, engine(), "engine-a")
    msg = inbound("hello")
    async with running([worker.run]), waiter.expecting(msg) as turn_of:
        accepted = await ingest.accept(msg)
        turn = await turn_of(accepted, 20.0)
    assert reads.reads >= 1
    stored = await reads.stored(db, accepted.message_id)
    assert turn is not None and stored is not None and turn.trace == stored.trace
    assert same(turn.replies, stored.replies) and turn.replies
    await events.aclose()
    await db.dispose()


async def test_a_repeated_message_gets_the_turn_decided_for_it_before(database_url, redis_url, reads, monkeypatch):
    monkeypatch.setattr(bot.turns, "_POLLS_LISTENING", (60.0, 60.0))  # waiting for an announcement would hang
    db, ingest, events = await setup(database_url, redis_url)
    waiter = TurnWaiter(db, events)
    worker = EngineWorker(db, ingest.redis, events, engine(), "engine-a")
    msg = inbound("hello", external_id="client-42")
    accepted = await ingest.accept(msg)
    first = await worker.process(accepted.message_id)
    async with waiter.expecting(msg) as turn_of:  # the client sends it again: nothing will be announced
        again = await ingest.accept(msg)
        turn = await asyncio.wait_for(turn_of(again, 120.0), 10.0)
    assert again.duplicate and again.message_id == accepted.message_id
    assert turn is not None and [r.id for r in turn.replies] == [m.id for m in first]
    assert reads.reads == 1
    await events.aclose()
    await db.dispose()


async def test_no_decision_within_the_time_gives_none(database_url, redis_url):
    db, ingest, events = await setup(database_url, redis_url)
    waiter = TurnWaiter(db, events)
    msg = inbound("nobody works the stream")
    async with waiter.expecting(msg) as turn_of:
        accepted = await ingest.accept(msg)
        assert await turn_of(accepted, 1.5) is None
    await events.aclose()
    await db.dispose()
