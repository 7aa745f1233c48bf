"""FastAPI dependencies as Annotated aliases: routes declare what they need, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from bot.auth import StaffUser, current_user, require
from bot.config import Settings
from bot.events import Events
from bot.pipeline import Ingest


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.db.sessions() as session:
        yield session


def _redis(request: Request) -> aioredis.Redis:
    return request.app.state.redis  # type: ignore[no-any-return]


def _ingest(request: Request) -> Ingest:
    return request.app.state.ingest  # type: ignore[no-any-return]


def _events(request: Request) -> Events:
    return request.app.state.events  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionDep = Annotated[AsyncSession, Depends(_session)]
RedisDep = Annotated[aioredis.Redis, Depends(_redis)]
IngestDep = Annotated[Ingest, Depends(_ingest)]
EventsDep = Annotated[Events, Depends(_events)]
CurrentUser = Annotated[StaffUser, Depends(current_user)]
AgentUser = Annotated[StaffUser, Depends(require("agent", "lead"))]
LeadUser = Annotated[StaffUser, Depends(require("lead"))]
ContentOwner = Annotated[StaffUser, Depends(require("content_owner"))]
AdminUser = Annotated[StaffUser, Depends(require("admin"))]
