"""The store's orders as the bot sees them, and the one interface every store connector implements.

Connectors (the demo store, Shopify) return these dataclasses and raise these errors, so actions
never depend on where the order data lives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

ORDER_STATUSES = (
    "pending",
    "paid",
    "processing",
    "shipped",
    "in_transit",
    "delivered",
    "cancelled",
    "returned",
    "refunded",
)
# An order can still be cancelled or re-addressed while it has not left the warehouse.
BEFORE_SHIPPING = frozenset({"pending", "paid", "processing"})
# An order that reached the shopper (or is on its way) can be sent back instead.
RETURNABLE = frozenset({"shipped", "in_transit", "delivered"})


class StoreError(Exception):
    """Base class of the errors a store connector raises."""


class OrderNotFound(StoreError):
    """No order with this number exists (or it is not visible to this connector)."""

    def __init__(self, number: str) -> None:
        super().__init__(f"order {number!r} not found")
        self.number = number


class ActionNotAllowed(StoreError):
    """The order's state does not allow the change; `reason` is a machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason  # e.g. "already_shipped", "already_cancelled", "not_returnable"
        self.detail = detail


class StoreUnavailable(StoreError):
    """The store cannot be reached or refused us: tell the shopper honestly and open a ticket."""


@dataclass(frozen=True)
class Address:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str  # ISO 3166-1 alpha-2, upper case
    line2: str = ""
    region: str = ""

    def one_line(self) -> str:
        """The address on one line, the town part written as the country writes it."""
        if self.country == "JP" and _CJK.search(self.region + self.city):  # "〒150-0041 東京都渋谷区神南1-2-3 山田ビル4F"
            place = " ".join(p for p in (f"〒{self.postal_code}", f"{self.region}{self.city}{self.line1}", self.line2) if p)
            return ", ".join(p for p in (self.name, place, self.country) if p)
        if self.country in REGION_BEFORE_POSTCODE:  # "San Francisco, CA 94105"
            town = [self.city, f"{self.region} {self.postal_code}".strip()]
        elif self.country in POSTCODE_AFTER_TOWN:  # "London, SW1A 1AA"
            town = [self.city, self.region, self.postal_code]
        else:  # "04109 Leipzig"
            town = [f"{self.postal_code} {self.city}".strip(), self.region]
        return ", ".join(p for p in [self.name, self.line1, self.line2, *town, self.country] if p)


REGION_BEFORE_POSTCODE = frozenset({"US", "CA", "AU"})
_CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
POSTCODE_AFTER_TOWN = frozenset({"GB", "IE"})


@dataclass(frozen=True)
class OrderItem:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class Shipment:
    carrier: str
    tracking_number: str
    tracking_url: str
    shipped_at: datetime | None = None
    estimated_delivery: date | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class Refund:
    id: str
    amount: Decimal
    currency: str
    status: str  # pending | processed | failed
    created_at: datetime
    processed_at: datetime | None = None


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str | None
    phone: str | None  # E.164
    locale: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Order:
    number: str  # as the shopper sees it, e.g. "ND-100234" or Shopify's "#1001"
    customer: Customer
    email: str | None
    phone: str | None  # E.164
    items: tuple[OrderItem, ...]
    currency: str
    total: Decimal
    status: str
    created_at: datetime
    shipping_address: Address
    shipments: tuple[Shipment, ...] = ()
    refunds: tuple[Refund, ...] = ()
    cancel_reason: str | None = None

    @property
    def shipped(self) -> bool:
        return self.status not in BEFORE_SHIPPING and self.status != "cancelled"

    @property
    def latest_shipment(self) -> Shipment | None:
        return self.shipments[-1] if self.shipments else None

    @property
    def subtotal(self) -> Decimal:
        return sum((i.line_total for i in self.items), Decimal("0"))

    @property
    def cancel_cause(self) -> str | None:
        """Why a cancelled order was cancelled, as a shopper may be told it: `customer` (their own request),
        `declined` (the payment) or `inventory` (out of stock); None when the store does not say, or says
        something not for the shopper (Shopify's FRAUD, STAFF, OTHER)."""
        return cancel_cause(self.cancel_reason)


# A store's cancellation reason (Shopify's OrderCancelReason, or the demo store's words) to what a shopper is told.
_CANCEL_CAUSES = (
    ("declined", re.compile(r"declined|payment (failed|refused)", re.I)),
    ("inventory", re.compile(r"inventory|out of stock|sold out", re.I)),
    ("customer", re.compile(r"customer|shopper|buyer", re.I)),
)


def cancel_cause(reason: str | None) -> str | None:
    for cause, pattern in _CANCEL_CAUSES:
        if reason and pattern.search(reason):
            return cause
    return None


@dataclass(frozen=True)
class ReturnItem:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Return:
    id: str  # e.g. "RMA-7K3Q9D"
    order_number: str
    items: tuple[ReturnItem, ...]
    reason: str
    status: str  # requested | received | refunded | rejected
    created_at: datetime
    return_address: str  # where the parcel goes
    instructions: str = ""  # free text from the store (the bot's own wording comes from responses)


@dataclass(frozen=True)
class ShippingOption:
    method: str  # e.g. "standard", "express"
    carrier: str
    min_days: int
    max_days: int
    price: Decimal
    currency: str


@dataclass(frozen=True)
class ShippingEstimate:
    country: str
    min_days: int
    max_days: int
    options: tuple[ShippingOption, ...] = field(default_factory=tuple)


@runtime_checkable
class StoreConnector(Protocol):
    """What the bot can ask a store. Every method may raise StoreUnavailable."""

    async def get_order(self, number: str) -> Order:
        """The order with this number; raises OrderNotFound."""
        ...

    async def find_orders(self, email: str | None = None, phone: str | None = None) -> list[Order]:
        """Orders placed with this email or phone, newest first."""
        ...

    async def get_customer(self, email: str | None = None, phone: str | None = None) -> Customer | None: ...

    async def cancel_order(self, number: str, reason: str) -> Order:
        """Cancel before shipping; raises ActionNotAllowed("already_shipped") after."""
        ...

    async def change_address(self, number: str, address: Address) -> Order:
        """Change the shipping address before shipping; raises ActionNotAllowed after."""
        ...

    async def refunds(self, number: str) -> list[Refund]: ...

    async def create_return(self, number: str, items: list[ReturnItem] | None, reason: str) -> Return:
        """Open a return (all items when `items` is None); raises ActionNotAllowed when not returnable."""
        ...

    async def add_return_note(self, number: str, return_id: str, note: str) -> None:
        """Add the shopper's words (why the items come back) to a return already opened for the order."""
        ...

    async def invoice_pdf(self, number: str) -> bytes: ...

    async def shipping_estimate(self, country: str) -> ShippingEstimate:
        """Delivery time to a destination country; raises ActionNotAllowed("not_shipped_to")."""
        ...
