"""The demo store connector: orders, customers, shipments and refunds in the bot's own database.

`load_demo_store` imports examples/demo-store/store/orders.json (idempotent); `DemoStore` reads and
writes those tables, so cancellations, address changes and returns persist.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import string
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions.contacts import normalize_email, normalize_phone
from actions.invoices import render_invoice_pdf
from actions.models import StoreCustomer, StoreOrder, StoreReturn
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

ROOT = Path(__file__).resolve().parent.parent
DEMO_STORE_DIR = ROOT / "examples" / "demo-store" / "store"
P = ParamSpec("P")
T = TypeVar("T")


def _dt(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone=True columns; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def normalize_order_number(raw: str) -> str:
    """'nd 100234', '#ND-100234', 'nd100234', '100234', '#100234' -> 'ND-100234'; anything else upper-cased
    and trimmed. Shoppers often leave the prefix out of the number on their confirmation."""
    text = raw.strip().lstrip("#").upper().replace(" ", "")
    if text.startswith("ND") and text[2:3] != "-" and text[2:].isdigit():
        text = f"ND-{text[2:]}"
    elif text.isdigit():
        text = f"ND-{text}"
    return text


@dataclass(frozen=True)
class LoadReport:
    customers_added: int
    orders_added: int
    orders_total: int


def _shift_iso(value: str | None, by: timedelta) -> str | None:
    if not value:
        return value
    if len(value) == 10:  # a date (estimated delivery)
        return (date.fromisoformat(value) + by).isoformat()
    shifted = _dt(value)
    assert shifted is not None
    return (shifted + by).isoformat()


def shift_order(order: dict[str, Any], by: timedelta) -> dict[str, Any]:
    """The order with every date and time in it (placed, shipped, due, delivered, refunds, returns) moved by `by`."""
    moved = dict(order)
    moved["created_at"] = _shift_iso(order["created_at"], by)
    moved["shipments"] = [{**s, **{k: _shift_iso(s.get(k), by) for k in ("shipped_at", "estimated_delivery",
                                                                           "delivered_at")}}
                          for s in order.get("shipments") or []]
    moved["refunds"] = [{**r, **{k: _shift_iso(r.get(k), by) for k in ("created_at", "processed_at")}}
                        for r in order.get("refunds") or []]
    moved["returns"] = [{**r, "created_at": _shift_iso(r.get("created_at"), by)} for r in order.get("returns") or []]
    return moved


def demo_shift(data: dict[str, Any], today: date) -> timedelta:
    """Whole days from the day the demo orders were generated for (`reference_now`) to `today`: the demo's
    orders are as fresh on any day as on that one (parcels in transit, not all late). Zero without it."""
    reference = _dt(data.get("reference_now"))
    return timedelta(days=(today - reference.date()).days) if reference else timedelta(0)


async def load_demo_store(
    sessionmaker: async_sessionmaker[AsyncSession], path: str | Path = DEMO_STORE_DIR / "orders.json",
    *, today: date | None = None,
) -> LoadReport:
    """Import the demo orders. Rows that exist are left as they are, so shoppers' changes survive reloads.

    With `today`, new rows have their dates moved by `demo_shift`, so the demo seen weeks after the data was
    generated still has parcels on their way; rows already loaded keep their dates and age like real orders.
    Without it the dates are those in the file (the tests that check them)."""
    data = json.loads(await asyncio.to_thread(Path(path).read_text, encoding="utf-8"))
    by = demo_shift(data, today) if today is not None else timedelta(0)
    added_customers = added_orders = 0
    async with sessionmaker() as session, session.begin():
        existing_customers = {
            ext: pk for ext, pk in (await session.execute(select(StoreCustomer.external_id, StoreCustomer.id)))
        }
        for c in data["customers"]:
            if c["id"] in existing_customers:
                continue
            row = StoreCustomer(external_id=c["id"], name=c["name"], email=normalize_email(c.get("email")),
                                phone=normalize_phone(c.get("phone"), c.get("country")),
                                locale=c.get("locale"), country=c.get("country"))
            session.add(row)
            await session.flush()
            existing_customers[c["id"]] = row.id
            added_customers += 1
        existing_orders = set((await session.execute(select(StoreOrder.number))).scalars())
        for o in data["orders"]:
            if o["number"] in existing_orders:
                continue
            if by:
                o = shift_order(o, by)
            created = _dt(o["created_at"])
            assert created is not None
            country = o["shipping_address"]["country"]
            session.add(StoreOrder(
                number=o["number"], customer_id=existing_customers[o["customer_id"]],
                email=normalize_email(o.get("email")), phone=normalize_phone(o.get("phone"), country),
                status=o["status"], currency=o["currency"], total=Decimal(o["total"]), created_at=created,
                updated_at=created, items=o["items"], shipping_address=o["shipping_address"],
                shipments=o["shipments"], refunds=o["refunds"], cancel_reason=o.get("cancel_reason"),
            ))
            for r in o.get("returns", []):
                session.add(StoreReturn(return_id=r["id"], order_number=o["number"], items=r["items"],
                                        reason=r["reason"], status=r["status"], created_at=_dt(r["created_at"])))
            added_orders += 1
        total = len(existing_orders) + added_orders
    return LoadReport(customers_added=added_customers, orders_added=added_orders, orders_total=total)


def _customer(row: StoreCustomer) -> Customer:
    return Customer(id=row.external_id, name=row.name, email=row.email, phone=row.phone, locale=row.locale,
                    country=row.country)


def _order(row: StoreOrder, customer: StoreCustomer) -> Order:
    a = row.shipping_address
    return Order(
        number=row.number,
        customer=_customer(customer),
        email=row.email,
        phone=row.phone,
        items=tuple(OrderItem(sku=i["sku"], name=i["name"], quantity=int(i["quantity"]),
                              unit_price=Decimal(str(i["unit_price"]))) for i in row.items),
        currency=row.currency,
        total=Decimal(str(row.total)).quantize(Decimal("1") if row.currency == "JPY" else Decimal("0.01")),
        status=row.status,
        created_at=_aware(row.created_at),
        shipping_address=Address(name=a.get("name", ""), line1=a.get("line1", ""), line2=a.get("line2", ""),
                                 city=a.get("city", ""), region=a.get("region", ""),
                                 postal_code=a.get("postal_code", ""), country=a.get("country", "")),
        shipments=tuple(Shipment(
            carrier=s["carrier"], tracking_number=s["tracking_number"], tracking_url=s["tracking_url"],
            shipped_at=_dt(s.get("shipped_at")),
            estimated_delivery=date.fromisoformat(s["estimated_delivery"]) if s.get("estimated_delivery") else None,
            delivered_at=_dt(s.get("delivered_at")),
        ) for s in row.shipments or []),
        refunds=tuple(_refund(r) for r in row.refunds or []),
        cancel_reason=row.cancel_reason,
    )


def _refund(r: dict[str, Any]) -> Refund:
    created = _dt(r["created_at"])
    assert created is not None
    return Refund(id=r["id"], amount=Decimal(str(r["amount"])), currency=r["currency"], status=r["status"],
                  created_at=created, processed_at=_dt(r.get("processed_at")))


def _database_errors(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """A database that cannot be reached is a store outage (StoreUnavailable), not a bug."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except (OperationalError, InterfaceError, OSError) as exc:
            raise StoreUnavailable(f"demo store database unavailable: {exc}") from exc

    return wrapper


