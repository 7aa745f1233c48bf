"""Shopify store connector over the GraphQL Admin API, respecting Shopify's cost-based rate limit.

Every response carries `extensions.cost` (requestedQueryCost, actualQueryCost, throttleStatus with
maximumAvailable, currentlyAvailable, restoreRate). A THROTTLED error is retried after the time the
bucket needs to refill to the requested cost; 5xx and network errors are retried with backoff; a
rejected token or a persistent failure raises StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from actions.carriers import carrier_name, tracking_url
from actions.invoices import render_invoice_pdf
from actions.seller import SellerProfile
from actions.store import (
    BEFORE_SHIPPING,
    RETURNABLE,
    ActionNotAllowed,
    Address,
    Customer,
    Order,
    OrderItem,
    OrderNotFound,
    Refund,
    Return,
    ReturnItem,
    Shipment,
    ShippingEstimate,
    StoreUnavailable,
)

logger = logging.getLogger(__name__)

# Pauses between reading a cancelled order back while Shopify's cancellation job runs (about 7 s in all).
CANCEL_CONFIRM_DELAYS = (0.25, 0.5, 1.0, 2.0, 3.0)
_ORDER_FIELDS = """
  id name email phone note createdAt cancelledAt cancelReason displayFinancialStatus displayFulfillmentStatus returnStatus
  totalPriceSet { shopMoney { amount currencyCode } }
  customer { id displayName email phone }
  shippingAddress { name address1 address2 city zip provinceCode countryCodeV2 }
  lineItems(first: 50) { edges { node { sku name quantity originalUnitPriceSet { shopMoney { amount currencyCode } } } } }
  fulfillments(first: 10) {
    createdAt displayStatus estimatedDeliveryAt deliveredAt inTransitAt
    trackingInfo(first: 5) { company number url }
  }
  refunds(first: 10) { id createdAt totalRefundedSet { shopMoney { amount currencyCode } } }
