"""Escalation triggers: the configurable rules that decide when the bot hands a conversation to a person,
each fired rule carrying a reason for the decision trace."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nlu.segments import says_written_before
from nlu.types import ParseResult

# Every trigger the bot fires by itself, in the order of `EscalationRules`' switches. Actions that ask
# for a person fire `action:<reason>`, staff escalating by hand `manual` (or what they name).
TRIGGER_NAMES = ("threat", "anger", "urgency", "human_request", "failed_turns", "high_value_order",
                 "repeat_contact", "unreadable_media", "unsupported_language")

# Rough conversion for the high-value rule only (a threshold, not accounting).
USD_PER_UNIT = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "CAD": 0.73, "AUD": 0.66, "NZD": 0.6, "JPY": 0.0067,
                "CNY": 0.14, "SGD": 0.74, "HKD": 0.13, "MXN": 0.055, "CHF": 1.13, "SEK": 0.095, "NOK": 0.093,
                "DKK": 0.145, "PLN": 0.25, "KRW": 0.00073, "BRL": 0.18, "INR": 0.012}


def convert_amount(amount: float | None, currency: str | None, to: str) -> float | None:
    """`amount` in `currency` expressed roughly in `to`; an unknown currency is compared as it is."""
    if amount is None:
        return None
    usd = float(amount) * USD_PER_UNIT.get((currency or to).upper(), 1.0)
    return usd / USD_PER_UNIT.get(to.upper(), 1.0)


class EscalationRules(BaseModel):
    """Which triggers are on, and their thresholds (the `escalation` key of the project's handoff.yml)."""

    model_config = ConfigDict(extra="forbid")

    anger: bool = True
    urgency: bool = True
    threat: bool = True
    human_request: bool = True
    failed_turns: bool = True
    failed_turns_limit: int = Field(default=2, ge=1, description="escalate after this many not-understood turns in a row")
    high_value_order: bool = True
    order_value_threshold: float | None = Field(default=500.0, ge=0, description="None: never escalate on value")
    order_value_currency: str = Field(default="USD", description="the currency of order_value_threshold")
    repeat_contact: bool = True
    repeat_contact_days: int = Field(default=7, ge=1, le=365)
    repeat_contact_min: int = Field(default=1, ge=1, description="earlier contacts on the same issue that make it repeat")
    unreadable_media: bool = True
    unsupported_language: bool = True

    @field_validator("order_value_currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value.upper() not in USD_PER_UNIT:
            raise ValueError(f"unknown currency {value!r}: use one of {', '.join(sorted(USD_PER_UNIT))}")
        return value.upper()


@dataclass(frozen=True)
class EscalationFacts:
    """What the engine knows about the turn when it asks whether to escalate."""

    parse: ParseResult | None = None
    failed_turns: int = 0
    order_total: float | None = None
    order_currency: str | None = None
    order_in_transit: bool = False
    recent_similar_contacts: int = 0
    has_unreadable_media: bool = False
    language_supported: bool = True
    out_of_hours: bool = False


@dataclass(frozen=True)
class Trigger:
    name: str
    reason: str
    priority_hint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _score(parse: ParseResult, label: str) -> str:
    return f"{parse.sentiment.scores.get(label, 0.0):.2f}"


def evaluate_triggers(facts: EscalationFacts, rules: EscalationRules | None = None) -> list[Trigger]:
    """Every trigger that fires for this turn, most serious first; empty when the bot may go on alone."""
    rules = rules or EscalationRules()
    fired: list[Trigger] = []
    parse = facts.parse
    if parse is not None:
        sentiment = parse.sentiment
        if rules.threat and sentiment.threat:
            fired.append(Trigger("threat", f"legal, chargeback or bad-review threat (score {_score(parse, 'threat')})",
                                 "P1"))
        if rules.anger and sentiment.angry:
            hint = "P1" if facts.order_in_transit else "P2"
            detail = " while the order is in transit" if facts.order_in_transit else ""
            fired.append(Trigger("anger", f"angry or strongly frustrated (score {_score(parse, 'angry')}){detail}",
                                 hint))
        if rules.urgency and sentiment.urgent:
            fired.append(Trigger("urgency", f"urgent (score {_score(parse, 'urgent')})", "P2"))
        if rules.human_request and sentiment.asks_human:
            fired.append(Trigger("human_request", f"asked for a person (score {_score(parse, 'human')})", "P3"))
    if rules.failed_turns and facts.failed_turns >= rules.failed_turns_limit:
        fired.append(Trigger("failed_turns", f"{facts.failed_turns} turns in a row not understood "
                                             f"(limit {rules.failed_turns_limit})", "P3"))
    if (rules.high_value_order and rules.order_value_threshold is not None and facts.order_total is not None
            and facts.order_total >= rules.order_value_threshold):
        currency = f" {facts.order_currency}" if facts.order_currency else ""
        fired.append(Trigger("high_value_order", f"order total {facts.order_total:.2f}{currency} is at or above "
                                                 f"{rules.order_value_threshold:.2f}", "P3"))
    if rules.repeat_contact and facts.recent_similar_contacts >= rules.repeat_contact_min:
        fired.append(Trigger("repeat_contact", f"same issue raised {facts.recent_similar_contacts} time(s) before "
                                               f"within {rules.repeat_contact_days} days", "P3"))
    elif rules.repeat_contact and parse is not None and says_written_before(parse.text):
        # Earlier messages the shop cannot see (another email address, a phone call) or that went unanswered.
        fired.append(Trigger("repeat_contact", "says earlier messages went unanswered", "P3"))
    if rules.unreadable_media and facts.has_unreadable_media:
        fired.append(Trigger("unreadable_media", "the message has media the bot cannot read", "P3"))
    if rules.unsupported_language and not facts.language_supported:
        lang = (parse.foreign_language or parse.language) if parse is not None else "unknown"
        fired.append(Trigger("unsupported_language", f"language {lang!r} is not one the bot supports", "P3"))
    order = {"P1": 0, "P2": 1, "P3": 2, "P4": 3}
    return sorted(fired, key=lambda t: order.get(t.priority_hint, 9))