class DemoStore:
    """StoreConnector over the demo store tables."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], seller: SellerProfile) -> None:
        self._sessions = sessionmaker
        self.seller = seller

    async def _load(self, session: AsyncSession, number: str) -> tuple[StoreOrder, StoreCustomer]:
        result = await session.execute(
            select(StoreOrder, StoreCustomer)
            .join(StoreCustomer, StoreCustomer.id == StoreOrder.customer_id)
            .where(StoreOrder.number == normalize_order_number(number))
        )
        row = result.first()
        if row is None:
            raise OrderNotFound(number)
        return row[0], row[1]

    @_database_errors
    async def get_order(self, number: str) -> Order:
        async with self._sessions() as session:
            order, customer = await self._load(session, number)
            return _order(order, customer)

    @_database_errors
    async def find_orders(self, email: str | None = None, phone: str | None = None) -> list[Order]:
        conditions = []
        if (e := normalize_email(email)) is not None:
            conditions.append(StoreOrder.email == e)
        if (p := normalize_phone(phone)) is not None:
            conditions.append(StoreOrder.phone == p)
        if not conditions:
            return []
        async with self._sessions() as session:
            rows = await session.execute(
                select(StoreOrder, StoreCustomer)
                .join(StoreCustomer, StoreCustomer.id == StoreOrder.customer_id)
                .where(or_(*conditions))
                .order_by(StoreOrder.created_at.desc())
            )
            return [_order(o, c) for o, c in rows.all()]

    @_database_errors
    async def get_customer(self, email: str | None = None, phone: str | None = None) -> Customer | None:
        conditions = []
        if (e := normalize_email(email)) is not None:
            conditions.append(StoreCustomer.email == e)
        if (p := normalize_phone(phone)) is not None:
            conditions.append(StoreCustomer.phone == p)
        if not conditions:
            return None
        async with self._sessions() as session:
            row = (await session.execute(select(StoreCustomer).where(or_(*conditions)).limit(1))).scalar()
            return _customer(row) if row else None

    @_database_errors
    async def cancel_order(self, number: str, reason: str) -> Order:
        async with self._sessions() as session, session.begin():
            order, customer = await self._load(session, number)
            if order.status == "cancelled":
                raise ActionNotAllowed("already_cancelled", f"{order.number} is already cancelled")
            if order.status not in BEFORE_SHIPPING:
                raise ActionNotAllowed("already_shipped", f"{order.number} has already shipped")
            now = datetime.now(UTC)
            if order.status != "pending":
                # Paid orders are refunded in full on cancellation.
                refunds = list(order.refunds or [])
                refunds.append({"id": f"RF-{order.number.removeprefix('ND-')}-{len(refunds) + 1}",
                                "amount": str(order.total), "currency": order.currency, "status": "pending",
                                "created_at": now.isoformat(), "processed_at": None})
                order.refunds = refunds
            order.status = "cancelled"
            order.cancel_reason = reason
            order.updated_at = now
            await session.flush()
            return _order(order, customer)

    @_database_errors
    async def change_address(self, number: str, address: Address) -> Order:
        async with self._sessions() as session, session.begin():
            order, customer = await self._load(session, number)
            if order.status not in BEFORE_SHIPPING:
                raise ActionNotAllowed(
                    "already_cancelled" if order.status == "cancelled" else "already_shipped",
                    f"{order.number} is {order.status}",
                )
            if address.country.upper() != order.shipping_address.get("country"):
                # Another country changes duties, VAT and carrier: that is a new order, not an edit.
                raise ActionNotAllowed("country_change", "the destination country cannot be changed")
            order.shipping_address = asdict(address) | {"country": address.country.upper()}
            order.updated_at = datetime.now(UTC)
            await session.flush()
            return _order(order, customer)

    async def refunds(self, number: str) -> list[Refund]:
        return list((await self.get_order(number)).refunds)

    @_database_errors
    async def create_return(self, number: str, items: list[ReturnItem] | None, reason: str) -> Return:
        async with self._sessions() as session, session.begin():
            order, _ = await self._load(session, number)
            if order.status not in RETURNABLE:
                code = {"returned": "already_returned", "refunded": "already_refunded",
                        "cancelled": "already_cancelled"}.get(order.status, "not_shipped_yet")
                raise ActionNotAllowed(code, f"{order.number} is {order.status}")
            open_return = (await session.execute(
                select(StoreReturn).where(StoreReturn.order_number == order.number,
                                          StoreReturn.status == "requested")
            )).scalar()
            if open_return is not None:
                return self._return(open_return, order.shipping_address.get("country"))
            ordered = {i["sku"]: int(i["quantity"]) for i in order.items}
            chosen = items or [ReturnItem(sku=s, quantity=q) for s, q in ordered.items()]
            for item in chosen:
                if item.sku not in ordered or not 0 < item.quantity <= ordered[item.sku]:
                    raise ActionNotAllowed("not_in_order", f"{item.sku} x{item.quantity} is not in {order.number}")
            alphabet = string.ascii_uppercase + string.digits
            row = StoreReturn(return_id="RMA-" + "".join(secrets.choice(alphabet) for _ in range(6)),
                              order_number=order.number,
                              items=[{"sku": i.sku, "quantity": i.quantity} for i in chosen],
                              reason=reason, status="requested", created_at=datetime.now(UTC))
            session.add(row)
            await session.flush()
            return self._return(row, order.shipping_address.get("country"))

    @_database_errors
    async def add_return_note(self, number: str, return_id: str, note: str) -> None:
        async with self._sessions() as session, session.begin():
            row = (await session.execute(select(StoreReturn).where(
                StoreReturn.return_id == return_id, StoreReturn.order_number == normalize_order_number(number))
            )).scalar()
            if row is None:
                raise ActionNotAllowed("not_in_order", f"{number} has no return {return_id}")
            row.reason = note if row.reason in ("", "not given") else f"{row.reason}\n{note}"
            await session.flush()

    def _return(self, row: StoreReturn, country: str | None) -> Return:
        return Return(id=row.return_id, order_number=row.order_number,
                      items=tuple(ReturnItem(sku=i["sku"], quantity=int(i["quantity"])) for i in row.items),
                      reason=row.reason, status=row.status, created_at=_aware(row.created_at),
                      return_address=self.seller.return_address_for(country),
                      instructions=f"Write {row.return_id} on the parcel and send it within "
                                   f"{self.seller.return_window_days} days.")

    @_database_errors
    async def returns(self, number: str) -> list[Return]:
        async with self._sessions() as session:
            number = normalize_order_number(number)
            rows = (await session.execute(
                select(StoreReturn).where(StoreReturn.order_number == number).order_by(StoreReturn.created_at)
            )).scalars().all()
            address = (await session.execute(select(StoreOrder.shipping_address).where(
                StoreOrder.number == number))).scalar()
            return [self._return(r, (address or {}).get("country")) for r in rows]

    async def invoice_pdf(self, number: str) -> bytes:
        return render_invoice_pdf(await self.get_order(number), self.seller)

    async def shipping_estimate(self, country: str) -> ShippingEstimate:
        return self.seller.shipping_estimate(country)


