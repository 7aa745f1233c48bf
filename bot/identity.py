"""One shopper, one customer: link channel identities by a matching email/phone or a proven order,
merge and unmerge customer profiles with an audit trail, and list a customer's conversations on all channels.

A merge never rewrites identities: the source customer points at the target (`merged_into_id`) and its
conversations move to the target, which is recorded so that an unmerge can put everything back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import BindParameter, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_object_session

from actions.contacts import normalize_email, normalize_phone
from bot.pipeline import current_customer_id
from bot.store.models import ChannelIdentity, Conversation, Customer, CustomerMergeAudit

log = structlog.get_logger(__name__)

EMAIL_CHANNELS = ("email", "amazon")
PHONE_CHANNELS = ("whatsapp",)


class MergeError(ValueError):
    """A merge or unmerge that cannot be done; the message says why and what to do instead."""


@dataclass(frozen=True)
class LinkResult:
    customer_id: int  # the customer the identity now belongs to
    merged: bool  # False when it already belonged there (or nothing matched)
    audit_id: int | None = None
    matched_by: str | None = None  # email | phone | order


async def merged_customer_ids(session: AsyncSession, customer_id: int) -> list[int]:
    """The customer and every profile merged into it (directly or through a chain), the customer first."""
    merged = (await session.execute(merged_profiles(customer_id))).scalars().all()
    return [customer_id, *(cid for cid in merged if cid != customer_id)]


def merged_profiles(customer_id: int | BindParameter[int]) -> Select[Any]:
    """The customer and every profile merged into it, as a statement (a recursive CTE): `merged_customer_ids` runs
    it; use it inside another statement to save the round trip (with a `bindparam`, built once and reused)."""
    tree = select(Customer.id).where(Customer.id == customer_id).cte("merged_profiles", recursive=True)
    tree = tree.union(select(Customer.id).where(Customer.merged_into_id == tree.c.id))
    return select(tree.c.id)


async def find_customer_by_contact(session: AsyncSession, *, email: str | None = None,
                                   phone: str | None = None, exclude: int | None = None) -> Customer | None:
    """The oldest live customer whose profile or channel identities carry this email or phone number."""
    email_n = normalize_email(email)
    phone_n = normalize_phone(phone) if phone else None
    candidates: set[int] = set()
    if email_n:
        rows = await session.execute(select(Customer.id).where(Customer.email == email_n))
        candidates.update(rows.scalars())
        rows = await session.execute(select(ChannelIdentity.customer_id).where(
            ChannelIdentity.channel.in_(EMAIL_CHANNELS), ChannelIdentity.address == email_n))
        candidates.update(rows.scalars())
    if phone_n:
        digits = phone_n.lstrip("+")
        rows = await session.execute(select(Customer.id).where(or_(Customer.phone == phone_n,
                                                                   Customer.phone == digits)))
        candidates.update(rows.scalars())
        rows = await session.execute(select(ChannelIdentity.customer_id).where(
            ChannelIdentity.channel.in_(PHONE_CHANNELS), ChannelIdentity.address.in_([digits, phone_n])))
        candidates.update(rows.scalars())
    live = {await current_customer_id(session, cid) for cid in candidates}
    if exclude is not None:
        live.discard(await current_customer_id(session, exclude))
    if not live:
        return None
    return await session.get(Customer, min(live))


async def merge_customers(session: AsyncSession, source_id: int, target_id: int, *, actor: str,
                          reason: str) -> CustomerMergeAudit:
    """Merge the source profile into the target: one customer, one history. Recorded for unmerge."""
    source_id = await current_customer_id(session, source_id)
    target_id = await current_customer_id(session, target_id)
    if source_id == target_id:
        raise MergeError(f"customer {source_id} is already merged with customer {target_id}")
    source = await session.get(Customer, source_id)
    target = await session.get(Customer, target_id)
    if source is None or target is None:
        raise MergeError(f"no customer {source_id if source is None else target_id}")
    moved = list((await session.execute(
        select(Conversation).where(Conversation.customer_id == source_id))).scalars())
    filled: dict[str, Any] = {}
    for attr in ("email", "phone", "display_name"):
        if getattr(target, attr) is None and getattr(source, attr) is not None:
            setattr(target, attr, getattr(source, attr))
            filled[attr] = getattr(source, attr)
    for conv in moved:
        conv.customer_id = target_id
    source.merged_into_id = target_id
    audit = CustomerMergeAudit(action="merge", source_customer_id=source_id, target_customer_id=target_id,
                               actor=actor, reason=reason,
                               details={"conversation_ids": [c.id for c in moved], "filled": filled})
    session.add(audit)
    await session.flush()
    log.info("customers_merged", source=source_id, target=target_id, actor=actor, audit_id=audit.id)
    return audit


async def unmerge_customer(session: AsyncSession, source_id: int, *, actor: str, reason: str) -> CustomerMergeAudit:
    """Undo the merge of `source_id`: its identities' conversations and the fields it lent go back to it."""
    source = await session.get(Customer, source_id)
    if source is None:
        raise MergeError(f"no customer {source_id}")
    if source.merged_into_id is None:
        raise MergeError(f"customer {source_id} is not merged into another profile; nothing to unmerge")
    target_id = source.merged_into_id
    target = await session.get(Customer, target_id)
    assert target is not None
    last_merge = (await session.execute(
        select(CustomerMergeAudit).where(CustomerMergeAudit.action == "merge",
                                         CustomerMergeAudit.source_customer_id == source_id,
                                         CustomerMergeAudit.target_customer_id == target_id)
        .order_by(CustomerMergeAudit.id.desc()).limit(1))).scalar_one_or_none()
    # Every conversation started on an identity of the source (or of profiles merged into it) belongs
    # to the source again, including those begun after the merge.
    branch = await merged_customer_ids(session, source_id)
    own_identities = list((await session.execute(
        select(ChannelIdentity.id).where(ChannelIdentity.customer_id.in_(branch)))).scalars())
    moved_ids = set(last_merge.details.get("conversation_ids", [])) if last_merge else set()
    back = list((await session.execute(select(Conversation).where(or_(
        Conversation.identity_id.in_(own_identities), Conversation.id.in_(moved_ids))))).scalars())
    for conv in back:
        conv.customer_id = source_id
    if last_merge is not None:
        for attr, value in (last_merge.details.get("filled") or {}).items():
            if getattr(target, attr) == value:
                setattr(target, attr, None)
    source.merged_into_id = None
    audit = CustomerMergeAudit(action="unmerge", source_customer_id=source_id, target_customer_id=target_id,
                               actor=actor, reason=reason,
                               details={"conversation_ids": [c.id for c in back],
                                        "undoes": last_merge.id if last_merge else None})
    session.add(audit)
    await session.flush()
    log.info("customers_unmerged", source=source_id, target=target_id, actor=actor, audit_id=audit.id)
    return audit


