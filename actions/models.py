"""Tables of the demo store connector (its own declarative base; the lead's Alembic migrations include it)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class StoreBase(DeclarativeBase):
    pass


class StoreCustomer(StoreBase):
    __tablename__ = "store_customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), index=True)  # lower-cased
    phone: Mapped[str | None] = mapped_column(String(32), index=True)  # E.164
    locale: Mapped[str | None] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2))


class StoreOrder(StoreBase):
    __tablename__ = "store_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("store_customers.id"), index=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)  # lower-cased
    phone: Mapped[str | None] = mapped_column(String(32), index=True)  # E.164
    status: Mapped[str] = mapped_column(String(20), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Line items, address, shipments and refunds are read whole with the order, never queried alone.
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    shipping_address: Mapped[dict[str, Any]] = mapped_column(JSON)
    shipments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    refunds: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    cancel_reason: Mapped[str | None] = mapped_column(Text)


class StoreReturn(StoreBase):
    __tablename__ = "store_returns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    return_id: Mapped[str] = mapped_column(String(32), unique=True)
    order_number: Mapped[str] = mapped_column(String(64), index=True)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
