"""A worker killed while it holds a message: another takes over and the shopper gets exactly one reply."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from bot.pipeline import GROUP_ENGINE, STREAM_IN, EngineWorker, Sender, running
from bot.store.models import Message
from tests.conftest import ROOT
from tests.pipeline.test_pipeline import RecordingChannel, _sent, engine, inbound, setup, wait_until


async def test_killed_worker_message_is_answered_exactly_once_by_another(database_url, redis_url, tmp_path: Path):
    db, ingest, events = await setup(database_url, redis_url)
    accepted = await ingest.accept(inbound("where is my parcel?"))
    flag = tmp_path / "holding"
    doomed = subprocess.Popen(
        [sys.executable, "-m", "tests.pipeline.holding_worker", database_url, redis_url, str(flag)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        for _ in range(300):
            if flag.exists():
                break
            await asyncio.sleep(0.1)
        assert flag.read_text() == str(accepted.message_id), "the doomed worker never took the message"
        pending = await ingest.redis.xpending(STREAM_IN, GROUP_ENGINE)
        assert pending["pending"] == 1 and pending["consumers"][0]["name"] == b"doomed-worker"
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)

    channel = RecordingChannel()
    survivor = EngineWorker(db, ingest.redis, events, engine(), "survivor", claim_idle_ms=300)
    sender = Sender(db, ingest.redis, events, {"test": channel}.get, "sender", claim_idle_ms=300)
    async with running([survivor.run, sender.run]):
        await wait_until(lambda: _sent(channel, 1))
        await asyncio.sleep(1.5)  # time enough for any second reply to show up
    assert len(channel.sent) == 1
    assert (await ingest.redis.xpending(STREAM_IN, GROUP_ENGINE))["pending"] == 0
    async with db.sessions() as s:
        inbound_row = await s.get(Message, accepted.message_id)
        replies = (await s.execute(select(Message).where(Message.direction == "out"))).scalars().all()
    assert inbound_row is not None and inbound_row.status == "processed"
    assert len(replies) == 1 and replies[0].status == "sent"
    await db.dispose()
