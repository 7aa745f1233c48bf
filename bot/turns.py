"""Waiting for the bot's turn on one inbound message: for request/response callers (API, REST, terminal)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from bot.events import Events
from bot.store.db import Database
from bot.store.models import DecisionTrace, Message

# Events after which a worker has committed the turn: typing stops, or a reply shows.
_TURN_DONE = ("typing", "message")


async def wait_for_turn(db: Database, inbound_message_id: int, within_s: float = 30.0, *,
                        events: Events | None = None, conversation_id: int | None = None,
                        ) -> tuple[dict[str, Any], list[Message]] | None:
    """The decision trace and the replies of one inbound message, once a worker has decided it.

    With `events` and `conversation_id`, the database is read again when the worker says it is done (typing
    stopped, a reply shown), not on a timer; a slow poll stays underneath, as pub/sub may drop an event.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    if events is None or conversation_id is None:
        delay = 0.01
        while loop.time() < deadline:
            turn = await _decided(db, inbound_message_id)
            if turn is not None:
                return turn
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.2)
        return None
    async with events.following(conversation_id) as next_event:
        delay = 0.1
        check = True  # once after subscribing: the turn may have been decided before
        while loop.time() < deadline:
            if check:
                turn = await _decided(db, inbound_message_id)
                if turn is not None:
                    return turn
            event = await next_event(max(0.0, min(delay, deadline - loop.time())))
            if event is None:
                check, delay = True, min(delay * 2, 1.0)
            else:
                check = event.get("type") in _TURN_DONE and not (event.get("type") == "typing" and event.get("on"))
    return None


async def _decided(db: Database, inbound_message_id: int) -> tuple[dict[str, Any], list[Message]] | None:
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
        return trace.trace, list(replies)
