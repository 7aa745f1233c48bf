"""Scale-out processes: `nightdesk worker` and `nightdesk sender` without the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog

from bot.app import CHANNEL_MODULES, _optional_module, consumer_name
from bot.config import Settings
from bot.events import Events
from bot.logs import configure_logging
from bot.pipeline import EngineWorker, Ingest, Sender, running
from bot.redis_conn import connect
from bot.runtime import build_runtime
from bot.store.db import Database

log = structlog.get_logger(__name__)


class _State:
    """The same shape as app.state, for channel modules' build()."""


async def run_workers(settings: Settings, engine_workers: int, senders: int) -> None:
    configure_logging(settings.log_level, settings.log_json)
    state = _State()
    state.settings = settings  # type: ignore[attr-defined]
    state.redis = redis = connect(settings.redis_url)  # type: ignore[attr-defined]
    state.db = db = Database(settings.effective_database_url)  # type: ignore[attr-defined]
    await db.migrate()
    state.events = events = Events(redis)  # type: ignore[attr-defined]
    state.ingest = Ingest(db, redis, events)  # type: ignore[attr-defined]
    runtime = await build_runtime(settings, db, redis, events)
    state.runtime = runtime  # type: ignore[attr-defined]
    channels = {}
    for name in CHANNEL_MODULES:
        module = _optional_module(f"bot.channels.{name}")
        if module is not None and hasattr(module, "build"):
            channel = module.build(state)
            if channel is not None:
                channels[channel.name] = channel
    loops = [EngineWorker(db, redis, events, runtime.engine, consumer_name("engine"), settings.claim_idle_ms).run
             for _ in range(engine_workers)]
    loops += [Sender(db, redis, events, channels.get, consumer_name("sender"), settings.claim_idle_ms,
                     settings.send_max_attempts).run for _ in range(senders)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    log.info("workers_started", engine_workers=engine_workers, senders=senders)
    async with running(loops):
        await stop.wait()
    await runtime.close()
    await redis.aclose()
    await db.dispose()