"""
ORDERS_QUERY = f"""query OrdersByQuery($query: String!, $first: Int!) {{
  orders(first: $first, query: $query, sortKey: CREATED_AT, reverse: true) {{ edges {{ node {{ {_ORDER_FIELDS} }} }} }}
}}"""
CUSTOMERS_QUERY = """query CustomersByQuery($query: String!) {
  customers(first: 5, query: $query) { edges { node { id displayName email phone } } }
}"""
FULFILLMENT_ITEMS_QUERY = """query OrdersByQuery($query: String!, $first: Int!) {
  orders(first: $first, query: $query) { edges { node { id name
    fulfillments(first: 10) { fulfillmentLineItems(first: 50) { edges { node { id quantity lineItem { sku } } } } }
  } } }
}"""
CANCEL_MUTATION = """mutation OrderCancel($orderId: ID!, $reason: OrderCancelReason!, $refund: Boolean!,
    $restock: Boolean!, $notifyCustomer: Boolean, $staffNote: String) {
  orderCancel(orderId: $orderId, reason: $reason, refund: $refund, restock: $restock,
              notifyCustomer: $notifyCustomer, staffNote: $staffNote) {
    job { id done }
    orderCancelUserErrors { field message code }
  }
}"""
UPDATE_MUTATION = """mutation OrderUpdate($input: OrderInput!) {
  orderUpdate(input: $input) { order { id } userErrors { field message } }
}"""
RETURN_MUTATION = """mutation ReturnRequest($input: ReturnRequestInput!) {
  returnRequest(input: $input) { return { id name status } userErrors { field message code } }
}"""


@dataclass
class ThrottleState:
    """The last cost report from Shopify, for observability and the dashboard."""

    requested: float = 0
    actual: float | None = None
    maximum_available: float = 0
    currently_available: float = 0
    restore_rate: float = 0
    throttled: int = 0  # THROTTLED answers received
    retries: int = 0  # requests sent again (throttle or server error)


def _shopify_number(number: str) -> str:
    text = number.strip().replace(" ", "")
    return text if text.startswith("#") else f"#{text}"


def _dt(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _status(node: dict[str, Any]) -> str:
    if node.get("cancelledAt"):
        return "cancelled"
    financial = (node.get("displayFinancialStatus") or "").upper()
    fulfillment = (node.get("displayFulfillmentStatus") or "").upper()
    if financial == "REFUNDED":
        return "refunded"
    if (node.get("returnStatus") or "").upper() == "RETURNED":
        return "returned"
    if fulfillment in ("FULFILLED", "PARTIALLY_FULFILLED"):
        shipped = [f.get("displayStatus") or "" for f in node.get("fulfillments") or []]
        if shipped and all(s == "DELIVERED" for s in shipped):
            return "delivered"
        if any(s in ("IN_TRANSIT", "OUT_FOR_DELIVERY", "ATTEMPTED_DELIVERY") for s in shipped):
            return "in_transit"
        return "shipped"
    if fulfillment in ("IN_PROGRESS", "SCHEDULED", "ON_HOLD", "REQUEST_DECLINED"):
        return "processing"
    if financial in ("PENDING", "AUTHORIZED", "EXPIRED", "VOIDED"):
        return "pending"
    return "paid"


def _order(node: dict[str, Any]) -> Order:
    money = node["totalPriceSet"]["shopMoney"]
    currency = money["currencyCode"]
    c = node.get("customer") or {}
    a = node.get("shippingAddress") or {}
    shipments = []
    for f in node.get("fulfillments") or []:
        for info in f.get("trackingInfo") or []:
            carrier = carrier_name(info.get("company") or "")
            number = info.get("number") or ""
            eta = _dt(f.get("estimatedDeliveryAt"))
            shipments.append(Shipment(
                carrier=carrier, tracking_number=number,
                tracking_url=info.get("url") or tracking_url(carrier, number),
                shipped_at=_dt(f.get("inTransitAt") or f.get("createdAt")),
                estimated_delivery=eta.date() if eta else None, delivered_at=_dt(f.get("deliveredAt")),
            ))
    refunds = []
    for r in node.get("refunds") or []:
        created = _dt(r["createdAt"])
        assert created is not None
        amount = r["totalRefundedSet"]["shopMoney"]
        # Shopify records a refund once it is issued to the payment provider.
        refunds.append(Refund(id=r["id"], amount=Decimal(amount["amount"]), currency=amount["currencyCode"],
                              status="processed", created_at=created, processed_at=created))
    created_at = _dt(node["createdAt"])
    assert created_at is not None
    return Order(
        number=node["name"],
        customer=Customer(id=c.get("id") or "", name=c.get("displayName") or "", email=c.get("email"),
                          phone=c.get("phone"), country=a.get("countryCodeV2")),
        email=node.get("email"),
        phone=node.get("phone"),
        items=tuple(OrderItem(sku=e["node"].get("sku") or "", name=e["node"]["name"],
                              quantity=int(e["node"]["quantity"]),
                              unit_price=Decimal(e["node"]["originalUnitPriceSet"]["shopMoney"]["amount"]))
                    for e in node["lineItems"]["edges"]),
        currency=currency,
        total=Decimal(money["amount"]),
        status=_status(node),
        created_at=created_at,
        shipping_address=Address(name=a.get("name") or "", line1=a.get("address1") or "",
                                 line2=a.get("address2") or "", city=a.get("city") or "",
                                 postal_code=a.get("zip") or "", region=a.get("provinceCode") or "",
                                 country=(a.get("countryCodeV2") or "").upper()),
        shipments=tuple(shipments),
        refunds=tuple(refunds),
        cancel_reason=node.get("cancelReason"),
    )


class ShopifyStore:
    """StoreConnector for a Shopify shop (custom app access token with read/write_orders, write_returns)."""

    def __init__(
        self,
        shop_url: str,
        access_token: str,
        seller: SellerProfile,
        api_version: str = "2024-10",
        timeout: float = 10.0,
        max_throttle_retries: int = 6,
        max_server_retries: int = 3,
        backoff_base: float = 0.5,
        max_wait: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not shop_url.startswith(("http://", "https://")):
            shop_url = f"https://{shop_url}"
        if not access_token:
            raise ValueError("Shopify needs an Admin API access token")
        self.endpoint = f"{shop_url.rstrip('/')}/admin/api/{api_version}/graphql.json"
        self.seller = seller
        self.max_throttle_retries = max_throttle_retries
        self.max_server_retries = max_server_retries
        self.backoff_base = backoff_base
        self.max_wait = max_wait
        self.throttle = ThrottleState()
        self._reported_at: float | None = None
        self._query_costs: dict[str, float] = {}  # last requestedQueryCost per query text
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport,
                                         headers={"X-Shopify-Access-Token": access_token,
                                                  "Content-Type": "application/json"})

    async def aclose(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------------ transport
    def _record_cost(self, body: dict[str, Any]) -> dict[str, Any] | None:
        cost = (body.get("extensions") or {}).get("cost")
        if not cost:
            return None
        status = cost.get("throttleStatus") or {}
        self._reported_at = time.monotonic()
        self.throttle.requested = float(cost.get("requestedQueryCost") or 0)
        self.throttle.actual = cost.get("actualQueryCost")
        self.throttle.maximum_available = float(status.get("maximumAvailable") or 0)
        self.throttle.currently_available = float(status.get("currentlyAvailable") or 0)
        self.throttle.restore_rate = float(status.get("restoreRate") or 0)
        return dict(cost)

    def _throttle_wait(self, cost: dict[str, Any] | None, retry_after: str | None) -> float:
        if cost:
            status = cost.get("throttleStatus") or {}
            requested = float(cost.get("requestedQueryCost") or 0)
            available = float(status.get("currentlyAvailable") or 0)
            rate = float(status.get("restoreRate") or 0)
            if rate > 0:
                if requested > float(status.get("maximumAvailable") or requested):
                    raise StoreUnavailable(f"Shopify query cost {requested} exceeds the bucket size")
                # Time for the bucket to refill to the requested cost, plus a little slack.
                return min(self.max_wait, max(0.0, (requested - available) / rate) + 0.05)
        if retry_after:
            try:
                return min(self.max_wait, float(retry_after))
            except ValueError:
                pass
        return 1.0

    async def _pace(self, query: str) -> None:
        """Wait before sending when the bucket, as last reported and refilled since, cannot cover the query."""
        t = self.throttle
        expected = self._query_costs.get(query)
        if expected is None or t.restore_rate <= 0 or self._reported_at is None:
            return
        refilled = min(t.maximum_available, t.currently_available + (time.monotonic() - self._reported_at)
                       * t.restore_rate)
        if refilled < expected:
            # Slack covers the time between Shopify measuring the bucket and us reading the report.
            await asyncio.sleep(min(self.max_wait, (expected - refilled) / t.restore_rate + 0.05))

    async def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of one GraphQL call, after throttle and server-error retries."""
        throttled = server_errors = 0
        await self._pace(query)
        while True:
            try:
                response = await self._client.post(self.endpoint, json={"query": query, "variables": variables or {}})
            except httpx.HTTPError as exc:
                server_errors += 1
                if server_errors > self.max_server_retries:
                    raise StoreUnavailable(f"Shopify unreachable: {exc}") from exc
                await self._backoff(server_errors)
                continue
            if response.status_code in (401, 403):
                raise StoreUnavailable(
                    f"Shopify rejected the access token (HTTP {response.status_code}); check the app's token "
                    "and its read_orders/write_orders scopes")
            if response.status_code == 404:
                raise StoreUnavailable(f"Shopify has no {self.endpoint}; check the shop URL and API version")
            if response.status_code >= 500:
                server_errors += 1
                if server_errors > self.max_server_retries:
                    raise StoreUnavailable(f"Shopify failed with HTTP {response.status_code} "
                                           f"after {server_errors} attempts")
                await self._backoff(server_errors)
                continue
            try:
                body = response.json()
            except ValueError as exc:
                raise StoreUnavailable(f"Shopify sent a non-JSON answer (HTTP {response.status_code})") from exc
            cost = self._record_cost(body)
            if cost and cost.get("requestedQueryCost"):
                self._query_costs[query] = float(cost["requestedQueryCost"])
            errors = body.get("errors") or []
            is_throttled = response.status_code == 429 or (
                isinstance(errors, list)
                and any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors))
            if is_throttled:
                throttled += 1
                self.throttle.throttled += 1
                if throttled > self.max_throttle_retries:
                    raise StoreUnavailable("Shopify kept throttling our requests")
                wait = self._throttle_wait(cost, response.headers.get("Retry-After"))
                logger.info("Shopify throttled; waiting %.2f s for the bucket to refill", wait)
                self.throttle.retries += 1
                await asyncio.sleep(wait)
                continue
            if response.status_code != 200 or errors:
                raise StoreUnavailable(f"Shopify GraphQL error (HTTP {response.status_code}): {errors}")
            return dict(body.get("data") or {})

    async def _backoff(self, attempt: int) -> None:
        self.throttle.retries += 1
        await asyncio.sleep(self.backoff_base * 2 ** (attempt - 1) * (1 + random.random() / 4))

    # ------------------------------------------------------------------ StoreConnector
    async def _order_nodes(self, query: str, first: int = 10) -> list[dict[str, Any]]:
        data = await self.graphql(ORDERS_QUERY, {"query": query, "first": first})
        return [e["node"] for e in data["orders"]["edges"]]

    async def _node(self, number: str) -> dict[str, Any]:
        name = _shopify_number(number)
        for node in await self._order_nodes(f"name:{name}", first=1):
            if node["name"] == name:
                return node
        raise OrderNotFound(number)

    async def get_order(self, number: str) -> Order:
        return _order(await self._node(number))

    async def find_orders(self, email: str | None = None, phone: str | None = None) -> list[Order]:
        found: dict[str, Order] = {}
        if email:
            for node in await self._order_nodes(f"email:{email.strip().lower()}", first=20):
                found[node["name"]] = _order(node)
        if phone:
            customer = await self.get_customer(phone=phone)
            if customer is not None:
                for node in await self._order_nodes(f"customer_id:{customer.id.rsplit('/', 1)[-1]}", first=20):
                    found[node["name"]] = _order(node)
        return sorted(found.values(), key=lambda o: o.created_at, reverse=True)

    async def get_customer(self, email: str | None = None, phone: str | None = None) -> Customer | None:
        if email:
            query = f"email:{email.strip().lower()}"
        elif phone:
            from actions.contacts import normalize_phone

            query = f"phone:{normalize_phone(phone) or phone.strip()}"
        else:
            return None
        edges = (await self.graphql(CUSTOMERS_QUERY, {"query": query}))["customers"]["edges"]
        if not edges:
            return None
        c = edges[0]["node"]
        return Customer(id=c["id"], name=c.get("displayName") or "", email=c.get("email"), phone=c.get("phone"))

    async def cancel_order(self, number: str, reason: str) -> Order:
        node = await self._node(number)
        order = _order(node)
        if order.status == "cancelled":
            raise ActionNotAllowed("already_cancelled", f"{order.number} is already cancelled")
        if order.status not in BEFORE_SHIPPING:
            raise ActionNotAllowed("already_shipped", f"{order.number} has already shipped")
        data = await self.graphql(CANCEL_MUTATION, {
            "orderId": node["id"], "reason": "CUSTOMER", "refund": order.status != "pending", "restock": True,
            "notifyCustomer": True, "staffNote": f"Cancelled by the shopper via Nightdesk: {reason}"[:255]})
        errors = data["orderCancel"]["orderCancelUserErrors"]
        if errors:
            raise ActionNotAllowed(str(errors[0].get("code") or "rejected").lower(), errors[0]["message"])
        # orderCancel runs as a job, which can lag or fail (e.g. the refund fails): read the order back until
        # Shopify says it is cancelled; never tell the shopper "cancelled" on our own say-so.
        for delay in (*CANCEL_CONFIRM_DELAYS, None):  # None: the last read, after the last pause
            refreshed = await self.get_order(number)
            if refreshed.status == "cancelled":
                return refreshed
            if delay is None:
                break
            await asyncio.sleep(delay)
        raise StoreUnavailable(f"Shopify accepted the cancellation of {order.number} but has not confirmed it "
                               f"after {sum(CANCEL_CONFIRM_DELAYS):.0f} s (status {refreshed.status})")

    async def change_address(self, number: str, address: Address) -> Order:
        node = await self._node(number)
        order = _order(node)
        if order.status not in BEFORE_SHIPPING:
            raise ActionNotAllowed("already_cancelled" if order.status == "cancelled" else "already_shipped")
        if address.country.upper() != order.shipping_address.country:
            raise ActionNotAllowed("country_change", "the destination country cannot be changed")
        first, _, last = address.name.partition(" ")
        data = await self.graphql(UPDATE_MUTATION, {"input": {"id": node["id"], "shippingAddress": {
            "firstName": first, "lastName": last, "address1": address.line1, "address2": address.line2 or None,
            "city": address.city, "zip": address.postal_code, "provinceCode": address.region or None,
            "countryCode": address.country.upper()}}})
        errors = data["orderUpdate"]["userErrors"]
        if errors:
            raise ActionNotAllowed("rejected", errors[0]["message"])
        return await self.get_order(number)

    async def refunds(self, number: str) -> list[Refund]:
        return list((await self.get_order(number)).refunds)

    async def create_return(self, number: str, items: list[ReturnItem] | None, reason: str) -> Return:
        order = await self.get_order(number)
        if order.status not in RETURNABLE:
            code = {"returned": "already_returned", "refunded": "already_refunded",
                    "cancelled": "already_cancelled"}.get(order.status, "not_shipped_yet")
            raise ActionNotAllowed(code, f"{order.number} is {order.status}")
        data = await self.graphql(FULFILLMENT_ITEMS_QUERY, {"query": f"name:{order.number}", "first": 1})
        node = data["orders"]["edges"][0]["node"]
        wanted = {i.sku: i.quantity for i in items} if items else None
        lines = []
        for f in node["fulfillments"]:
            for e in f["fulfillmentLineItems"]["edges"]:
                sku = e["node"]["lineItem"].get("sku") or ""
                if wanted is None or sku in wanted:
                    qty = e["node"]["quantity"] if wanted is None else min(wanted[sku], e["node"]["quantity"])
                    lines.append((e["node"]["id"], sku, qty))
        if not lines:
            raise ActionNotAllowed("not_in_order", "none of these items were shipped in this order")
        result = (await self.graphql(RETURN_MUTATION, {"input": {"orderId": node["id"], "returnLineItems": [
            {"fulfillmentLineItemId": fid, "quantity": qty, "returnReason": "OTHER", "customerNote": reason[:300]}
            for fid, _, qty in lines]}}))["returnRequest"]
        if result["userErrors"]:
            raise ActionNotAllowed("rejected", result["userErrors"][0]["message"])
        ret = result["return"]
        return Return(id=ret["name"] or ret["id"], order_number=order.number,
                      items=tuple(ReturnItem(sku=sku, quantity=qty) for _, sku, qty in lines), reason=reason,
                      status=str(ret["status"]).lower(), created_at=datetime.now(UTC),
                      return_address=self.seller.return_address_for(order.shipping_address.country),
                      instructions="The shop approves the request and emails a return label.")

    async def add_return_note(self, number: str, return_id: str, note: str) -> None:
        # A return request's customer note cannot be edited once sent: the order's note carries the addition.
        node = await self._node(number)
        line = f"Return {return_id}: {note}"
        current = node.get("note") or ""
        data = await self.graphql(UPDATE_MUTATION, {"input": {
            "id": node["id"], "note": f"{current}\n{line}" if current else line}})
        errors = data["orderUpdate"]["userErrors"]
        if errors:
            raise ActionNotAllowed("rejected", errors[0]["message"])

    async def invoice_pdf(self, number: str) -> bytes:
        return render_invoice_pdf(await self.get_order(number), self.seller)

    async def shipping_estimate(self, country: str) -> ShippingEstimate:
        # Shopify's delivery profiles hold rates, not transit times: the seller's table is the source.
        return self.seller.shipping_estimate(country)



