"""Live events over Redis pub/sub: the widget and the agent console follow conversations through these.

Pub/sub may drop an event while a client reconnects; clients then resync from the database
(messages after the last id they saw), so events only need to be timely, not reliable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.asyncio.client import Pipeline, PubSub

log = structlog.get_logger(__name__)

CONSOLE_CHANNEL = "nd:console"


def conversation_channel(conversation_id: int) -> str:
    return f"nd:conv:{conversation_id}"


class Events:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        # Followers of conversations in this process share one subscriber connection and one reader task.
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._followers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        # Channels listened to for good (listen): one handler each, called by the reader task.
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {}

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
        """Within the block: a function waiting up to a timeout for the conversation's next event (None if none).

        The block starts once Redis confirmed the subscription (or after 5 s without): events come after it.
        """
        channel = conversation_channel(conversation_id)
        pubsub = await self._subscriber()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        followers = self._followers.setdefault(channel, set())
        followers.add(queue)
        try:
            confirmed = self._confirmed.get(channel)
            if confirmed is None:
                confirmed = self._confirmed[channel] = asyncio.get_running_loop().create_future()
                await pubsub.subscribe(channel)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(confirmed), 5.0)

            async def next_event(timeout_s: float) -> dict[str, Any] | None:
                try:
                    return await asyncio.wait_for(queue.get(), timeout_s)
                except TimeoutError:
                    return None

            yield next_event
        finally:
            followers.discard(queue)
            if not followers and self._followers.get(channel) is followers:
                del self._followers[channel]
                if channel not in self._handlers:  # a listened channel stays subscribed
                    self._confirmed.pop(channel, None)
                    if self._pubsub is not None:
                        with contextlib.suppress(Exception):  # a lost connection has no subscription left to end
                            await self._pubsub.unsubscribe(channel)

    async def listen(self, channel: str, handler: Callable[[dict[str, Any]], None], within_s: float = 5.0) -> bool:
        """From now on, call `handler` with each event published on `channel`, until aclose: one subscription
        however often this is called (later calls keep the first handler). True once Redis has confirmed the
        subscription, so that events published after this returns reach the handler; False if it did not
        within `within_s` (the caller falls back on the database)."""
        pubsub = await self._subscriber()
        confirmed = self._confirmed.get(channel)
        if confirmed is None or channel not in self._handlers:
            self._handlers[channel] = handler
            confirmed = self._confirmed[channel] = asyncio.get_running_loop().create_future()
            await pubsub.subscribe(channel)
        if not confirmed.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(confirmed), within_s)
        return confirmed.done()

    async def _subscriber(self) -> PubSub:
        """The process's shared subscriber, and the task reading it (started on first use, in this event loop)."""
        if self._reader is None or self._reader.done() or self._reader.get_loop() is not asyncio.get_running_loop():
            self._followers.clear()  # any left belong to a loop that is gone
            self._handlers.clear()
            self._confirmed.clear()
            self._pubsub = self._redis.pubsub()
            await self._pubsub.connect()
            self._reader = asyncio.create_task(self._read(self._pubsub))
        assert self._pubsub is not None
        return self._pubsub

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            try:
                raw = await pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis went away: followers poll the database meanwhile; redis-py reconnects and resubscribes.
                log.warning("events_subscriber_lost", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if raw is None or raw.get("channel") is None:
                continue
            channel = raw["channel"].decode() if isinstance(raw["channel"], bytes) else str(raw["channel"])
            if raw["type"] == "subscribe":
                confirmed = self._confirmed.get(channel)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
            elif raw["type"] == "message" and (self._followers.get(channel) or channel in self._handlers):
                try:
                    event = json.loads(raw["data"])
                except ValueError:
                    log.warning("events_unreadable", channel=channel)
                    continue
                handler = self._handlers.get(channel)
                if handler is not None:
                    try:
                        handler(event)
                    except Exception:  # one bad event must not stop the reader every follower depends on
                        log.exception("events_handler_failed", channel=channel)
                for queue in self._followers.get(channel, ()):
                    queue.put_nowait(event)

    async def aclose(self) -> None:
        """Stop the shared subscriber (the Redis client itself is the caller's to close)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[attr-defined]
            self._pubsub = None

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
