"""Live events over Redis pub/sub: the widget and the agent console follow conversations through these.

Pub/sub may drop an event while a client reconnects; clients then resync from the database
(messages after the last id they saw), so events only need to be timely, not reliable.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

CONSOLE_CHANNEL = "nd:console"


def conversation_channel(conversation_id: int) -> str:
    return f"nd:conv:{conversation_id}"


class Events:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def publish(self, conversation_id: int, event: dict[str, Any], *, console: bool = True) -> None:
        pipe = self._redis.pipeline(transaction=False)
        self.queue(pipe, conversation_id, event, console=console)
        await pipe.execute()

    @staticmethod
    def queue(pipe: Pipeline, conversation_id: int, event: dict[str, Any], *, console: bool = True) -> None:
        """Add the event's publishes to a pipeline: sent with the caller's other commands in one round trip."""
        data = json.dumps({"conversation_id": conversation_id, **event}, default=str)
        pipe.publish(conversation_channel(conversation_id), data)
        if console:
            pipe.publish(CONSOLE_CHANNEL, data)

    async def publish_console(self, event: dict[str, Any]) -> None:
        await self._redis.publish(CONSOLE_CHANNEL, json.dumps(event, default=str))

    @contextlib.asynccontextmanager
    async def following(self, conversation_id: int) -> AsyncIterator[Callable[[float], Awaitable[dict[str, Any] | None]]]:
        """Within the block: a function waiting up to a timeout for the conversation's next event (None if none)."""
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(conversation_channel(conversation_id))
        await pubsub.get_message(timeout=5.0)  # the subscription's confirmation: events come after it

        async def next_event(timeout_s: float) -> dict[str, Any] | None:
            raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout_s)
            return json.loads(raw["data"]) if raw is not None and raw.get("type") == "message" else None

        try:
            yield next_event
        finally:
            await pubsub.aclose()  # type: ignore[attr-defined]

    async def subscribe(self, *channels: str) -> AsyncIterator[dict[str, Any]]:
        """Yield events from the given pub/sub channels until the caller stops iterating."""
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(*channels)
        try:
            async for raw in pubsub.listen():
                if raw.get("type") != "message":
                    continue
                yield json.loads(raw["data"])
        finally:
            await pubsub.unsubscribe(*channels)
            await pubsub.aclose()  # type: ignore[attr-defined]
