"""The demo store loads into SQLite and PostgreSQL and keeps what shoppers change."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions.demo_store import DemoStore, load_demo_store, normalize_order_number
from actions.seller import SellerProfile
from actions.store import ORDER_STATUSES, ActionNotAllowed, Address, OrderNotFound, StoreConnector
from tests.actions.conftest import first_order


async def test_demo_store_has_every_state_and_country(demo_data: dict[str, Any]) -> None:
    orders = demo_data["orders"]
    assert len(orders) >= 200
    assert {o["status"] for o in orders} == set(ORDER_STATUSES)
    countries = {o["shipping_address"]["country"] for o in orders}
    assert {"US", "DE", "FR", "ES", "IT", "NL", "GB", "JP", "AU", "CA"} <= countries
    carriers = {s["carrier"] for o in orders for s in o["shipments"]}
    assert {"UPS", "USPS", "FedEx", "DHL", "China Post", "Cainiao", "4PX", "Yanwen", "YunExpress"} <= carriers
    per_customer: dict[str, int] = {}
    for o in orders:
        per_customer[o["customer_id"]] = per_customer.get(o["customer_id"], 0) + 1
    assert max(per_customer.values()) >= 3


def test_committed_orders_are_what_the_generator_makes(demo_data: dict[str, Any]) -> None:
    from actions.demo_data import generate

    assert generate() == demo_data


async def test_loading_twice_adds_nothing_and_keeps_changes(
    sessionmaker: async_sessionmaker[AsyncSession], demo_store: DemoStore, demo_data: dict[str, Any]
) -> None:
    assert isinstance(demo_store, StoreConnector)
    paid = first_order(demo_data, "paid")
    await demo_store.cancel_order(paid["number"], "changed my mind")
    report = await load_demo_store(sessionmaker)
    assert report.orders_added == 0 and report.customers_added == 0
    assert report.orders_total == len(demo_data["orders"])
    assert (await demo_store.get_order(paid["number"])).status == "cancelled"


async def test_order_lookup_by_number_email_and_phone(demo_store: DemoStore, demo_data: dict[str, Any]) -> None:
    raw = first_order(demo_data, "in_transit", with_shipment=True)
    order = await demo_store.get_order(raw["number"].lower().replace("-", " "))
    assert order.number == raw["number"]
    assert order.latest_shipment is not None
    assert order.latest_shipment.tracking_number == raw["shipments"][0]["tracking_number"]
    assert order.total == order.subtotal
    by_email = await demo_store.find_orders(email=raw["email"].upper())
    assert raw["number"] in [o.number for o in by_email]
    by_phone = await demo_store.find_orders(phone=raw["phone"])
    assert raw["number"] in [o.number for o in by_phone]
    customer = await demo_store.get_customer(email=raw["email"])
    assert customer is not None and customer.id == raw["customer_id"]
    with pytest.raises(OrderNotFound):
        await demo_store.get_order("ND-999999")


async def test_cancel_only_before_shipping(demo_store: DemoStore, demo_data: dict[str, Any]) -> None:
    processing = first_order(demo_data, "processing")
    cancelled = await demo_store.cancel_order(processing["number"], "ordered twice")
    assert cancelled.status == "cancelled"
    assert cancelled.refunds[-1].amount == cancelled.total and cancelled.refunds[-1].status == "pending"
    with pytest.raises(ActionNotAllowed) as exc:
        await demo_store.cancel_order(processing["number"], "again")
    assert exc.value.reason == "already_cancelled"
    shipped = first_order(demo_data, "in_transit")
    with pytest.raises(ActionNotAllowed) as exc:
        await demo_store.cancel_order(shipped["number"], "too late")
    assert exc.value.reason == "already_shipped"
    assert (await demo_store.get_order(shipped["number"])).status == "in_transit"


async def test_address_change_persists_before_shipping(demo_store: DemoStore, demo_data: dict[str, Any]) -> None:
    pending = first_order(demo_data, "pending")
    country = pending["shipping_address"]["country"]
    new = Address(name="Jo Doe", line1="Neue Straße 5", city="Köln", postal_code="50667", country=country)
    await demo_store.change_address(pending["number"], new)
    assert (await demo_store.get_order(pending["number"])).shipping_address == new
    delivered = first_order(demo_data, "delivered")
    with pytest.raises(ActionNotAllowed):
        await demo_store.change_address(delivered["number"], new)


async def test_return_request_persists(demo_store: DemoStore, demo_data: dict[str, Any]) -> None:
    delivered = first_order(demo_data, "delivered")
    created = await demo_store.create_return(delivered["number"], None, "wrong size")
    assert created.id.startswith("RMA-") and created.status == "requested"
    assert {i.sku for i in created.items} == {i["sku"] for i in delivered["items"]}
    # Asking again gives the same open return instead of a second one.
    again = await demo_store.create_return(delivered["number"], None, "wrong size")
    assert again.id == created.id
    assert [r.id for r in await demo_store.returns(delivered["number"])] == [created.id]
    # A reason told afterwards is kept with the return, after the first one.
    await demo_store.add_return_note(delivered["number"], created.id, "the colour is off")
    assert (await demo_store.returns(delivered["number"]))[0].reason == "wrong size\nthe colour is off"
    with pytest.raises(ActionNotAllowed):
        await demo_store.add_return_note(delivered["number"], "RMA-NOPE00", "x")
    with pytest.raises(ActionNotAllowed) as exc:
        await demo_store.create_return(first_order(demo_data, "pending")["number"], None, "x")
    assert exc.value.reason == "not_shipped_yet"


async def test_loading_for_a_later_day_moves_every_date_by_the_same_days(
    sessionmaker: async_sessionmaker[AsyncSession], seller: SellerProfile, demo_data: dict[str, Any]
) -> None:
    """`nightdesk run --demo` loads the orders for today: a parcel due a week after the data's reference day
    is still due a week ahead, whenever the demo is tried."""
    reference = datetime.fromisoformat(demo_data["reference_now"])
    later = reference.date() + timedelta(days=40)
    report = await load_demo_store(sessionmaker, today=later)
    assert report.orders_added == len(demo_data["orders"])
    store = DemoStore(sessionmaker, seller)
    by = timedelta(days=40)
    in_transit = first_order(demo_data, "in_transit", with_shipment=True)
    order = await store.get_order(in_transit["number"])
    raw_shipment = in_transit["shipments"][0]
    shipment = order.shipments[0]
    assert order.created_at == datetime.fromisoformat(in_transit["created_at"]) + by
    assert shipment.shipped_at == datetime.fromisoformat(raw_shipment["shipped_at"]) + by
    assert shipment.estimated_delivery == date.fromisoformat(raw_shipment["estimated_delivery"]) + by
    delivered = first_order(demo_data, "delivered", with_shipment=True)
    delivered_at = (await store.get_order(delivered["number"])).shipments[0].delivered_at
    assert delivered_at == datetime.fromisoformat(delivered["shipments"][0]["delivered_at"]) + by
    refunded = next(o for o in demo_data["orders"] if o["refunds"])
    refund = (await store.refunds(refunded["number"]))[0]
    assert refund.created_at == datetime.fromisoformat(refunded["refunds"][0]["created_at"]) + by
    returned = next(o for o in demo_data["orders"] if o["returns"])
    assert (await store.returns(returned["number"]))[0].created_at == (
        datetime.fromisoformat(returned["returns"][0]["created_at"]) + by)
    # Orders already loaded keep their dates: a second start weeks later does not move them again.
    await load_demo_store(sessionmaker, today=later + timedelta(days=9))
    assert (await store.get_order(in_transit["number"])).shipments[0].estimated_delivery == shipment.estimated_delivery


async def test_loading_without_a_day_keeps_the_files_dates(
    demo_store: DemoStore, demo_data: dict[str, Any]
) -> None:
    in_transit = first_order(demo_data, "in_transit", with_shipment=True)
    order = await demo_store.get_order(in_transit["number"])
    assert order.shipments[0].estimated_delivery == date.fromisoformat(in_transit["shipments"][0]["estimated_delivery"])


@pytest.mark.parametrize("raw", ["ND-100105", "nd 100105", "#ND-100105", "nd100105", "100105", "#100105", " 100105 "])
def test_order_numbers_are_read_with_or_without_the_prefix(raw: str) -> None:
    assert normalize_order_number(raw) == "ND-100105"
