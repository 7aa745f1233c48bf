"""The engine's door to the handoff package: triggers, tickets, and the bot falling silent for a person."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_object_session

from bot.engine import CustomerFacts, Escalation, Rendered, Responses
from bot.events import Events
from bot.store.models import Conversation, Message
from handoff.config import HandoffConfig, phone_country
from handoff.service import HandoffService
from handoff.triggers import EscalationFacts, EscalationRules, Trigger, convert_amount, evaluate_triggers
from nlu.types import ParseResult

log = structlog.get_logger(__name__)

UNREADABLE = {"image", "audio", "video", "document", "sticker", "file"}
STORE_TIMEOUT_S = 3.0  # the region is worth a store lookup, not a stalled escalation


class HandoffDesk:
    def __init__(self, service: HandoffService, responses: Responses, events: Events, languages: list[str],
                 config: HandoffConfig | None = None, store: Any = None) -> None:
        self.service = service
        self.responses = responses
        self.events = events
        self.languages = languages
        self.config = config or HandoffConfig()
        self.store = store  # the store connector, for the order's destination country (None: phones only)

    @property
    def rules(self) -> EscalationRules:
        return self.config.escalation

    @property
    def failed_turns_limit(self) -> float:
        """Not-understood turns in a row after which the engine escalates (infinite when that trigger is off)."""
        return self.rules.failed_turns_limit if self.rules.failed_turns else float("inf")

    @property
    def repeat_contact_days(self) -> int:
        return self.rules.repeat_contact_days

    @property
    def escalates_human_requests(self) -> bool:
        return self.rules.human_request

    async def region_for(self, order_number: str | None, phones: list[str]) -> str | None:
        """The shopper's region for routing: the order's destination country, else the country of their
        phone number, mapped to the project's regions."""
        country: str | None = None
        if order_number and self.store is not None:
            try:
                order = await asyncio.wait_for(self.store.get_order(str(order_number)), STORE_TIMEOUT_S)
                country = order.shipping_address.country or None
            except Exception as exc:  # unknown order or store down: the phone may still tell
                log.info("region_order_lookup_failed", order_number=order_number, error=exc.__class__.__name__)
        for phone in phones:
            if country:
                break
            country = phone_country(phone)
        return self.config.region_of(country)

    def triggers(self, parse: ParseResult, state: dict[str, Any], message: Message) -> list[dict[str, Any]]:
        attachments = (message.payload or {}).get("attachments", [])
        unreadable = any(a.get("kind") in UNREADABLE for a in attachments) and not message.text.strip()
        facts = EscalationFacts(
            parse=parse,
            failed_turns=0,  # the engine counts not-understood turns itself, after trying the KB
            # The value rule fires once per order, on a comparable (USD) amount.
            order_total=(convert_amount(state.get("order_total"), state.get("order_currency"),
                                        self.rules.order_value_currency)
                         if state.get("value_checked_order") != state.get("slots", {}).get("verified_order") else None),
            order_currency=self.rules.order_value_currency,
            order_in_transit=bool(state.get("order_in_transit")),
            recent_similar_contacts=int(state.get("recent_similar_contacts", 0)),
            has_unreadable_media=unreadable,
            language_supported=parse.foreign_language is None and (
                parse.language in self.languages or parse.language_confidence < 0.5),
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
        order_number = slots.get("verified_order") or slots.get("order_number")
        region = await self.region_for(order_number, list(customer.phones))
        result = await self.service.escalate(
            customer_id=str(customer.customer_id),
            conversation_id=str(conversation.id),
            channel=conversation.channel,
            language=language,
            triggers=[Trigger(**t) for t in triggers],
            facts=EscalationFacts(parse=parse, order_in_transit=bool(state.get("order_in_transit")),
                                  order_total=state.get("order_total")),
            order_number=order_number,
            region=region,
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
