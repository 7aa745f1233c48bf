"""Customer profiles for the agent console: one customer across channels, merge and unmerge with an audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.whatsapp import window_state
from bot.deps import AgentUser, RedisDep, SessionDep, SettingsDep
from bot.identity import (
    MergeError,
    customer_conversations,
    merge_customers,
    merge_history,
    merged_customer_ids,
    unmerge_customer,
)
from bot.pipeline import current_customer_id
from bot.store.models import ChannelIdentity, Customer, Message

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])


class MergeRequest(BaseModel):
    into: int = Field(description="the customer id the profile is merged into")
    reason: str = Field(min_length=3, max_length=500, description="why: shown in the audit trail")


class UnmergeRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=500)


async def _profile(session: AsyncSession, redis: Any, settings: Any, customer_id: int) -> dict[str, Any]:
    live = await current_customer_id(session, customer_id)
    customer = await session.get(Customer, live)
    if customer is None:
        raise HTTPException(404, f"no customer {customer_id}")
    ids = await merged_customer_ids(session, live)
    identities = list((await session.execute(
        select(ChannelIdentity).where(ChannelIdentity.customer_id.in_(ids)).order_by(ChannelIdentity.id))).scalars())
    by_id = {i.id: i for i in identities}
    conversations = []
    now = datetime.now(UTC)
    for conv in await customer_conversations(session, live):
        item: dict[str, Any] = {"id": conv.id, "channel": conv.channel, "status": conv.status, "owner": conv.owner,
                                "language": conv.language, "last_message_at": conv.last_message_at.isoformat()}
        identity = by_id.get(conv.identity_id)
        if conv.channel == "whatsapp" and identity is not None:
            # Free text only inside 24 hours of the shopper's last message; after that, a template.
            item["whatsapp_window"] = (await window_state(
                redis, settings.whatsapp_phone_number_id, identity.address, now)).to_dict()
        if conv.channel == "amazon":
            last = (await session.execute(select(Message.payload).where(
                Message.conversation_id == conv.id, Message.direction == "in")
                .order_by(Message.id.desc()).limit(1))).scalar_one_or_none()
            item["reply_deadline"] = (last or {}).get("reply_deadline")
        conversations.append(item)
    return {
        "id": live, "requested_id": customer_id, "display_name": customer.display_name, "email": customer.email,
        "phone": customer.phone, "merged_profiles": [i for i in ids if i != live],
        "identities": [{"id": i.id, "customer_id": i.customer_id, "channel": i.channel, "address": i.address,
                        "verified": i.verified} for i in identities],
        "conversations": conversations,
        "merge_history": [{"id": a.id, "action": a.action, "source": a.source_customer_id,
                           "target": a.target_customer_id, "actor": a.actor, "reason": a.reason,
                           "at": a.created_at.isoformat()} for a in await merge_history(session, live)],
    }


@router.get("/{customer_id}")
async def get_customer(customer_id: int, user: AgentUser, session: SessionDep, redis: RedisDep,
                       settings: SettingsDep) -> dict[str, Any]:
    """The customer with every identity and conversation on every channel (following merges)."""
    return await _profile(session, redis, settings, customer_id)


@router.post("/{customer_id}/merge")
async def merge(customer_id: int, body: MergeRequest, user: AgentUser, session: SessionDep, redis: RedisDep,
                settings: SettingsDep) -> dict[str, Any]:
    """Merge this profile into another one (the agent knows they are the same person)."""
    try:
        async with session.begin():
            await merge_customers(session, customer_id, body.into, actor=f"agent:{user.login}", reason=body.reason)
    except MergeError as exc:
        raise HTTPException(409, f"{exc}. Open the other profile to check which one is which.") from None
    return await _profile(session, redis, settings, body.into)


@router.post("/{customer_id}/unmerge")
async def unmerge(customer_id: int, body: UnmergeRequest, user: AgentUser, session: SessionDep, redis: RedisDep,
                  settings: SettingsDep) -> dict[str, Any]:
    """Split a wrongly merged profile off again; its conversations go back to it."""
    try:
        async with session.begin():
            await unmerge_customer(session, customer_id, actor=f"agent:{user.login}", reason=body.reason)
    except MergeError as exc:
        raise HTTPException(409, str(exc)) from None
    return await _profile(session, redis, settings, customer_id)
