"""`nightdesk chat`: a conversation with the bot in the terminal, through the same pipeline and engine."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from rich.console import Console

from bot.channels.base import InboundMessage
from bot.config import Settings
from bot.events import Events
from bot.pipeline import EngineWorker, Ingest
from bot.redis_conn import EmbeddedRedis, connect
from bot.runtime import build_runtime
from bot.store.db import Database
from bot.store.models import DecisionTrace, Message

console = Console()


async def chat_loop(settings: Settings, debug: bool = False, locale: str | None = None) -> None:
    embedded = None if settings.redis_url else EmbeddedRedis(settings.var_dir)
    redis = connect(settings.redis_url or embedded.url)  # type: ignore[union-attr]
    db = Database(settings.effective_database_url)
    await db.migrate()
    events = Events(redis)
    ingest = Ingest(db, redis, events)
    runtime = await build_runtime(settings, db, redis, events)
    worker = EngineWorker(db, redis, events, runtime.engine, "terminal")
    sender = f"terminal-{uuid.uuid4().hex[:8]}"
    console.print("[bold]Nightdesk[/bold] — type a message as a shopper would; /quit or Ctrl-D to leave.")
    try:
        while True:
            try:
                text = await asyncio.to_thread(input, "you> ")
            except EOFError:
                break
            text = text.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            payload = text if text.startswith("/") else None
            accepted = await ingest.accept(InboundMessage(channel="terminal", external_id=uuid.uuid4().hex,
                                                          sender=sender, text=text, locale_hint=locale,
                                                          payload=payload))
            replies = await worker.process(accepted.message_id)
            async with db.sessions() as session, session.begin():
                for reply in replies:
                    row = await session.get(Message, reply.id)
                    if row is not None:
                        row.status = "delivered"
                trace = (await session.execute(
                    DecisionTrace.__table__.select().where(DecisionTrace.inbound_message_id == accepted.message_id)
                )).first()
            for reply in replies:
                console.print(f"[cyan]bot>[/cyan] {reply.text}", markup=True, highlight=False)
                for q in (reply.payload or {}).get("quick_replies", []):
                    console.print(f"      [{q['title']}]  type {q['payload']}", highlight=False, markup=False)
            if debug and trace is not None:
                console.print_json(json.dumps(trace.trace, default=str, ensure_ascii=False))
    finally:
        await runtime.close()
        await redis.aclose()
        await db.dispose()
        if embedded is not None:
            embedded.close()
    sys.stdout.flush()
