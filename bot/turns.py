"""Waiting for the bot's turn on one inbound message: for request/response callers (API, REST, terminal)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from bot.store.db import Database
from bot.store.models import DecisionTrace, Message


async def wait_for_turn(db: Database, inbound_message_id: int, within_s: float = 30.0
                        ) -> tuple[dict[str, Any], list[Message]] | None:
    """The decision trace and the replies of one inbound message, once a worker has decided it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    delay = 0.01
    while loop.time() < deadline:
        async with db.sessions() as session:
            trace = (
                await session.execute(select(DecisionTrace).where(DecisionTrace.inbound_message_id == inbound_message_id))
            ).scalar_one_or_none()
            if trace is not None:
                ids = trace.trace.get("reply_message_ids", [])
                replies = (
                    (await session.execute(select(Message).where(Message.id.in_(ids)).order_by(Message.id))).scalars().all()
                    if ids else []
                )
                return trace.trace, list(replies)
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.2)
    return None
