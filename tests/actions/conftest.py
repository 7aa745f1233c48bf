"""Fixtures for the actions tests: the demo store loaded into a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from actions.demo_store import DEMO_STORE_DIR, DemoStore, load_demo_store
from actions.models import StoreBase
from actions.seller import SellerProfile


@pytest.fixture(scope="session")
def demo_data() -> dict[str, Any]:
    return json.loads((DEMO_STORE_DIR / "orders.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def seller() -> SellerProfile:
    return SellerProfile.load(DEMO_STORE_DIR / "seller.yml")


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(StoreBase.metadata.create_all)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
async def demo_store(sessionmaker: async_sessionmaker[AsyncSession], seller: SellerProfile) -> DemoStore:
    await load_demo_store(sessionmaker)
    return DemoStore(sessionmaker, seller)


def first_order(data: dict[str, Any], status: str, **where: Any) -> dict[str, Any]:
    """The first demo order in `status` matching the extra conditions (e.g. country="DE")."""
    for order in data["orders"]:
        if order["status"] != status:
            continue
        if "country" in where and order["shipping_address"]["country"] != where["country"]:
            continue
        if where.get("with_shipment") and not order["shipments"]:
            continue
        return order
    raise LookupError(f"no demo order in {status} with {where}")
