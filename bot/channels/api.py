"""The integration channel behind POST /api/v1/converse: replies travel back in the HTTP response."""

from __future__ import annotations

from typing import Any

from bot.channels.base import OutboundMessage, SendResult


class ApiChannel:
    """Nothing to push: a reply reaches the caller only in the /converse response, which marks it delivered;
    one nobody collected (the call timed out, or an agent wrote after the handoff) stays `sent`."""

    name = "api"

    async def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(external_id=f"api-{message.message_id}", status="sent")


def build(state: Any) -> ApiChannel:
    return ApiChannel()


router = None  # no routes of its own: bot/api/converse.py serves it
