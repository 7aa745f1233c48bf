"""Keeps the search index of every process on the newest knowledge-base version, through Redis.

The process that publishes calls `announce()`: it refreshes its own searcher, raises `nd:kb:version`
(never lowers it) and publishes on `nd:kb:updates`. Every process runs `KBIndexSync.run()`, which
reloads on each announcement and also polls the key, because pub/sub messages are lost while a
process is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from knowledge_base.search import KBSearcher

log = logging.getLogger(__name__)

VERSION_KEY = "nd:kb:version"
UPDATES_CHANNEL = "nd:kb:updates"

# Raise the version only if higher, and announce it, in one step (two publishers cannot go backwards).
_RAISE_AND_PUBLISH = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('SET', KEYS[1], ARGV[1])
  current = wanted
end
redis.call('PUBLISH', KEYS[2], tostring(current))
return current
"""


async def announce_version(redis: Any, kb_version: int) -> int:
    """Tell every process that `kb_version` is published (e.g. after a CLI import); returns the shared one."""
    result = await redis.eval(_RAISE_AND_PUBLISH, 2, VERSION_KEY, UPDATES_CHANNEL, str(kb_version))
    return int(result)


class KBIndexSync:
    """Announces publishes and follows other processes' publishes for one `KBSearcher`."""

    def __init__(self, redis: Any, searcher: KBSearcher, poll_interval: float = 5.0) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.redis = redis
        self.searcher = searcher
        self.poll_interval = poll_interval
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def announce(self) -> int:
        """After a publish: load it here, then tell every other process. Returns the KB version."""
        await self.searcher.refresh()
        return await announce_version(self.redis, self.searcher.version)

    async def shared_version(self) -> int:
        raw = await self.redis.get(VERSION_KEY)
        return int(raw) if raw is not None else 0

    async def catch_up(self) -> bool:
        """Reload if Redis knows a newer version than the one served here; True if it reloaded."""
        if await self.shared_version() > self.searcher.version:
            swapped = await self.searcher.refresh()
            if swapped:
                self._changed.set()
            return swapped
        return False

    async def run(self) -> None:
        """Follow announcements until cancelled (start it with `start()` as a background task)."""
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(UPDATES_CHANNEL)
        try:
            await self._safe_catch_up()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self.poll_interval)
                if message is not None:
                    log.debug("kb update announced: %s", message.get("data"))
                # On a message and on every poll timeout: the key is the truth, the message a hint.
                await self._safe_catch_up()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe(UPDATES_CHANNEL)
                await pubsub.aclose()

    async def _safe_catch_up(self) -> None:
        try:
            await self.catch_up()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Keep serving the current index; the next message or poll retries.
            log.exception("could not reload the knowledge-base index; still serving v%s", self.searcher.version)

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="kb-index-sync")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_for_version(self, version: int, within: float = 30.0) -> bool:
        """Wait until this process serves `version` or newer; False if that takes over `within` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.searcher.version < version:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))
        return True
