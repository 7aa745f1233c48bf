"""The Shopify connector against a local fake of the GraphQL Admin API: documented shapes, cost-based
throttling retried after the bucket refills, hard failures reported as StoreUnavailable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from actions import registry
from actions.invoices import InvoiceStore
from actions.responses import ResponseCatalog
from actions.runner import ActionCall, ActionRunner, load_domain
from actions.seller import SellerProfile
from actions.shopify import ShopifyStore
from actions.store import ActionNotAllowed, Address, OrderNotFound, StoreUnavailable
from tests.conftest import DEMO_PROJECT
from tests.fakes.shopify import TOKEN, FakeShopify

DOMAIN = load_domain(DEMO_PROJECT / "domain.yml")


def populate(fake: FakeShopify) -> None:
    alice = fake.add_customer(1, "Alice Moreau", "alice@example.com", "+33612345678")
    bob = fake.add_customer(2, "Bob Jones", "bob@example.com", "+12025550143")
    fake.add_order(1001, "#1001", alice, currency="EUR", country="FR",
                   items=[("LL-LAMP-ARC-BLK", "Arc desk lamp", 1, "39.90"), ("LL-CANDLE-CEDAR", "Candle", 2, "14.50")],
                   fulfillment="FULFILLED", fulfillments=[{
                       "createdAt": "2026-11-12T08:00:00Z", "displayStatus": "IN_TRANSIT",
                       "estimatedDeliveryAt": "2026-11-24T12:00:00Z", "deliveredAt": None,
                       "inTransitAt": "2026-11-13T08:00:00Z",
                       "trackingInfo": [{"company": "DHL Express", "number": "1234567890",
                                         "url": "https://www.dhl.com/track?id=1234567890"}]}])
    fake.add_order(1002, "#1002", bob, items=[("LL-RUG-JUTE-120", "Jute rug", 1, "89.00")])
    fake.add_order(1003, "#1003", alice, currency="EUR", country="FR",
                   items=[("LL-VASE-CERAMIC-S", "Vase", 1, "22.00")], financial="REFUNDED",
                   refunds=[{"id": "gid://shopify/Refund/7", "createdAt": "2026-11-02T10:00:00Z",
                             "totalRefundedSet": {"shopMoney": {"amount": "22.00", "currencyCode": "EUR"}}}])


@pytest.fixture
def fake() -> Iterator[FakeShopify]:
    server = FakeShopify().start()
    populate(server)
    yield server
    server.stop()


@pytest.fixture
async def shop(fake: FakeShopify, seller: SellerProfile) -> AsyncIterator[ShopifyStore]:
    store = ShopifyStore(fake.shop_url, TOKEN, seller=seller, backoff_base=0.05)
    yield store
    await store.aclose()


async def test_order_by_name_with_tracking_and_cost_report(shop: ShopifyStore, fake: FakeShopify) -> None:
    order = await shop.get_order("1001")
    assert order.number == "#1001" and order.status == "in_transit"
    assert order.total == Decimal("68.90") and order.currency == "EUR"
    assert [(i.sku, i.quantity) for i in order.items] == [("LL-LAMP-ARC-BLK", 1), ("LL-CANDLE-CEDAR", 2)]
    shipment = order.latest_shipment
    assert shipment is not None
    assert (shipment.carrier, shipment.tracking_number, shipment.tracking_url) == (
        "DHL", "1234567890", "https://www.dhl.com/track?id=1234567890")
    assert shipment.estimated_delivery is not None and shipment.estimated_delivery.isoformat() == "2026-11-24"
    assert order.shipping_address.country == "FR"
    assert shop.throttle.maximum_available == 1000 and shop.throttle.restore_rate == 50
    assert shop.throttle.actual is not None and shop.throttle.actual < shop.throttle.requested
    with pytest.raises(OrderNotFound):
        await shop.get_order("#9999")


async def test_orders_by_email_and_phone_and_refunds(shop: ShopifyStore) -> None:
    assert [o.number for o in await shop.find_orders(email="ALICE@example.com")] == ["#1001", "#1003"]
    assert [o.number for o in await shop.find_orders(phone="+1 202-555-0143")] == ["#1002"]
    refunded = await shop.get_order("#1003")
    assert refunded.status == "refunded"
    assert [(r.amount, r.status) for r in await shop.refunds("#1003")] == [(Decimal("22.00"), "processed")]


async def test_a_cancellation_is_reported_only_once_shopify_confirms_it(shop: ShopifyStore, fake: FakeShopify) -> None:
    fake.cancel_job_reads = 2  # the job finishes while we read the order back
    cancelled = await shop.cancel_order("#1002", "ordered twice")
    assert cancelled.status == "cancelled"
    assert fake.orders["gid://shopify/Order/1002"]["cancelledAt"]
    # Shopify's reason is read back: the shopper asking why is told it was their own request.
    assert cancelled.cancel_reason == "CUSTOMER" and cancelled.cancel_cause == "customer"


async def test_a_declined_payment_reads_as_why_the_order_was_cancelled(shop: ShopifyStore, fake: FakeShopify) -> None:
    node = fake.orders["gid://shopify/Order/1002"]
    node["cancelledAt"], node["cancelReason"] = "2026-11-20T12:00:00Z", "DECLINED"
    order = await shop.get_order("#1002")
    assert (order.status, order.cancel_cause) == ("cancelled", "declined")
    node["cancelReason"] = "FRAUD"  # not a reason the shopper is told
    assert (await shop.get_order("#1002")).cancel_cause is None


async def test_a_cancellation_job_that_fails_is_not_reported_as_done(shop: ShopifyStore, fake: FakeShopify) -> None:
    fake.cancel_job_reads = None  # Shopify accepts the mutation, then the job fails
    with pytest.raises(StoreUnavailable) as exc:
        await shop.cancel_order("#1002", "ordered twice")
    assert "not confirmed" in str(exc.value)
    assert fake.orders["gid://shopify/Order/1002"]["cancelledAt"] is None


async def test_cancel_address_and_return_go_through_mutations(shop: ShopifyStore, fake: FakeShopify) -> None:
    new = Address(name="Bob Jones", line1="9 Elm Street", city="Chicago", postal_code="60601", region="IL",
                  country="US")
    changed = await shop.change_address("#1002", new)
    assert changed.shipping_address.line1 == "9 Elm Street"
    cancelled = await shop.cancel_order("#1002", "ordered twice")
    assert cancelled.status == "cancelled"
    assert fake.orders["gid://shopify/Order/1002"]["cancelReason"] == "CUSTOMER"
    with pytest.raises(ActionNotAllowed) as exc:
        await shop.cancel_order("#1001", "too late")
    assert exc.value.reason == "already_shipped"
    ret = await shop.create_return("#1001", None, "too dark")
    assert ret.id == "#1001-R1" and {i.sku for i in ret.items} == {"LL-LAMP-ARC-BLK", "LL-CANDLE-CEDAR"}
    # The reason the shopper gives afterwards goes on the order's note, after what the note already said.
    fake.orders["gid://shopify/Order/1001"]["note"] = "gift, no invoice in the parcel"
    await shop.add_return_note("#1001", ret.id, "the shade is much darker than the photo")
    assert fake.orders["gid://shopify/Order/1001"]["note"] == (
        "gift, no invoice in the parcel\nReturn #1001-R1: the shade is much darker than the photo")
    assert len(fake.orders["gid://shopify/Order/1001"]["returns"]) == 1


async def test_throttled_requests_wait_for_the_bucket_and_succeed(seller: SellerProfile) -> None:
    # A small bucket that one order query nearly empties: concurrent lookups must be throttled.
    fake = FakeShopify(maximum_available=150.0, restore_rate=100.0, actual_cost_ratio=0.9).start()
    populate(fake)
    shop = ShopifyStore(fake.shop_url, TOKEN, seller=seller)
    try:
        orders = await asyncio.gather(*(shop.get_order(n) for n in ("#1001", "#1002", "#1003", "#1001")))
    finally:
        await shop.aclose()
        fake.stop()
    assert [o.number for o in orders] == ["#1001", "#1002", "#1003", "#1001"]
    assert fake.throttled_count >= 1 and shop.throttle.throttled == fake.throttled_count
    successes = [r for r in fake.requests if r["status"] == 200 and not r["throttled"]]
    assert len(successes) == 4
    # Each caller waited for the refill its query needed instead of hammering: a handful of
    # throttled answers, not dozens.
    assert fake.throttled_count <= 4 * 3


async def test_hard_failure_is_retried_then_reported(shop: ShopifyStore, fake: FakeShopify) -> None:
    fake.fail_hard(times=2, status=502)
    assert (await shop.get_order("#1002")).number == "#1002"  # two 502s, then it works
    fake.fail_hard(status=503)
    with pytest.raises(StoreUnavailable, match="HTTP 503"):
        await shop.get_order("#1002")
    assert [r["status"] for r in fake.requests[-4:]] == [503, 503, 503, 503]


async def test_rejected_token_is_a_hard_failure_without_retries(fake: FakeShopify, seller: SellerProfile) -> None:
    shop = ShopifyStore(fake.shop_url, "shpat_wrong", seller=seller)
    try:
        with pytest.raises(StoreUnavailable, match="access token"):
            await shop.get_order("#1001")
    finally:
        await shop.aclose()
    assert [r["status"] for r in fake.requests] == [401]


async def test_shopper_gets_an_honest_message_and_a_handoff_when_shopify_is_down(
    fake: FakeShopify, shop: ShopifyStore, seller: SellerProfile, tmp_path: Path
) -> None:
    # Before the fake parcel's estimated day (2026-11-24): on its way, not late.
    registry.configure(registry.ActionContext(store=shop, seller=seller, invoices=InvoiceStore(tmp_path),
                                              today=lambda: date(2026, 11, 20)))
    try:
        runner = ActionRunner(DOMAIN)
        ok = await runner.run(ActionCall("action_order_status", "s1", slots={"verified_order": "#1001"}))
        assert ok.response_names == ["utter_order_status_in_transit"]
        fake.fail_hard(status=500)
        down = await runner.run(ActionCall("action_order_status", "s1", slots={"verified_order": "#1001"}))
    finally:
        registry.reset()
    assert down.response_names == ["utter_store_unavailable"] and down.handoff_reason == "store_unavailable"
    text = down.render(ResponseCatalog.from_dict(DOMAIN["responses"]), "fr")[0].text
    assert text.startswith("Désolé, je ne peux pas joindre notre système de commandes")


async def test_sequential_lookups_pace_themselves_instead_of_being_throttled(seller: SellerProfile) -> None:
    # Each order query empties most of the bucket; knowing the last cost report, the connector waits
    # for the refill before sending, so Shopify never has to refuse it.
    fake = FakeShopify(maximum_available=150.0, restore_rate=100.0, actual_cost_ratio=0.9).start()
    populate(fake)
    shop = ShopifyStore(fake.shop_url, TOKEN, seller=seller)
    try:
        numbers = [(await shop.get_order(n)).number for n in ("#1001", "#1002", "#1003", "#1001", "#1002")]
    finally:
        await shop.aclose()
        fake.stop()
    assert numbers == ["#1001", "#1002", "#1003", "#1001", "#1002"]
    assert fake.throttled_count == 0 and len(fake.requests) == 5
