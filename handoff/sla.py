"""SLA targets per priority tier, deadlines in business time, and the monitor that raises warnings
before a deadline and escalates to the team lead after a breach."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handoff.clock import Clock
from handoff.hours import BusinessHours
from handoff.models import OPEN_STATUSES, Agent, HandoffTicket, Team, record_event

Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
CLOCKS = ("first_response", "next_response", "resolution")


_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*$")


def parse_duration(value: Any) -> Any:
    """"15m", "4h", "1h30m", "3d" as a timedelta; anything else is left to pydantic (seconds, ISO 8601)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match and any(match.groups()):
            days, hours, minutes = (int(g or 0) for g in match.groups())
            return timedelta(days=days, hours=hours, minutes=minutes)
        if not value.strip().upper().startswith("P"):
            raise ValueError(f"{value!r} is not a duration: write it like 15m, 4h, 1h30m or 3d")
    return value


class SlaTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_response: timedelta
    next_response: timedelta
    resolution: timedelta

    @field_validator("first_response", "next_response", "resolution", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("first_response", "next_response", "resolution")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


def _default_targets() -> dict[str, SlaTarget]:
    h = timedelta(hours=1)
    return {
        "P1": SlaTarget(first_response=timedelta(minutes=15), next_response=timedelta(minutes=30), resolution=4 * h),
        "P2": SlaTarget(first_response=h, next_response=2 * h, resolution=8 * h),
        "P3": SlaTarget(first_response=4 * h, next_response=8 * h, resolution=24 * h),
        "P4": SlaTarget(first_response=8 * h, next_response=24 * h, resolution=72 * h),
    }


class SlaPolicy(BaseModel):
    """Targets per tier; a warning when `warn_fraction` of a target has passed, or `warn_before` ahead of
    the deadline when that is set (both counted in business time when the team pauses its clocks)."""

    model_config = ConfigDict(extra="forbid")

    targets: dict[str, SlaTarget] = Field(default_factory=_default_targets)
    warn_fraction: float = Field(default=0.8, gt=0, lt=1)
    warn_before: timedelta | None = None

    @field_validator("warn_before", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("targets")
    @classmethod
    def _every_tier(cls, value: dict[str, SlaTarget]) -> dict[str, SlaTarget]:
        tiers = ("P1", "P2", "P3", "P4")
        missing = [t for t in tiers if t not in value]
        unknown = [t for t in value if t not in tiers]
        if missing or unknown:
            raise ValueError("give targets for exactly P1, P2, P3 and P4"
                             + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""))
        return value

    def target(self, tier: str) -> SlaTarget:
        try:
            return self.targets[tier]
        except KeyError:
            raise ValueError(f"no SLA target for priority {tier!r}: add it to the SLA policy") from None

    def deadline(self, start: datetime, duration: timedelta, hours: BusinessHours | None) -> tuple[datetime, datetime]:
        """(warn_at, due) for a clock of `duration` that starts at `start`; `hours` None: wall-clock time."""
        if self.warn_before is not None:
            warn_after = max(duration - self.warn_before, timedelta(0))
        else:
            warn_after = duration * self.warn_fraction
        if hours is None:
            return start + warn_after, start + duration
        return hours.add_business_time(start, warn_after), hours.add_business_time(start, duration)


def _hours_for(team: Team) -> BusinessHours | None:
    return team.business_hours() if team.pause_sla_outside_hours and team.hours else None


def start_clocks(ticket: HandoffTicket, team: Team, policy: SlaPolicy, now: datetime) -> None:
    """Set the first-response and resolution deadlines of a new ticket (or a re-prioritised one)."""
    hours = _hours_for(team)
    target = policy.target(ticket.priority)
    ticket.sla_paused_outside_hours = hours is not None
    if ticket.first_response_at is None:
        ticket.first_response_warn_at, ticket.first_response_due = policy.deadline(now, target.first_response, hours)
    ticket.resolution_warn_at, ticket.resolution_due = policy.deadline(ticket.created_at or now,
                                                                       target.resolution, hours)


def start_next_response_clock(ticket: HandoffTicket, team: Team, policy: SlaPolicy, now: datetime) -> None:
    """The shopper wrote again after an agent's reply: the next reply is due within the target."""
    if ticket.first_response_at is None or ticket.next_response_due is not None:
        return  # still waiting for the first reply, or the clock already runs since the shopper's last message
    ticket.next_response_warn_at, ticket.next_response_due = policy.deadline(
        now, policy.target(ticket.priority).next_response, _hours_for(team))
    ticket.warnings = [w for w in ticket.warnings or [] if w != "next_response"]
    ticket.breaches = [b for b in ticket.breaches or [] if b != "next_response"]


def stop_response_clocks(ticket: HandoffTicket, now: datetime) -> None:
    """An agent replied to the shopper."""
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    ticket.next_response_due = None
    ticket.next_response_warn_at = None
    ticket.last_agent_reply_at = now


@dataclass(frozen=True)
class SlaAlert:
    ticket_id: int
    clock: str
    kind: str  # "warning" | "breach"
    due: datetime
    priority: str
    agent_id: int | None
    lead_ids: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["due"] = self.due.isoformat()
        data["lead_ids"] = list(self.lead_ids)
        return data


class SlaMonitor:
    """Run `tick()` every few seconds: records warnings, breaches and lead escalations once each,
    wakes snoozed tickets, and publishes what it found through `publish`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock,
                 publish: Publish | None = None) -> None:
        self.sessions = sessions
        self.clock = clock
        self.publish = publish

    async def tick(self) -> list[SlaAlert]:
        now = self.clock.now()
        alerts: list[SlaAlert] = []
        woken: list[HandoffTicket] = []
        async with self.sessions() as session, session.begin():
            rows = (await session.execute(
                select(HandoffTicket).where(
                    HandoffTicket.status.in_(OPEN_STATUSES),
                    or_(HandoffTicket.first_response_warn_at <= now, HandoffTicket.next_response_warn_at <= now,
                        HandoffTicket.resolution_warn_at <= now, HandoffTicket.snoozed_until <= now),
                ).with_for_update()
            )).scalars().all()
            for ticket in rows:
                if ticket.status == "snoozed" and ticket.snoozed_until and ticket.snoozed_until <= now:
                    ticket.status = "claimed" if ticket.agent_id else "open"
                    ticket.snoozed_until = None
                    session.add(record_event(ticket, "reopened", now, reason="snooze ended"))
                    woken.append(ticket)
                alerts.extend(await self._check(session, ticket, now))
        if self.publish:
            for alert in alerts:
                await self.publish("sla_" + alert.kind, alert.to_dict())
            for ticket in woken:
                await self.publish("ticket_reopened", {"ticket_id": ticket.id, "agent_id": ticket.agent_id})
        return alerts

    async def _check(self, session: AsyncSession, ticket: HandoffTicket, now: datetime) -> list[SlaAlert]:
        clocks: list[tuple[str, datetime | None, datetime | None]] = [
            ("first_response", ticket.first_response_warn_at, ticket.first_response_due)
            if ticket.first_response_at is None else ("first_response", None, None),
            ("next_response", ticket.next_response_warn_at, ticket.next_response_due),
            ("resolution", ticket.resolution_warn_at, ticket.resolution_due),
        ]
        warnings = list(ticket.warnings or [])
        breaches = list(ticket.breaches or [])
        alerts = []
        for name, warn_at, due in clocks:
            if due is None:
                continue
            if due <= now and name not in breaches:
                breaches.append(name)
                leads = await self._leads(session, ticket.team_id)
                session.add(record_event(ticket, "breached", now, clock=name, due=due.isoformat()))
                session.add(record_event(ticket, "escalated_to_lead", now, clock=name, lead_ids=list(leads)))
                ticket.escalated_to_lead = True
                alerts.append(SlaAlert(ticket.id, name, "breach", due, ticket.priority, ticket.agent_id, leads))
                if name not in warnings:
                    warnings.append(name)  # a breach found late makes the warning moot
            elif warn_at is not None and warn_at <= now < due and name not in warnings:
                warnings.append(name)
                session.add(record_event(ticket, "warned", now, clock=name, due=due.isoformat()))
                alerts.append(SlaAlert(ticket.id, name, "warning", due, ticket.priority, ticket.agent_id))
        ticket.warnings = warnings
        ticket.breaches = breaches
        return alerts

    async def _leads(self, session: AsyncSession, team_id: int) -> tuple[int, ...]:
        agents = (await session.execute(select(Agent).where(Agent.team_id == team_id, Agent.active))).scalars()
        return tuple(a.id for a in agents if "lead" in a.roles)
