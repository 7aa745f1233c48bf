"""Amazon buyer messages: relayed email, answered from the seller's registered address in the same thread.

Inbound Amazon mail is read by the email channel's IMAP listener (it recognises the relay domains);
this module is the sending side for conversations on channel "amazon".
"""

from __future__ import annotations

from typing import Any

from bot.channels.email import EmailChannel, email_settings, is_configured

router = None  # no webhook: Amazon's messages arrive by email


def build(state: Any) -> EmailChannel | None:
    """The Amazon sending side from app.state; None when SMTP is not configured."""
    if not is_configured(state.settings):
        return None
    return EmailChannel(email_settings(state.settings), state.redis, name="amazon", db=getattr(state, "db", None))
