"""Order privacy: a shopper sees an order only after proving it is theirs, with a limit on guessing.

Proof is either a channel identity already linked to the order's customer (the caller passes that
customer's known emails/phones) or the order number plus the email or phone on the order. A wrong pair
and an unknown order give exactly the same result (None), so a guess reveals nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from actions.contacts import normalize_email, normalize_phone
from actions.demo_store import normalize_order_number
from actions.store import Order, OrderNotFound, StoreConnector

ProofMethod = Literal["linked_identity", "email", "phone"]


class RateLimited(Exception):
    """Too many failed proofs for this sender or this order number; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts; retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class VerifiedOrder:
    order: Order
    method: ProofMethod


class OwnershipVerifier:
    """Checks ownership proofs against the store; counts failures per sender and per order in Redis."""

    def __init__(
        self,
        store: StoreConnector,
        redis: Redis,
        max_failures: int = 5,
        window_seconds: int = 15 * 60,
        key_prefix: str = "nd:ownership",
    ) -> None:
        if max_failures < 1 or window_seconds < 1:
            raise ValueError("max_failures and window_seconds must be positive")
        self.store = store
        self.redis = redis
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.key_prefix = key_prefix

    def _keys(self, sender_key: str, order_number: str) -> tuple[str, str]:
        # Hashed so that Redis never holds raw identities or order numbers.
        def h(value: str) -> str:
            return hashlib.sha256(value.encode()).hexdigest()[:32]

        return (f"{self.key_prefix}:sender:{h(sender_key)}",
                f"{self.key_prefix}:order:{h(normalize_order_number(order_number))}")

    async def _check_limit(self, keys: tuple[str, str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.ttl(key)
            values = await pipe.execute()
        for count, ttl in zip(values[::2], values[1::2], strict=True):
            if count is not None and int(count) >= self.max_failures:
                raise RateLimited(max(int(ttl), 1))

    async def _record_failure(self, keys: tuple[str, str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                # SET NX EX then INCR: the window starts at the first failure and is not pushed back by
                # later ones (EXPIRE ... NX would need Redis 7; the embedded Redis is 6.2).
                pipe.set(key, 0, ex=self.window_seconds, nx=True)
                pipe.incr(key)
            await pipe.execute()

    async def verify(
        self,
        sender_key: str,
        order_number: str,
        email: str | None = None,
        phone: str | None = None,
        known_contacts: Iterable[str] = (),
    ) -> VerifiedOrder | None:
        """The order when the proof holds, else None (unknown order and wrong pair look the same).

        Raises RateLimited before looking anything up once the sender or the order has too many
        failures in the window. Only attempts that offered an email or phone count as failures:
        asking with an order number alone (to try a linked identity) cannot reveal anything.
        """
        keys = self._keys(sender_key, order_number)
        await self._check_limit(keys)
        try:
            order = await self.store.get_order(order_number)
        except OrderNotFound:
            order = None
        result = self._match(order, email, phone, known_contacts) if order is not None else None
        if result is None and (email or phone):
            await self._record_failure(keys)
        return result

    async def linked_orders(self, known_contacts: Iterable[str]) -> list[Order]:
        """All orders placed with the contacts already linked to the shopper's identity, newest first."""
        found: dict[str, Order] = {}
        for contact in known_contacts:
            email = normalize_email(contact)
            phone = None if email else normalize_phone(contact)
            if email or phone:
                for order in await self.store.find_orders(email=email, phone=phone):
                    found[order.number] = order
        return sorted(found.values(), key=lambda o: o.created_at, reverse=True)

    @staticmethod
    def _match(
        order: Order, email: str | None, phone: str | None, known_contacts: Iterable[str]
    ) -> VerifiedOrder | None:
        region = order.shipping_address.country or None
        order_emails = {e for e in (normalize_email(order.email), normalize_email(order.customer.email)) if e}
        order_phones = {p for p in (normalize_phone(order.phone, region), normalize_phone(order.customer.phone,
                                                                                           region)) if p}
        for contact in known_contacts:
            if normalize_email(contact) in order_emails or normalize_phone(contact, region) in order_phones:
                return VerifiedOrder(order, "linked_identity")
        if email and normalize_email(email) in order_emails:
            return VerifiedOrder(order, "email")
        if phone and normalize_phone(phone, region) in order_phones:
            return VerifiedOrder(order, "phone")
        return None
