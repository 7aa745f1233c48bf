"""Rasa-compatible REST channel: `POST /webhooks/rest/webhook` so existing Rasa clients work unchanged.

Request `{"sender": "...", "message": "..."}`, answer `[{"recipient_id": "...", "text": "...",
"buttons": [{"title", "payload"}]}]`: the bot's replies to that one message, waited for up to a
timeout (as Rasa's REST channel does), or `[]` when the bot stays silent (a human owns the thread).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from bot.channels.base import InboundMessage, OutboundMessage, SendResult
from bot.channels.widget import live_events, next_event
from bot.pipeline import Ingest
from bot.store.models import DecisionTrace, Message

NAME = "rest"
REPLY_TIMEOUT_S = 30.0
RECHECK_S = 1.0  # besides the live events, look at the database now and then (events are best-effort)
SENDER_MAX = 200

router = APIRouter(tags=["rest"])


class RestChannel:
    """Nothing to push: a reply reaches the client only in the response to its request, which marks it
    delivered; one nobody collected (the request gave up waiting, or an agent wrote after the handoff)
    stays `sent`."""

    name = NAME

    async def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(external_id=f"rest-{message.message_id}", status="sent")


def build(state: Any) -> RestChannel:
    return RestChannel()


def _bad(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=400)


def reply_json(recipient_id: str, message: Message) -> dict[str, Any]:
    """One reply in Rasa's REST output format."""
    out: dict[str, Any] = {"recipient_id": recipient_id, "text": message.text}
    payload = message.payload or {}
    buttons = payload.get("quick_replies") or []
    if buttons:
        out["buttons"] = [{"title": b.get("title", ""), "payload": b.get("payload", "")} for b in buttons]
    for attachment in payload.get("attachments") or []:
        if attachment.get("kind") == "image" and attachment.get("url"):
            out.setdefault("image", attachment["url"])
    return out


async def _replies_if_decided(request: Request, message_id: int) -> list[Message] | None:
    """The replies of the turn that handled this inbound message, or None while it is undecided."""
    async with request.app.state.db.sessions() as session:
        trace = (
            await session.execute(select(DecisionTrace).where(DecisionTrace.inbound_message_id == message_id))
        ).scalar_one_or_none()
        if trace is None:
            return None
        ids = [int(i) for i in (trace.trace or {}).get("reply_message_ids", [])]
        if not ids:
            return []
        rows = await session.execute(select(Message).where(Message.id.in_(ids)).order_by(Message.id))
        return list(rows.scalars().all())


@router.post("/webhooks/rest/webhook")
async def rest_webhook(request: Request) -> JSONResponse:
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _bad('The body must be JSON like {"sender": "user-1", "message": "hello"}.')
    if not isinstance(body, dict):
        return _bad('The body must be a JSON object like {"sender": "user-1", "message": "hello"}.')
    sender = body.get("sender", "default")  # Rasa's REST channel falls back to "default" too
    message = body.get("message")
    if not isinstance(sender, str | int) or isinstance(sender, bool) or not str(sender).strip():
        return _bad('"sender" must be a non-empty string identifying the user, e.g. "user-1".')
    sender = str(sender).strip()
    if len(sender) > SENDER_MAX:
        return _bad(f'"sender" is {len(sender)} characters long; at most {SENDER_MAX} are allowed.')
    if not isinstance(message, str):
        return _bad('"message" is missing or not a string; send the user\'s text as "message".')
    text = message.strip()
    if not text:
        return _bad('"message" is empty; send the user\'s text as "message".')
    limit = int(getattr(request.app.state.settings, "message_max_length", 2000))
    if len(text) > limit:
        return _bad(f'"message" is {len(text):,} characters long; the limit is {limit:,}. Shorten or split it.')
    metadata = body.get("metadata")
    ingest: Ingest = request.app.state.ingest
    accepted = await ingest.accept(
        InboundMessage(
            channel=NAME,
            external_id=uuid.uuid4().hex,  # Rasa's REST payload carries no message id: every POST is new
            sender=sender,
            text=text,
            metadata={"rasa_metadata": metadata} if isinstance(metadata, dict) and metadata else {},
        )
    )
    replies = await _wait_for_replies(request, accepted.conversation_id, accepted.message_id)
    body_out = [reply_json(sender, m) for m in replies]
    for reply in replies:
        await ingest.record_status_of(reply.id, "delivered")  # in this response: the client has it
    return JSONResponse(body_out)


async def _wait_for_replies(request: Request, conversation_id: int, message_id: int) -> list[Message]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPLY_TIMEOUT_S
    async with live_events(request.app.state.redis, conversation_id) as pubsub:
        while True:
            replies = await _replies_if_decided(request, message_id)
            if replies is not None:
                return replies
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            try:
                # The worker announces its replies as message events: wake up and look.
                await asyncio.wait_for(next_event(pubsub), timeout=min(RECHECK_S, remaining))
            except TimeoutError:
                pass
