"""Order privacy: only a shopper who proves ownership sees an order; guessing reveals nothing and is limited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from actions.demo_store import DemoStore
from actions.ownership import OwnershipVerifier, RateLimited
from tests.actions.conftest import first_order


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_order_number_with_the_orders_email_or_phone_proves_ownership(
    demo_store: DemoStore, redis: Redis, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "in_transit")
    verifier = OwnershipVerifier(demo_store, redis)
    by_email = await verifier.verify("wa:+4915100000000", raw["number"], email=f"  {raw['email'].upper()} ")
    assert by_email is not None and by_email.method == "email" and by_email.order.number == raw["number"]
    # The phone typed the way people type it: national format with spaces, no country code.
    import phonenumbers

    parsed = phonenumbers.parse(raw["phone"])
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    by_phone = await verifier.verify("widget:abc", raw["number"].lower(), phone=national)
    assert by_phone is not None and by_phone.method == "phone"


async def test_linked_identity_needs_no_further_proof(
    demo_store: DemoStore, redis: Redis, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "delivered")
    verifier = OwnershipVerifier(demo_store, redis)
    verified = await verifier.verify(f"whatsapp:{raw['phone']}", raw["number"], known_contacts=[raw["phone"]])
    assert verified is not None and verified.method == "linked_identity"
    linked = await verifier.linked_orders([raw["phone"], "not a contact"])
    mine = [o["number"] for o in demo_data["orders"] if o["phone"] == raw["phone"]]
    assert sorted(o.number for o in linked) == sorted(mine) and raw["number"] in mine
    other = first_order(demo_data, "paid")
    assert other["customer_id"] != raw["customer_id"]
    assert await verifier.verify(f"whatsapp:{raw['phone']}", other["number"], known_contacts=[raw["phone"]]) is None


async def test_guessed_order_number_with_wrong_email_looks_exactly_like_an_unknown_order(
    demo_store: DemoStore, redis: Redis, demo_data: dict[str, Any]
) -> None:
    victim = first_order(demo_data, "in_transit")
    attacker_email = "attacker@evil.example"
    verifier = OwnershipVerifier(demo_store, redis)
    existing = await verifier.verify("widget:attacker", victim["number"], email=attacker_email)
    unknown = await verifier.verify("widget:attacker2", "ND-999999", email=attacker_email)
    assert existing is None and unknown is None
    # Another customer's real email on someone else's order is no proof either.
    other = next(o for o in demo_data["orders"] if o["customer_id"] != victim["customer_id"])
    assert await verifier.verify("widget:attacker3", victim["number"], email=other["email"]) is None


async def test_guessing_is_rate_limited_per_sender_on_real_redis(
    demo_store: DemoStore, redis: Redis, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "shipped")
    verifier = OwnershipVerifier(demo_store, redis, max_failures=5, window_seconds=900)
    for guess in range(5):
        assert await verifier.verify("wa:+10000000001", f"ND-1{guess:05d}", email="guess@example.com") is None
    with pytest.raises(RateLimited) as exc:
        # Even the right pair is refused while the sender is locked out.
        await verifier.verify("wa:+10000000001", raw["number"], email=raw["email"])
    assert 0 < exc.value.retry_after <= 900
    # Another sender is not affected.
    assert await verifier.verify("wa:+10000000002", raw["number"], email=raw["email"]) is not None
    # Nothing readable about the shopper or the order is stored in Redis.
    keys = [k.decode() if isinstance(k, bytes) else k for k in await redis.keys("nd:ownership:*")]
    assert keys and not any("+1000" in k or "ND-" in k for k in keys)


async def test_one_order_attacked_from_many_senders_is_locked(
    demo_store: DemoStore, redis: Redis, demo_data: dict[str, Any]
) -> None:
    raw = first_order(demo_data, "delivered")
    verifier = OwnershipVerifier(demo_store, redis, max_failures=3)
    for sender in range(3):
        assert await verifier.verify(f"widget:bot{sender}", raw["number"], phone="+1 202 555 0100") is None
    with pytest.raises(RateLimited):
        await verifier.verify("widget:bot99", raw["number"], email=raw["email"])
