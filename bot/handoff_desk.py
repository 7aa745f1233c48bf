"""The engine's door to the handoff package: triggers, tickets, and the bot falling silent for a person."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_object_session

from bot.engine import CustomerFacts, Escalation, Rendered, Responses
from bot.events import Events
from bot.store.models import Conversation, Message
from handoff.service import HandoffService
from handoff.triggers import EscalationFacts, EscalationRules, Trigger, evaluate_triggers
from nlu.types import ParseResult

log = structlog.get_logger(__name__)

# Rough conversion for the high-value rule only (a threshold, not accounting); unknown currencies are
# compared as they are.
USD_PER_UNIT = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "AUD": 0.66, "NZD": 0.6, "JPY": 0.0067,
                "CNY": 0.14, "SGD": 0.74, "HKD": 0.13, "MXN": 0.055, "CHF": 1.13, "SEK": 0.095, "NOK": 0.093,
                "DKK": 0.145, "PLN": 0.25, "KRW": 0.00073, "BRL": 0.18, "INR": 0.012}


def usd_value(amount: float | None, currency: str | None) -> float | None:
    if amount is None:
        return None
    return float(amount) * USD_PER_UNIT.get((currency or "USD").upper(), 1.0)


UNREADABLE = {"image", "audio", "video", "document", "sticker", "file"}


class HandoffDesk:
    def __init__(self, service: HandoffService, responses: Responses, events: Events, languages: list[str],
                 rules: EscalationRules | None = None) -> None:
        self.service = service
        self.responses = responses
        self.events = events
        self.languages = languages
        self.rules = rules or EscalationRules()

    def triggers(self, parse: ParseResult, state: dict[str, Any], message: Message) -> list[dict[str, Any]]:
        attachments = (message.payload or {}).get("attachments", [])
        unreadable = any(a.get("kind") in UNREADABLE for a in attachments) and not message.text.strip()
        facts = EscalationFacts(
            parse=parse,
            failed_turns=0,  # the engine counts not-understood turns itself, after trying the KB
            # The value rule fires once per order, on a comparable (USD) amount.
            order_total=(usd_value(state.get("order_total"), state.get("order_currency"))
                         if state.get("value_checked_order") != state.get("slots", {}).get("verified_order") else None),
            order_currency="USD",
            order_in_transit=bool(state.get("order_in_transit")),
            recent_similar_contacts=int(state.get("recent_similar_contacts", 0)),
            has_unreadable_media=unreadable,
            language_supported=parse.language in self.languages or parse.language_confidence < 0.5,
        )
        fired = evaluate_triggers(facts, self.rules)
        state["value_checked_order"] = state.get("slots", {}).get("verified_order")
        if parse.intent == "bot_challenge":
            # "Are you a real person?" asks what we are, not for a person: the bot answers that itself.
            fired = [t for t in fired if t.name != "human_request"]
        return [t.to_dict() for t in fired]

    async def escalate(self, session: AsyncSession, conversation: Conversation, message: Message, parse: ParseResult,
                       triggers: list[dict[str, Any]], language: str, customer: CustomerFacts,
                       state: dict[str, Any]) -> Escalation:
        slots = state.get("slots", {})
        result = await self.service.escalate(
            customer_id=str(customer.customer_id),
            conversation_id=str(conversation.id),
            channel=conversation.channel,
            language=language,
            triggers=[Trigger(**t) for t in triggers],
            facts=EscalationFacts(parse=parse, order_in_transit=bool(state.get("order_in_transit")),
                                  order_total=state.get("order_total")),
            order_number=slots.get("verified_order") or slots.get("order_number"),
            shopper_timezone=conversation.timezone,
            session=session,  # inside the turn's transaction: a second writer would wait for its SQLite lock
        )
        conversation.owner = "human"
        state["ticket_id"] = result.ticket["id"]
        if result.out_of_hours and result.acknowledgement:
            replies = [Rendered(result.acknowledgement)]
        else:
            replies = [self.responses.render("utter_handoff", language)]
        await self.events.publish_console({"type": "ticket", "ticket": result.ticket, "created": result.created})
        return Escalation(ticket_id=result.ticket["id"], replies=replies, after_hours=result.out_of_hours,
                          trace=result.to_trace())

    async def notify_agent(self, conversation: Conversation, message: Message, parse: ParseResult) -> None:
        ticket_id = (conversation.state or {}).get("ticket_id")
        if ticket_id is None:
            return
        try:
            await self.service.customer_wrote(int(ticket_id), conversation.channel,
                                              session=async_object_session(conversation))
        except Exception:  # the ticket may have been closed meanwhile; the message is stored either way
            log.warning("notify_agent_failed", ticket_id=ticket_id, conversation_id=conversation.id)
