"""The integration channel behind POST /api/v1/converse: replies travel back in the HTTP response."""

from __future__ import annotations

from typing import Any

from bot.channels.base import OutboundMessage, SendResult


class ApiChannel:
    """Nothing to push: the caller already holds the replies, so sending only confirms delivery."""

    name = "api"

    async def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(external_id=f"api-{message.message_id}", status="delivered")


def build(state: Any) -> ApiChannel:
    return ApiChannel()


router = None  # no routes of its own: bot/api/converse.py serves it
