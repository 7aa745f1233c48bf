"""Fixtures for the handoff tests: a fresh database (SQLite and PostgreSQL), the real Redis, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from handoff.clock import FakeClock
from handoff.models import HandoffBase
from handoff.queues import connect
from handoff.service import HandoffService

SHENZHEN_HOURS = {day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")}


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(HandoffBase.metadata.create_all)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    # Tuesday 10:00 in Shenzhen: the team is open.
    return FakeClock(datetime(2026, 3, 10, 2, 0, tzinfo=UTC))


@pytest.fixture
async def service(sessions: async_sessionmaker[AsyncSession], redis_url: str, clock: FakeClock
                  ) -> AsyncIterator[HandoffService]:
    redis = connect(redis_url)
    yield HandoffService(sessions, redis, clock=clock, router_min_idle_ms=1000)
    await redis.aclose()
