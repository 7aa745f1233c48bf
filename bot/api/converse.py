"""POST /api/v1/converse: one shopper turn for integrations and evaluation, with the decision explained."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from bot.auth import require
from bot.channels.base import InboundMessage
from bot.deps import IngestDep, SettingsDep
from bot.schemas import MessagePublic
from bot.turns import TurnWaiter

router = APIRouter(prefix="/api/v1", tags=["converse"])


class ConverseRequest(BaseModel):
    sender: str = Field(min_length=1, max_length=200, description="a stable id for the shopper")
    text: str = Field(min_length=1, description="what the shopper wrote")
    channel: str = Field(default="api", pattern=r"^[a-z]{2,20}$")
    locale: str | None = Field(default=None, description="locale hint, e.g. de-DE")
    timezone: str | None = None
    message_id: str | None = Field(default=None, max_length=200, description="your id; repeats are deduplicated")
    payload: str | None = Field(default=None, description="a quick-reply payload, e.g. /kb:shipping-times")


class ConverseResponse(BaseModel):
    conversation_id: int
    message_id: int
    duplicate: bool
    replies: list[MessagePublic]
    decision: dict[str, Any]
    trace: dict[str, Any]


@router.post("/converse", response_model=ConverseResponse, dependencies=[Depends(require("admin"))])
async def converse(body: ConverseRequest, request: Request, ingest: IngestDep, settings: SettingsDep) -> ConverseResponse:
    if len(body.text) > settings.message_max_length:
        raise HTTPException(413, f"text is {len(body.text)} characters; the limit is {settings.message_max_length}")
    msg = InboundMessage(
        channel=body.channel, external_id=body.message_id or uuid.uuid4().hex,
        sender=body.sender, text=body.text, locale_hint=body.locale, timezone_hint=body.timezone, payload=body.payload,
    )
    turns: TurnWaiter = request.app.state.turns
    async with turns.expecting(msg) as turn_of:
        accepted = await ingest.accept(msg)
        turn = await turn_of(accepted, 30.0)
    if turn is None:
        raise HTTPException(504, "the bot did not decide within 30 s; the message is stored and will be answered")
    if body.channel == "api":
        for reply in turn.replies:
            await ingest.record_status_of(reply.id, "delivered")  # in this response: the caller has it
    return ConverseResponse(
        conversation_id=accepted.conversation_id, message_id=accepted.message_id, duplicate=accepted.duplicate,
        replies=turn.replies, decision=turn.trace.get("decision", {}), trace=turn.trace,
    )
