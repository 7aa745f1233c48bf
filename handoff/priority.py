"""Priority tiers P1-P4 for a handoff ticket, from the triggers that fired and the order's state."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from handoff.triggers import TRIGGER_NAMES, EscalationFacts, Trigger

# Fired outside `evaluate_triggers`: staff by hand. (The engine's `human_handoff` intent fires `human_request`,
# the same trigger as the sentiment label, so one rule covers both ways of asking for a person.)
OTHER_TRIGGERS = ("manual",)


class PriorityRule(BaseModel):
    """A tier applies when any of `any_of` fired (and the order is in transit, if `needs_in_transit`)."""

    model_config = ConfigDict(extra="forbid")

    tier: str = Field(pattern=r"^P[1-4]$")
    any_of: list[str] = Field(min_length=1)
    needs_in_transit: bool = False
    description: str = ""

    @field_validator("any_of")
    @classmethod
    def _known_triggers(cls, value: list[str]) -> list[str]:
        # A misspelt trigger would silently never match: refuse it.
        unknown = [n for n in value if n not in TRIGGER_NAMES and n not in OTHER_TRIGGERS and not n.startswith("action:")]
        if unknown:
            raise ValueError(f"unknown trigger(s) {unknown}: use {', '.join(TRIGGER_NAMES + OTHER_TRIGGERS)} or "
                             "action:<reason>")
        return value


def default_priority_rules() -> list[PriorityRule]:
    return [
        PriorityRule(tier="P1", any_of=["threat"], description="chargeback, legal or bad-review threat"),
        PriorityRule(tier="P1", any_of=["anger"], needs_in_transit=True,
                     description="angry with an order in transit"),
        PriorityRule(tier="P2", any_of=["anger", "urgency"], description="angry or urgent"),
        PriorityRule(tier="P3", any_of=["human_request", "failed_turns", "high_value_order", "repeat_contact",
                                        "unreadable_media", "unsupported_language"],
                     description="asked for a person, bot stuck, high value or repeat contact"),
    ]


class PriorityRules(BaseModel):
    """Ordered rules, first match wins; `default_tier` for everything else (a general question)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[PriorityRule] = Field(default_factory=default_priority_rules)
    default_tier: str = Field(default="P4", pattern=r"^P[1-4]$")


def assign_priority(triggers: Sequence[Trigger], facts: EscalationFacts,
                    rules: PriorityRules | None = None) -> tuple[str, str]:
    """The tier and a sentence saying why, for the decision trace."""
    rules = rules or PriorityRules()
    names = {t.name for t in triggers}
    for rule in rules.rules:
        hit = sorted(names.intersection(rule.any_of))
        if hit and (not rule.needs_in_transit or facts.order_in_transit):
            return rule.tier, f"{rule.tier}: {rule.description or ', '.join(rule.any_of)} ({', '.join(hit)})"
    context = "out of hours" if facts.out_of_hours else "no urgent trigger"
    return rules.default_tier, f"{rules.default_tier}: general question, {context}"


def priority_rank(tier: str) -> int:
    return int(tier[1]) if len(tier) == 2 and tier[1].isdigit() else 9
