"""Handoff tables: teams, agents, handoff tickets and their audit trail (portable SQLite/PostgreSQL)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from handoff.hours import BusinessHours

ROLES = ("agent", "lead", "content_owner", "admin")
PRIORITIES = ("P1", "P2", "P3", "P4")
OPEN_STATUSES = ("open", "claimed", "snoozed")
CLOSED_STATUSES = ("resolved", "handed_back")
STATUSES = OPEN_STATUSES + CLOSED_STATUSES
EVENT_KINDS = (
    "created", "joined", "routed", "claimed", "reassigned", "released", "replied", "customer_message", "note",
    "snoozed", "reopened", "warned", "breached", "escalated_to_lead", "resolved", "handed_back",
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, also on SQLite (which forgets the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("handoff timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class HandoffBase(DeclarativeBase):
    pass


class Team(HandoffBase):
    __tablename__ = "handoff_teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # {"mon": ["09:00-18:00"], ...}; an empty dict means the team never closes.
    hours: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    holidays: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    pause_sla_outside_hours: Mapped[bool] = mapped_column(Boolean, default=True)

    agents: Mapped[list[Agent]] = relationship(back_populates="team")

    def business_hours(self) -> BusinessHours:
        if not self.hours:
            return BusinessHours.always_open()
        return BusinessHours.from_dict({"timezone": self.timezone, "hours": self.hours, "holidays": self.holidays})


class Agent(HandoffBase):
    __tablename__ = "handoff_agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(256))
    roles: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["agent"])
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every channel
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every region
    max_open_threads: Mapped[int] = mapped_column(Integer, default=5)
    team_id: Mapped[int] = mapped_column(ForeignKey("handoff_teams.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Round-robin order that survives restarts and several router processes: oldest first.
    last_routed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    team: Mapped[Team] = relationship(back_populates="agents", lazy="joined", innerjoin=True)

    def has_role(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles

    def set_password(self, password: str) -> None:
        self.password_hash = hash_password(password)

    def check_password(self, password: str) -> bool:
        return verify_password(password, self.password_hash)


class HandoffTicket(HandoffBase):
    __tablename__ = "handoff_tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    conversation_id: Mapped[str] = mapped_column(String(128), index=True)
    order_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # "<customer>|<order>" while the ticket is open, NULL once closed: the unique index makes
    # "one open ticket per customer and order" hold even for concurrent escalations on two channels.
    open_key: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    channel: Mapped[str] = mapped_column(String(32))
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    language: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(16), nullable=True)
    priority: Mapped[str] = mapped_column(String(2), index=True)
    priority_reason: Mapped[str] = mapped_column(Text, default="")
    triggers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("handoff_agents.id"), nullable=True, index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("handoff_teams.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    routed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_customer_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_agent_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_response_due: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_response_warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_response_due: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_response_warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolution_due: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolution_warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # True when the deadlines above were computed in business time (the clock paused while closed).
    sla_paused_outside_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)  # SLA clocks already warned about
    breaches: Mapped[list[str]] = mapped_column(JSON, default=list)  # SLA clocks already breached
    escalated_to_lead: Mapped[bool] = mapped_column(Boolean, default=False)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Optimistic locking: SQLite has no SELECT ... FOR UPDATE, so two channels joining the same ticket at
    # once would otherwise overwrite each other's changes.
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def breached(self) -> bool:
        return bool(self.breaches)

    def active_deadline(self) -> tuple[str, datetime] | None:
        """The SLA clock that runs out first and is not yet met."""
        clocks: list[tuple[str, datetime]] = []
        if self.first_response_at is None and self.first_response_due:
            clocks.append(("first_response", self.first_response_due))
        elif self.next_response_due:
            clocks.append(("next_response", self.next_response_due))
        if self.resolution_due:
            clocks.append(("resolution", self.resolution_due))
        return min(clocks, key=lambda c: c[1]) if clocks else None

    def to_dict(self) -> dict[str, Any]:
        def iso(v: datetime | None) -> str | None:
            return v.isoformat() if v else None

        deadline = self.active_deadline()
        return {
            "id": self.id, "customer_id": self.customer_id, "conversation_id": self.conversation_id,
            "order_number": self.order_number, "channel": self.channel, "channels": list(self.channels or []),
            "language": self.language, "region": self.region, "priority": self.priority,
            "priority_reason": self.priority_reason, "triggers": list(self.triggers or []),
            "status": self.status, "agent_id": self.agent_id, "team_id": self.team_id,
            "created_at": iso(self.created_at), "claimed_at": iso(self.claimed_at),
            "first_response_due": iso(self.first_response_due), "next_response_due": iso(self.next_response_due),
            "resolution_due": iso(self.resolution_due), "sla_paused_outside_hours": self.sla_paused_outside_hours,
            "warnings": list(self.warnings or []), "breaches": list(self.breaches or []),
            "escalated_to_lead": self.escalated_to_lead, "snoozed_until": iso(self.snoozed_until),
            "deadline": {"clock": deadline[0], "due": iso(deadline[1])} if deadline else None,
        }


class TicketEvent(HandoffBase):
    __tablename__ = "handoff_ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("handoff_tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("handoff_agents.id"), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ticket_id": self.ticket_id, "kind": self.kind, "at": self.at.isoformat(),
                "agent_id": self.agent_id, "data": dict(self.data or {})}


# --- passwords: scrypt from the standard library, no extra dependency -----------------------------------
# Same stored format as bot.auth ("scrypt$<salt hex>$<digest hex>", n=2**14, r=8, p=1), so the staff
# login and this package read each other's hashes.

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("an empty password is not allowed")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


def record_event(ticket: HandoffTicket, kind: str, at: datetime, agent_id: int | None = None,
                 **data: Any) -> TicketEvent:
    """An audit entry for the ticket (added to the ticket's session by the caller)."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown ticket event {kind!r}")
    return TicketEvent(ticket_id=ticket.id, kind=kind, at=at, agent_id=agent_id, data=data)