async def _link(session: AsyncSession, identity_id: int, target: Customer | None, *, actor: str, reason: str,
                matched_by: str) -> LinkResult:
    identity = await session.get(ChannelIdentity, identity_id)
    if identity is None:
        raise MergeError(f"no channel identity {identity_id}")
    own = await current_customer_id(session, identity.customer_id)
    if target is None:
        return LinkResult(own, merged=False)
    target_id = await current_customer_id(session, target.id)
    if target_id == own:
        return LinkResult(own, merged=False, matched_by=matched_by)
    # The younger profile joins the older one, so the long history keeps its customer id.
    source_id, into = (own, target_id) if own > target_id else (target_id, own)
    audit = await merge_customers(session, source_id, into, actor=actor, reason=reason)
    return LinkResult(into, merged=True, audit_id=audit.id, matched_by=matched_by)


async def link_by_contact(session: AsyncSession, identity_id: int, *, email: str | None = None,
                          phone: str | None = None, actor: str = "bot") -> LinkResult:
    """The shopper gave an email or phone number: join the customer who already has it, if any.

    The identity is not marked verified: a typed address proves nothing, so it must not unlock
    order details on its own (ownership is still proven per order).
    """
    identity = await session.get(ChannelIdentity, identity_id)
    if identity is None:
        raise MergeError(f"no channel identity {identity_id}")
    target = await find_customer_by_contact(session, email=email, phone=phone, exclude=identity.customer_id)
    by = "email" if email and normalize_email(email) else "phone"
    given = normalize_email(email) or normalize_phone(phone) or ""
    result = await _link(session, identity_id, target, actor=actor,
                         reason=f"shopper on {identity.channel} gave the {by} {given}", matched_by=by)
    if not result.merged and target is None:
        # Nobody has it yet: remember it on the shopper's own profile so later channels can match.
        customer = await session.get(Customer, await current_customer_id(session, identity.customer_id))
        assert customer is not None
        if by == "email" and customer.email is None:
            customer.email = normalize_email(email)
        elif by == "phone" and customer.phone is None and phone:
            customer.phone = normalize_phone(phone)
    return result


async def link_by_order(session: AsyncSession, identity_id: int, *, order_number: str,
                        order_email: str | None, order_phone: str | None, actor: str = "bot") -> LinkResult:
    """The shopper proved an order (number + its email or phone): join the customer the order belongs to."""
    identity = await session.get(ChannelIdentity, identity_id)
    if identity is None:
        raise MergeError(f"no channel identity {identity_id}")
    target = await find_customer_by_contact(session, email=order_email, phone=order_phone,
                                            exclude=identity.customer_id)
    identity.verified = True
    result = await _link(session, identity_id, target, actor=actor,
                         reason=f"shopper on {identity.channel} proved order {order_number}", matched_by="order")
    customer = await session.get(Customer, result.customer_id)
    assert customer is not None
    customer.email = customer.email or normalize_email(order_email)
    customer.phone = customer.phone or (normalize_phone(order_phone) if order_phone else None)
    return result


async def on_order_proven(conversation: Conversation, order_number: str, order_facts: dict[str, Any]) -> None:
    """The engine's hook (`ConversationEngine.on_order_proven`): the shopper proved an order in this
    conversation, so their channel identity joins the customer the order belongs to, inside the turn's
    transaction (the conversation moves with it, so a later escalation opens or joins that customer's ticket)."""
    session = async_object_session(conversation)
    if session is None:
        raise MergeError("the conversation is not attached to a session; link inside the engine's turn")
    result = await link_by_order(session, conversation.identity_id, order_number=order_number,
                                 order_email=order_facts.get("email"), order_phone=order_facts.get("phone"))
    if result.merged:
        await session.refresh(conversation, ["customer_id"])


async def customer_conversations(session: AsyncSession, customer_id: int) -> list[Conversation]:
    """Every conversation of this customer on every channel, including merged profiles, newest last."""
    live = await current_customer_id(session, customer_id)
    ids = await merged_customer_ids(session, live)
    rows = await session.execute(select(Conversation).where(Conversation.customer_id.in_(ids))
                                 .order_by(Conversation.last_message_at, Conversation.id))
    return list(rows.scalars())


async def merge_history(session: AsyncSession, customer_id: int) -> list[CustomerMergeAudit]:
    """The audit trail of merges and unmerges touching this customer, oldest first."""
    rows = await session.execute(select(CustomerMergeAudit).where(or_(
        CustomerMergeAudit.source_customer_id == customer_id, CustomerMergeAudit.target_customer_id == customer_id))
        .order_by(CustomerMergeAudit.id))
    return list(rows.scalars())
