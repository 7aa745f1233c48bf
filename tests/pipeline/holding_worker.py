"""A worker process that takes a message and then hangs, to be killed by the test (see test_worker_death)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.events import Events
from bot.pipeline import EngineWorker, TurnOutcome
from bot.redis_conn import connect
from bot.store.db import Database


class HangingEngine:
    def __init__(self, flag: Path) -> None:
        self.flag = flag

    async def handle(self, session, conversation, message) -> TurnOutcome:  # type: ignore[no-untyped-def]
        self.flag.write_text(str(message.id))  # "I hold it now"
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def main(database_url: str, redis_url: str, flag: str) -> None:
    db = Database(database_url)
    redis = connect(redis_url)
    worker = EngineWorker(db, redis, Events(redis), HangingEngine(Path(flag)), "doomed-worker", claim_idle_ms=300)
    await worker.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
