"""API schemas, kept apart from the tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from bot.store.models import Message


class MessagePublic(BaseModel):
    id: int
    conversation_id: int
    direction: str
    author: str
    channel: str
    text: str
    quick_replies: list[dict[str, str]] = []
    attachments: list[dict[str, Any]] = []
    status: str
    language: str | None = None
    created_at: datetime

    @classmethod
    def of(cls, message: Message) -> MessagePublic:
        payload = message.payload or {}
        return cls(
            id=message.id,
            conversation_id=message.conversation_id,
            direction=message.direction,
            author=message.author,
            channel=message.channel,
            text=message.text,
            quick_replies=list(payload.get("quick_replies", [])),
            attachments=list(payload.get("attachments", [])),
            status=message.status,
            language=message.language,
            created_at=message.created_at,
        )
