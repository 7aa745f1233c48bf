"""Live events over Redis pub/sub: the widget and the agent console follow conversations through these.

Pub/sub may drop an event while a client reconnects; clients then resync from the database
(messages after the last id they saw), so events only need to be timely, not reliable.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

CONSOLE_CHANNEL = "nd:console"


def conversation_channel(conversation_id: int) -> str:
    return f"nd:conv:{conversation_id}"


class Events:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def publish(self, conversation_id: int, event: dict[str, Any], *, console: bool = True) -> None:
        data = json.dumps({"conversation_id": conversation_id, **event}, default=str)
        await self._redis.publish(conversation_channel(conversation_id), data)
        if console:
            await self._redis.publish(CONSOLE_CHANNEL, data)

    async def publish_console(self, event: dict[str, Any]) -> None:
        await self._redis.publish(CONSOLE_CHANNEL, json.dumps(event, default=str))

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
