"""create_app(settings): wires stores, NLU, KB, handoff, channels and (in embedded mode) the workers."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from bot.auth import StaffSessions
from bot.channels.base import Channel
from bot.config import Settings
from bot.events import Events
from bot.logs import configure_logging
from bot.pipeline import EngineWorker, Ingest, Sender, running
from bot.redis_conn import EmbeddedRedis, connect
from bot.runtime import build_runtime
from bot.store.db import Database
from bot.turns import TurnWaiter

log = structlog.get_logger(__name__)
WEB = Path(__file__).resolve().parent / "web"

# Channel modules: each exposes `router` and `build(app_state) -> Channel | None` (None = not configured).
CHANNEL_MODULES = ("api", "widget", "rest", "whatsapp", "email", "amazon")
API_MODULES = ("health", "auth", "converse", "files", "kb", "console", "customers")


def consumer_name(role: str) -> str:
    return f"{role}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def create_app(settings: Settings) -> FastAPI:
    configure_logging(settings.log_level, settings.log_json)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        state.settings = settings
        embedded = None
        if settings.redis_url:
            state.redis = connect(settings.redis_url)
        else:
            embedded = EmbeddedRedis(settings.var_dir)
            state.redis = connect(embedded.url)
        state.db = Database(settings.effective_database_url)
        await state.db.migrate()
        state.events = Events(state.redis)
        state.ingest = Ingest(state.db, state.redis, state.events)
        state.turns = TurnWaiter(state.db, state.events)
        state.staff_sessions = StaffSessions(state.redis)
        state.runtime = await build_runtime(settings, state.db, state.redis, state.events)
        state.channels = {}
        for module in state.channel_modules:
            channel: Channel | None = module.build(state)
            if channel is not None:
                state.channels[channel.name] = channel
        loops = [r for r in state.runtime.background_loops]
        if settings.embedded_workers:
            for _ in range(settings.workers):
                loops.append(EngineWorker(state.db, state.redis, state.events, state.runtime.engine,
                                          consumer_name("engine"), settings.claim_idle_ms).run)
            loops.append(Sender(state.db, state.redis, state.events, state.channels.get, consumer_name("sender"),
                                settings.claim_idle_ms, settings.send_max_attempts).run)
            loops.append(_stranded_sweeper(state.ingest))
        for module in state.channel_modules:
            loops.extend(getattr(module, "background_loops", lambda _s: [])(state))
        log.info("nightdesk_started", database=state.db.engine.dialect.name,
                 redis="embedded" if embedded else "external", channels=sorted(state.channels))
        async with running(loops):
            yield
        await state.runtime.close()
        await state.events.aclose()
        await state.redis.aclose()
        await state.db.dispose()
        if embedded is not None:
            embedded.close()

    app = FastAPI(title="Nightdesk", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.channel_modules = []

    @app.middleware("http")
    async def request_id(request: Request, call_next):  # type: ignore[no-untyped-def]
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        structlog.contextvars.bind_contextvars(request_id=rid)
        try:
            response: Response = await call_next(request)
        finally:
            structlog.contextvars.clear_contextvars()
        response.headers["x-request-id"] = rid
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in exc.errors()
        ]
        return JSONResponse({"detail": "invalid request: " + "; ".join(problems), "errors": problems}, status_code=400)

    for name in API_MODULES:
        module = _optional_module(f"bot.api.{name}")
        if module is not None:
            app.include_router(module.router)  # type: ignore[attr-defined]
    for name in CHANNEL_MODULES:
        module = _optional_module(f"bot.channels.{name}")
        if module is not None and hasattr(module, "build"):
            if getattr(module, "router", None) is not None:
                app.include_router(module.router)
            app.state.channel_modules.append(module)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    return app


def _stranded_sweeper(ingest: Ingest):  # type: ignore[no-untyped-def]
    async def sweep(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                count = await ingest.requeue_stranded()
                if count:
                    log.warning("requeued_stranded_messages", count=count)
            except Exception:
                log.exception("stranded_sweep_failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=30)

    return sweep
