"""The engine's view of a channel: an inbound message, an outbound message, and how to send.

A channel module only translates its wire format to and from these types; it never decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class Attachment:
    kind: str  # image | document | audio | video | location | sticker | file
    url: str | None = None
    media_id: str | None = None
    filename: str | None = None
    mime_type: str | None = None
    caption: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InboundMessage:
    """One message from a shopper, already verified and parsed from the channel's wire format."""

    channel: str  # widget | rest | whatsapp | email | amazon | messenger | instagram | telegram | api
    external_id: str  # the channel's own message id; channel + external_id is the dedup key
    sender: str  # the channel identity: phone number, email address, widget session id, ...
    text: str
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    sender_name: str | None = None
    locale_hint: str | None = None  # e.g. the browser's navigator.language
    timezone_hint: str | None = None  # IANA zone, e.g. "America/New_York"
    attachments: tuple[Attachment, ...] = ()
    thread_key: str | None = None  # e.g. the email thread root Message-ID
    payload: str | None = None  # a button or list reply id
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        return f"{self.channel}:{self.external_id}"


@dataclass(frozen=True)
class QuickReply:
    title: str
    payload: str


@dataclass(frozen=True)
class OutboundMessage:
    """One reply to send on a channel (from the bot or from an agent)."""

    message_id: int  # the stored message row
    conversation_id: int
    channel: str
    recipient: str
    text: str
    quick_replies: tuple[QuickReply, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    language: str | None = None
    author: str = "bot"  # bot | agent:<login>
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    external_id: str | None
    status: str = "sent"  # sent | queued | delivered


class SendError(Exception):
    """Sending failed. `retryable` says whether trying again later can help."""

    def __init__(self, message: str, *, retryable: bool, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.retry_after = retry_after


class Channel(Protocol):
    """The sending side of a channel. Receiving is done by the channel's FastAPI router."""

    name: str

    async def send(self, message: OutboundMessage) -> SendResult: ...
