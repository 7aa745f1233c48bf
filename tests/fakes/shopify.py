"""A local fake of Shopify's GraphQL Admin API (POST /admin/api/<version>/graphql.json).

It answers the operations the Shopify connector sends with the documented response shapes (orders
with line items, fulfillments + trackingInfo, refunds; orderCancel, orderUpdate, returnRequest),
checks X-Shopify-Access-Token, reports `extensions.cost` (requestedQueryCost, actualQueryCost,
throttleStatus) from a leaky bucket, answers THROTTLED when the bucket cannot cover a query's
requested cost, and can be told to fail hard (HTTP 5xx). Operations are recognised by their operation
name; it is not a GraphQL engine.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer

TOKEN = "shpat_fake_0123456789abcdef"


def money(amount: str, currency: str) -> dict[str, Any]:
    return {"shopMoney": {"amount": amount, "currencyCode": currency}}


@dataclass
class LeakyBucket:
    maximum_available: float = 1000.0
    restore_rate: float = 50.0
    available: float = 1000.0
    updated: float = field(default_factory=time.monotonic)

    def level(self) -> float:
        now = time.monotonic()
        self.available = min(self.maximum_available, self.available + (now - self.updated) * self.restore_rate)
        self.updated = now
        return self.available

    def status(self) -> dict[str, float]:
        return {"maximumAvailable": self.maximum_available, "currentlyAvailable": round(self.level(), 1),
                "restoreRate": self.restore_rate}


class FakeShopify(LoopbackServer):
    """The fake shop: orders + customers in memory, a cost bucket, and failure switches."""

    def __init__(self, api_version: str = "2024-10", maximum_available: float = 1000.0,
                 restore_rate: float = 50.0, actual_cost_ratio: float = 0.2) -> None:
        self.api_version = api_version
        self.bucket = LeakyBucket(maximum_available, restore_rate, maximum_available)
        self.actual_cost_ratio = actual_cost_ratio
        self.orders: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []  # every request: operation, status, throttled
        self.hard_failures_left = 0
        self.hard_failure_status = 503
        # orderCancel runs as a job: the order reads as cancelled only after this many more order reads
        # (None: the job fails and the order is never cancelled).
        self.cancel_job_reads: int | None = 0
        self._pending_cancels: dict[str, int | None] = {}
        self._lock = threading.Lock()
        self._serve(self._handler())

    # ------------------------------------------------------------------ control
    @property
    def shop_url(self) -> str:
        return self.url

    def fail_hard(self, times: int = 1_000_000, status: int = 503) -> None:
        """The next `times` requests get HTTP `status` (a Shopify outage)."""
        self.hard_failures_left, self.hard_failure_status = times, status

    @property
    def throttled_count(self) -> int:
        return sum(1 for r in self.requests if r["throttled"])

    def add_customer(self, cid: int, name: str, email: str, phone: str | None) -> dict[str, Any]:
        gid = f"gid://shopify/Customer/{cid}"
        customer = {"id": gid, "displayName": name, "email": email, "phone": phone}
        self.customers[gid] = customer
        return customer

    def add_order(self, oid: int, name: str, customer: dict[str, Any], *, currency: str = "USD",
                  items: list[tuple[str, str, int, str]] = (), financial: str = "PAID",  # type: ignore[assignment]
                  fulfillment: str = "UNFULFILLED", created_at: str = "2026-11-10T09:30:00Z",
                  country: str = "US", fulfillments: list[dict[str, Any]] | None = None,
                  refunds: list[dict[str, Any]] | None = None, cancelled_at: str | None = None) -> dict[str, Any]:
        total = sum(float(price) * qty for _, _, qty, price in items)
        line_items = [{"id": f"gid://shopify/LineItem/{oid}{i}", "sku": sku, "name": title, "quantity": qty,
                       "originalUnitPriceSet": money(price, currency)}
                      for i, (sku, title, qty, price) in enumerate(items)]
        node = {
            "id": f"gid://shopify/Order/{oid}",
            "name": name,
            "email": customer["email"],
            "phone": customer["phone"],
            "createdAt": created_at,
            "cancelledAt": cancelled_at,
            "cancelReason": "CUSTOMER" if cancelled_at else None,
            "displayFinancialStatus": financial,
            "displayFulfillmentStatus": fulfillment,
            "returnStatus": "NO_RETURN",
            "totalPriceSet": money(f"{total:.2f}", currency),
            "customer": customer,
            "shippingAddress": {"name": customer["displayName"], "address1": "1 Main Street", "address2": None,
                                "city": "Springfield", "zip": "62701", "provinceCode": "IL",
                                "countryCodeV2": country},
            "lineItems": {"edges": [{"node": li} for li in line_items]},
            "fulfillments": fulfillments or [],
            "refunds": refunds or [],
        }
        for f in node["fulfillments"]:
            f.setdefault("fulfillmentLineItems", {"edges": [
                {"node": {"id": f"gid://shopify/FulfillmentLineItem/{oid}{i}", "quantity": li["quantity"],
                          "lineItem": {"sku": li["sku"]}}} for i, li in enumerate(line_items)]})
        self.orders[node["id"]] = node
        return node

    # ------------------------------------------------------------------ API
    def _cost(self, query: str) -> int:
        if query.lstrip().startswith("mutation"):
            return 10
        # Connections multiply their `first:` sizes into the worst case, as Shopify estimates.
        return 1 + sum(int(n) for n in re.findall(r"first:\s*(\d+)", query)) + 2 * query.count("{")

    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            query = str(body.get("query", ""))
            operation = m.group(1) if (m := re.search(r"(?:query|mutation)\s+(\w+)", query)) else "anonymous"
            record = {"operation": operation, "throttled": False, "status": 200}
            self.requests.append(record)
            if self.hard_failures_left > 0:
                self.hard_failures_left -= 1
                record["status"] = self.hard_failure_status
                return self.hard_failure_status, {"errors": "Service Unavailable"}
            if path != f"/admin/api/{self.api_version}/graphql.json":
                record["status"] = 404
                return 404, {"errors": "Not Found"}
            if headers.get("x-shopify-access-token") != TOKEN:
                record["status"] = 401
                return 401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
            requested = self._cost(query)
            if self.bucket.level() < requested:
                record["throttled"] = True
                return 200, {
                    "errors": [{"message": "Throttled", "extensions": {
                        "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                    "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None,
                                            "throttleStatus": self.bucket.status()}},
                }
            self.bucket.available -= requested
            data = self._execute(operation, body.get("variables") or {})
            actual = max(1, round(requested * self.actual_cost_ratio))
            self.bucket.available += requested - actual  # the unused part of the estimate is refunded
            return 200, {"data": data, "extensions": {"cost": {
                "requestedQueryCost": requested, "actualQueryCost": actual,
                "throttleStatus": self.bucket.status()}}}

    def _run_cancel_jobs(self) -> None:
        for order_id, reads in list(self._pending_cancels.items()):
            if reads is None:
                continue  # a failed job: the order stays as it was
            if reads > 0:
                self._pending_cancels[order_id] = reads - 1
                continue
            del self._pending_cancels[order_id]
            order, variables = self.orders[order_id], self._cancel_variables
            order["cancelledAt"] = "2026-11-20T12:00:00Z"
            order["cancelReason"] = variables.get("reason", "OTHER")
            if variables.get("refund") and order["displayFinancialStatus"] == "PAID":
                order["displayFinancialStatus"] = "REFUNDED"
                order["refunds"].append({"id": f"gid://shopify/Refund/{len(order['refunds']) + 900}",
                                         "createdAt": "2026-11-20T12:00:01Z",
                                         "totalRefundedSet": order["totalPriceSet"]})

    def _search(self, query: str) -> list[dict[str, Any]]:
        key, _, value = query.partition(":")
        value = value.strip().strip('"')
        orders = sorted(self.orders.values(), key=lambda o: o["createdAt"], reverse=True)
        if key == "name":
            return [o for o in orders if o["name"].lstrip("#") == value.lstrip("#")]
        if key == "email":
            return [o for o in orders if (o["email"] or "").lower() == value.lower()]
        if key == "customer_id":
            return [o for o in orders if o["customer"]["id"].rsplit("/", 1)[1] == value]
        return []

    def _execute(self, operation: str, variables: dict[str, Any]) -> dict[str, Any]:
        if operation == "OrdersByQuery":
            self._run_cancel_jobs()
            found = self._search(variables["query"])[: int(variables.get("first", 10))]
            return {"orders": {"edges": [{"node": o} for o in found]}}
        if operation == "CustomersByQuery":
            _, _, phone = variables["query"].partition(":")
            found = [c for c in self.customers.values() if c["phone"] == phone.strip().strip('"')]
            return {"customers": {"edges": [{"node": c} for c in found]}}
        if operation == "OrderCancel":
            order = self.orders.get(variables["orderId"])
            if order is None:
                return {"orderCancel": {"job": None, "orderCancelUserErrors": [
                    {"field": ["orderId"], "message": "Order does not exist", "code": "NOT_FOUND"}]}}
            if order["displayFulfillmentStatus"] in ("FULFILLED", "PARTIALLY_FULFILLED"):
                return {"orderCancel": {"job": None, "orderCancelUserErrors": [
                    {"field": ["orderId"], "message": "Cannot cancel a fulfilled order",
                     "code": "INVALID"}]}}
            self._pending_cancels[variables["orderId"]] = self.cancel_job_reads
            self._cancel_variables = variables
            self._run_cancel_jobs()
            return {"orderCancel": {"job": {"id": "gid://shopify/Job/1", "done": False},
                                    "orderCancelUserErrors": []}}
        if operation == "OrderUpdate":
            data = variables["input"]
            order = self.orders[data["id"]]
            if "note" in data:
                order["note"] = data["note"]
            if "shippingAddress" not in data:
                return {"orderUpdate": {"order": {"id": order["id"]}, "userErrors": []}}
            addr = data["shippingAddress"]
            order["shippingAddress"] = {
                "name": f"{addr.get('firstName', '')} {addr.get('lastName', '')}".strip(),
                "address1": addr["address1"], "address2": addr.get("address2"), "city": addr["city"],
                "zip": addr["zip"], "provinceCode": addr.get("provinceCode"), "countryCodeV2": addr["countryCode"]}
            return {"orderUpdate": {"order": {"id": order["id"]}, "userErrors": []}}
        if operation == "ReturnRequest":
            data = variables["input"]
            order = self.orders[data["orderId"]]
            number = sum(1 for _ in order.get("returns", [])) + 1
            ret = {"id": f"gid://shopify/Return/{len(self.orders)}{number}", "name": f"{order['name']}-R{number}",
                   "status": "REQUESTED"}
            order.setdefault("returns", []).append(ret)
            return {"returnRequest": {"return": ret, "userErrors": []}}
        raise ValueError(f"fake Shopify does not know operation {operation}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    status, payload = 400, {"errors": "invalid JSON"}
                else:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    status, payload = fake.handle(self.path, headers, body)
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler
