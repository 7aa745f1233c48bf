"""The shipped `tracking` canned response fills {{order.tracking_url}} with the carrier's page for the ticket's
order, as the store connector knows it, in the ticket detail an agent opens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions import registry
from actions.demo_store import DEMO_STORE_DIR, DemoStore, load_demo_store
from actions.invoices import InvoiceStore
from actions.models import StoreBase
from actions.seller import SellerProfile
from bot.api.console import _canned_for, _customer_orders
from handoff.canned import canned_values
from handoff.models import HandoffTicket

PROJECT = DEMO_STORE_DIR.parent
CUSTOMER = {"id": "7", "name": "Chloé Bernard", "email": "chloe.bernard311@example.org"}


def shipment_of(number: str) -> dict[str, str]:
    orders = json.loads((DEMO_STORE_DIR / "orders.json").read_text(encoding="utf-8"))["orders"]
    return next(o for o in orders if o["number"] == number)["shipments"][-1]


@pytest.fixture
def restore_registry() -> Iterator[None]:
    yield
    registry.reset()


@pytest.fixture
async def state(sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
                restore_registry: None) -> SimpleNamespace:
    async with sessions.kw["bind"].begin() as conn:
        await conn.run_sync(StoreBase.metadata.create_all)
    await load_demo_store(sessions)
    seller = SellerProfile.load(DEMO_STORE_DIR / "seller.yml")
    registry.configure(registry.ActionContext(store=DemoStore(sessions, seller), seller=seller,
                                              invoices=InvoiceStore(tmp_path / "invoices")))
    return SimpleNamespace(db=SimpleNamespace(sessions=sessions),
                           settings=SimpleNamespace(project=PROJECT, fallback_language="en"))


def ticket(order_number: str | None, language: str = "en") -> HandoffTicket:
    return HandoffTicket(id=1, order_number=order_number, language=language, customer_id="7", conversation_id="1",
                         channel="widget", triggers=[])


async def test_the_tracking_response_links_the_orders_real_tracking_page(state: SimpleNamespace) -> None:
    shipment = shipment_of("ND-100105")
    assert shipment["tracking_url"].startswith("https://")
    for typed, language in (("ND-100105", "en"), ("#nd-100105", "de")):  # as the shopper typed it
        case = ticket(typed, language)
        orders = await _customer_orders(state, case, [])
        tracking = next(c for c in _canned_for(state, case, CUSTOMER, None, orders) if c["key"] == "tracking")
        assert tracking["error"] is None
        assert shipment["tracking_url"] in tracking["text"]
        assert "ND-100105" in tracking["text"] and "Chloé Bernard" in tracking["text"]


async def test_an_order_not_shipped_yet_says_what_is_missing_instead_of_a_blank(state: SimpleNamespace) -> None:
    orders = json.loads((DEMO_STORE_DIR / "orders.json").read_text(encoding="utf-8"))["orders"]
    unshipped = next(o["number"] for o in orders if not o["shipments"])
    case = ticket(unshipped)
    tracking = next(c for c in _canned_for(state, case, CUSTOMER, None, await _customer_orders(state, case, []))
                    if c["key"] == "tracking")
    assert tracking["error"] is not None and "order.tracking_url" in tracking["error"]
    assert "{{order.tracking_url}}" in tracking["text"]


def test_without_an_order_on_the_ticket_the_customers_only_order_is_used() -> None:
    one = [{"number": "ND-1", "tracking_url": "https://t.example/1"}]
    assert canned_values(CUSTOMER, None, one)["order"]["tracking_url"] == "https://t.example/1"
    two = one + [{"number": "ND-2", "tracking_url": "https://t.example/2"}]
    assert canned_values(CUSTOMER, None, two)["order"] == {}  # which one? the agent picks, not the template
