"""Waiting for the bot's turn on one inbound message: for request/response callers (API, benchmarks).

A worker that has committed a turn announces it on one pub/sub channel, with the decision trace and the
replies (`queue_turn_done`, in the same round trip as the replies' own events). A process that waits for
turns listens to that channel once, for good, and wakes the caller waiting for that message: no
subscription per turn and no database read. Pub/sub may drop an event (a reconnect), so a slow poll of the
database stays underneath.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio.client import Pipeline
from sqlalchemy import select

from bot.channels.base import InboundMessage
from bot.events import Events
from bot.schemas import MessagePublic
from bot.store.db import Database
from bot.store.models import DecisionTrace, Message

if TYPE_CHECKING:
    from bot.pipeline import Accepted

TURNS_CHANNEL = "nd:turns"
# Listening, the database is read when no announcement came within a second, then at doubling intervals up to
# 4 s; not listening (Redis did not confirm the subscription), at once, then every 50 ms growing to 200 ms.
_POLLS_LISTENING = (1.0, 4.0)
_POLLS_DEAF = (0.0, 0.2)


@dataclass(frozen=True)
class Turn:
    trace: dict[str, Any]
    replies: list[MessagePublic]


def turn_key(channel: str, external_id: str | None) -> str:
    """What names an inbound message for its turn, before it is stored and after."""
    return f"{channel}:{external_id}"


def queue_turn_done(pipe: Pipeline, key: str, inbound_message_id: int, trace: dict[str, Any],
                    replies: list[dict[str, Any]]) -> None:
    """Add the announcement of a committed turn to a pipeline (replies as MessagePublic JSON)."""
    pipe.publish(TURNS_CHANNEL, json.dumps(
        {"key": key, "inbound_message_id": inbound_message_id, "trace": trace, "replies": replies}, default=str))


class TurnWaiter:
    """Callers in this process waiting for turns, woken by the workers' announcements."""

    def __init__(self, db: Database, events: Events) -> None:
        self.db = db
        self.events = events
        self._waiting: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}

    @contextlib.asynccontextmanager
    async def expecting(self, msg: InboundMessage) -> AsyncIterator[Callable[[Accepted, float], Awaitable[Turn | None]]]:
        """Within the block, accept `msg`, then await the function yielded (accepted, within_s) for its turn: the
        trace and the replies once a worker has decided it, None if none did within `within_s`.

        The waiter is registered before the message is accepted, so an announcement cannot come before it.
        """
        listening = await self.events.listen(TURNS_CHANNEL, self._announced)
        key = turn_key(msg.channel, msg.external_id)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)

        async def turn(accepted: Accepted, within_s: float) -> Turn | None:
            first, cap = _POLLS_LISTENING if listening else _POLLS_DEAF
            if accepted.duplicate:  # may have been decided long ago: nothing will announce it
                first = 0.0
            return await self._wait(future, accepted.message_id, within_s, first, cap)

        try:
            yield turn
        finally:
            waiting = self._waiting.get(key, [])
            with contextlib.suppress(ValueError):
                waiting.remove(future)
            if not waiting:
                self._waiting.pop(key, None)

    def _announced(self, event: dict[str, Any]) -> None:
        for future in self._waiting.get(str(event.get("key")), ()):
            if not future.done():
                future.set_result(event)

    async def _wait(self, future: asyncio.Future[dict[str, Any]], message_id: int, within_s: float,
                    poll_in: float, cap: float) -> Turn | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while True:
            if poll_in > 0:
                with contextlib.suppress(TimeoutError):
                    event = await asyncio.wait_for(asyncio.shield(future), max(0.0, min(poll_in, deadline - loop.time())))
                    return Turn(event["trace"], [MessagePublic.model_validate(r) for r in event["replies"]])
            turn = await decided(self.db, message_id)
            if turn is not None:
                return turn
            if loop.time() >= deadline:
                return None
            poll_in = min(max(poll_in * 2, 0.05), cap)


async def decided(db: Database, inbound_message_id: int) -> Turn | None:
    """The turn of one inbound message as stored, or None while no worker has decided it."""
    async with db.sessions() as session:
        trace = (
            await session.execute(select(DecisionTrace).where(DecisionTrace.inbound_message_id == inbound_message_id))
        ).scalar_one_or_none()
        if trace is None:
            return None
        ids = trace.trace.get("reply_message_ids", [])
        replies = (
            (await session.execute(select(Message).where(Message.id.in_(ids)).order_by(Message.id))).scalars().all()
            if ids else []
        )
        return Turn(trace.trace, [MessagePublic.of(m) for m in replies])
