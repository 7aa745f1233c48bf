"""The handoff service API: open or join a ticket, route it to an agent, and every agent action on it
(claim, release, reassign, reply, note, snooze, resolve, hand back), with server-side permission checks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import and_, event, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from handoff.clock import Clock, SystemClock
from handoff.hours import BusinessHours, out_of_hours_acknowledgement
from handoff.models import (
    OPEN_STATUSES,
    ROLES,
    Agent,
    HandoffTicket,
    Team,
    TicketEvent,
    hash_password,
    record_event,
)
from handoff.priority import PriorityRules, assign_priority, priority_rank
from handoff.queues import Notifier, Presence, TicketQueue
from handoff.routing import can_see, choose_agent, has_skills
from handoff.sla import SlaMonitor, SlaPolicy, start_clocks, start_next_response_clock, stop_response_clocks
from handoff.triggers import EscalationFacts, Trigger

log = logging.getLogger(__name__)


class HandoffError(Exception):
    """Base of errors an agent or the engine can act on; the message says what to do."""


class TicketNotFound(HandoffError):
    pass


class NotAllowed(HandoffError):
    pass


class AlreadyClaimed(HandoffError):
    pass


class AtCapacity(HandoffError):
    pass


@dataclass
class Escalation:
    """What the engine gets back: the ticket, whether it is new, and the text for the shopper if the
    team is closed."""

    ticket: dict[str, Any]
    created: bool
    priority: str
    priority_reason: str
    triggers: list[dict[str, Any]]
    team: str
    out_of_hours: bool
    acknowledgement: str | None = None
    reply_by: datetime | None = None

    def to_trace(self) -> dict[str, Any]:
        return {"ticket_id": self.ticket["id"], "created": self.created, "priority": self.priority,
                "priority_reason": self.priority_reason, "triggers": self.triggers, "team": self.team,
                "out_of_hours": self.out_of_hours,
                "reply_by": self.reply_by.isoformat() if self.reply_by else None}


@dataclass
class Routed:
    ticket_id: int
    agent_id: int | None
    redelivered: bool = False
    already_routed: bool = False


def open_key(customer_id: str, order_number: str | None) -> str:
    return f"{customer_id}|{(order_number or '').strip().upper()}"


class HandoffService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis,
        *,
        clock: Clock | None = None,
        priority_rules: PriorityRules | None = None,
        sla: SlaPolicy | None = None,
        require_online: bool = True,
        presence_ttl_seconds: float = 60.0,
        router_min_idle_ms: int = 30_000,
    ) -> None:
        if sessions.kw.get("expire_on_commit", True):
            raise ValueError("HandoffService needs async_sessionmaker(engine, expire_on_commit=False): it returns "
                             "tickets after their transaction has committed")
        self.sessions = sessions
        self.redis = redis
        self.clock = clock or SystemClock()
        self.priority_rules = priority_rules or PriorityRules()
        self.sla = sla or SlaPolicy()
        self.require_online = require_online
        self.queue = TicketQueue(redis, min_idle_ms=router_min_idle_ms)
        self.presence = Presence(redis, presence_ttl_seconds)
        self.notifier = Notifier(redis)
        self._background: set[asyncio.Task[None]] = set()

    # --- directory ------------------------------------------------------------------------------------

    async def create_team(self, name: str, *, timezone: str = "UTC", hours: dict[str, list[str]] | None = None,
                          holidays: Sequence[str] = (), languages: Sequence[str] = (), skills: Sequence[str] = (),
                          pause_sla_outside_hours: bool = True) -> Team:
        team = Team(name=name, timezone=timezone, hours=hours or {}, holidays=list(holidays),
                    languages=list(languages), skills=list(skills), pause_sla_outside_hours=pause_sla_outside_hours)
        # Validates the zone and the schedule before anything is stored.
        BusinessHours.from_dict({"timezone": timezone, "hours": hours or {}, "holidays": list(holidays)})
        async with self.sessions() as session, session.begin():
            session.add(team)
        return team

    async def create_agent(self, login: str, password: str, team: str, *, display_name: str | None = None,
                           roles: Sequence[str] = ("agent",), languages: Sequence[str] = (),
                           channels: Sequence[str] = (), regions: Sequence[str] = (),
                           max_open_threads: int = 5) -> Agent:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}: use {', '.join(ROLES)}")
        async with self.sessions() as session, session.begin():
            team_row = await self._team_by_name(session, team)
            agent = Agent(login=login, display_name=display_name or login, password_hash=hash_password(password),
                          roles=list(roles), languages=list(languages), channels=list(channels),
                          regions=list(regions), max_open_threads=max_open_threads, team_id=team_row.id)
            session.add(agent)
        return agent

    async def authenticate(self, login: str, password: str) -> Agent | None:
        async with self.sessions() as session:
            agent = (await session.execute(select(Agent).where(Agent.login == login))).scalar_one_or_none()
        if agent is None or not agent.active or not agent.check_password(password):
            return None
        return agent

    async def agent(self, agent_id: int) -> Agent:
        async with self.sessions() as session:
            return await self._agent(session, agent_id)

    async def team_members(self, agent_id: int) -> list[dict[str, Any]]:
        """The agent's team with load and presence (for the lead's reassign menu)."""
        async with self.sessions() as session:
            agent = await self._agent(session, agent_id)
            members = list((await session.execute(
                select(Agent).where(Agent.team_id == agent.team_id, Agent.active).order_by(Agent.id)
            )).scalars().unique())
            counts = await self._open_counts(session, [m.id for m in members])
        online = await self.presence.online(agent.team.name, self.clock.now())
        return [{"id": m.id, "display_name": m.display_name, "roles": list(m.roles), "languages": list(m.languages),
                 "channels": list(m.channels), "open_threads": counts.get(m.id, 0),
                 "max_open_threads": m.max_open_threads, "online": m.id in online} for m in members]

    async def teams(self) -> list[Team]:
        async with self.sessions() as session:
            return list((await session.execute(select(Team).order_by(Team.id))).scalars())

    # --- escalation -----------------------------------------------------------------------------------

    async def escalate(
        self,
        *,
        customer_id: str,
        conversation_id: str,
        channel: str,
        language: str,
        triggers: Sequence[Trigger],
        facts: EscalationFacts | None = None,
        order_number: str | None = None,
        region: str | None = None,
        team: str | None = None,
        shopper_timezone: str | None = None,
        session: AsyncSession | None = None,
    ) -> Escalation:
        """Open a ticket (or join the customer's open one for this order), queue it for routing and, when
        the team is closed, build the acknowledgement for the shopper.

        Pass `session` when the caller is inside its own transaction (the engine's turn): the ticket is
        written in that transaction and queued for routing once it commits. On SQLite this is required,
        since a second writer would wait for the caller's lock."""
        facts = facts or EscalationFacts()
        now = self.clock.now()
        if session is None:
            async with self.sessions() as own:
                team_row = await self._pick_team(own, team, language)
        else:
            team_row = await self._pick_team(session, team, language)
        hours = team_row.business_hours()
        out_of_hours = not hours.is_open(now)
        if out_of_hours and not facts.out_of_hours:
            facts = replace(facts, out_of_hours=True)
        priority, reason = assign_priority(triggers, facts, self.priority_rules)
        ticket, created = await self.open_or_join_ticket(
            customer_id=customer_id, conversation_id=conversation_id, order_number=order_number, channel=channel,
            language=language, region=region, priority=priority, priority_reason=reason, triggers=triggers,
            team_id=team_row.id, session=session)
        escalation = Escalation(ticket=ticket.to_dict(), created=created, priority=ticket.priority,
                                priority_reason=ticket.priority_reason, triggers=list(ticket.triggers),
                                team=team_row.name, out_of_hours=out_of_hours)
        if out_of_hours:
            first = self.sla.target(ticket.priority).first_response if team_row.pause_sla_outside_hours \
                else timedelta(0)
            escalation.acknowledgement, escalation.reply_by = out_of_hours_acknowledgement(
                hours, now, shopper_timezone, language, first)
        announce = self._announce(team_row.name, ticket.id, ticket.priority, ticket.is_open and ticket.agent_id is None,
                                  "ticket_created" if created else "ticket_updated", escalation.ticket)
        if session is None:
            await announce()
        else:
            self._after_commit(session, announce)
        return escalation

    def _announce(self, team: str, ticket_id: int, priority: str, enqueue: bool, event: str,
                  ticket: dict[str, Any]) -> Callable[[], Coroutine[Any, Any, None]]:
        async def announce() -> None:
            if enqueue:
                await self.queue.enqueue(team, ticket_id, priority)
            await self.notifier.to_team(team, event, {"ticket": ticket})

        return announce

    def _after_commit(self, session: AsyncSession, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `work` once the caller's transaction commits (never for a rolled-back one). Should the
        process die in between, the ticket is still in the database and `route_waiting` finds it."""
        loop = asyncio.get_running_loop()

        def fire(_session: Any) -> None:
            task = loop.create_task(work())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        event.listen(session.sync_session, "after_commit", fire, once=True)

    async def open_or_join_ticket(
        self,
        *,
        customer_id: str,
        conversation_id: str,
        channel: str,
        language: str,
        team_id: int,
        priority: str = "P4",
        priority_reason: str = "",
        triggers: Sequence[Trigger] = (),
        order_number: str | None = None,
        region: str | None = None,
        session: AsyncSession | None = None,
    ) -> tuple[HandoffTicket, bool]:
        """The customer's open ticket for this order if there is one (joined: channel, triggers and a
        higher priority merged in), else a new one. Safe under concurrent calls on SQLite and PostgreSQL
        through the unique `open_key`. With `session`, the work joins the caller's transaction (the caller
        commits; a conflict with a concurrent escalation then fails the caller's transaction, to be retried)."""
        key = open_key(customer_id, order_number)
        now = self.clock.now()
        args = dict(customer_id=customer_id, conversation_id=conversation_id, channel=channel, language=language,
                    team_id=team_id, priority=priority, priority_reason=priority_reason, triggers=triggers,
                    order_number=order_number, region=region, key=key, now=now)
        if session is not None:
            if session.get_bind().dialect.name == "postgresql":
                async with session.begin_nested():
                    return await self._open_or_join(session, **args)  # type: ignore[arg-type]
            return await self._open_or_join(session, **args)  # type: ignore[arg-type]
        for _ in range(8):
            async with self.sessions() as own:
                try:
                    async with own.begin():
                        return await self._open_or_join(own, **args)  # type: ignore[arg-type]
                except (IntegrityError, StaleDataError):
                    continue  # another channel opened or joined it a moment ago: join that one afresh
        raise HandoffError(f"could not open or join a ticket for {key!r}: the database kept refusing; retry")

    async def _open_or_join(self, session: AsyncSession, *, customer_id: str, conversation_id: str, channel: str,
                            language: str, team_id: int, priority: str, priority_reason: str,
                            triggers: Sequence[Trigger], order_number: str | None, region: str | None, key: str,
                            now: datetime) -> tuple[HandoffTicket, bool]:
        existing = (await session.execute(
            select(HandoffTicket).where(HandoffTicket.open_key == key).with_for_update()
        )).scalar_one_or_none()
        if existing is not None:
            await self._join(session, existing, channel, priority, priority_reason, triggers, now)
            await session.flush()
            return existing, False
        team = await session.get(Team, team_id)
        if team is None:
            raise HandoffError(f"team {team_id} does not exist: create it first")
        ticket = HandoffTicket(
            customer_id=customer_id, conversation_id=conversation_id, order_number=order_number,
            open_key=key, channel=channel, channels=[channel], language=language, region=region,
            priority=priority, priority_reason=priority_reason,
            triggers=[t.to_dict() for t in triggers], status="open", team_id=team_id,
            created_at=now, last_customer_message_at=now, warnings=[], breaches=[])
        start_clocks(ticket, team, self.sla, now)
        session.add(ticket)
        await session.flush()
        session.add(record_event(ticket, "created", now, priority=priority, reason=priority_reason,
                                 triggers=[t.to_dict() for t in triggers], channel=channel,
                                 conversation_id=conversation_id))
        await session.flush()
        return ticket, True

    async def _join(self, session: AsyncSession, ticket: HandoffTicket, channel: str, priority: str,
                    priority_reason: str, triggers: Sequence[Trigger], now: datetime) -> None:
        channels = list(ticket.channels or [])
        if channel not in channels:
            channels.append(channel)
        ticket.channels = channels
        known = {t["name"] for t in ticket.triggers or []}
        ticket.triggers = list(ticket.triggers or []) + [t.to_dict() for t in triggers if t.name not in known]
        ticket.last_customer_message_at = now
        raised = priority_rank(priority) < priority_rank(ticket.priority)
        if raised:
            ticket.priority, ticket.priority_reason = priority, priority_reason
            team = await session.get(Team, ticket.team_id)
            assert team is not None
            start_clocks(ticket, team, self.sla, ticket.created_at)
        session.add(record_event(ticket, "joined", now, channel=channel, priority=ticket.priority,
                                 raised_priority=raised, triggers=[t.to_dict() for t in triggers]))

    async def _pick_team(self, session: AsyncSession, name: str | None, language: str) -> Team:
        if name:
            return await self._team_by_name(session, name)
        teams = list((await session.execute(select(Team).order_by(Team.id))).scalars())
        if not teams:
            raise HandoffError("no handoff team is configured: create a team before escalating")
        lang = language.split("-")[0]
        return next((t for t in teams if lang in (t.languages or [])), teams[0])

    # --- routing --------------------------------------------------------------------------------------

    async def heartbeat(self, agent_id: int) -> None:
        """The agent's console is alive; a newly online agent gets waiting tickets routed."""
        async with self.sessions() as session:
            agent = await self._agent(session, agent_id)
        if await self.presence.heartbeat(agent.team.name, agent.id, self.clock.now()):
            await self.route_waiting(agent.team.name)

    async def go_offline(self, agent_id: int) -> None:
        async with self.sessions() as session:
            agent = await self._agent(session, agent_id)
        await self.presence.leave(agent.team.name, agent.id)

    async def route_next(self, team: str, consumer: str, *, count: int = 100, block_ms: int | None = None
                         ) -> list[Routed]:
        """Route what is in the team's stream (new entries, and those a dead router left pending)."""
        entries = await self.queue.read(team, consumer, count=count, block_ms=block_ms)
        if not entries:
            return []
        results = await self._assign([e.ticket_id for e in entries])
        # Ack only after the assignments are committed: a crash before this line redelivers the entries
        # and _assign finds the tickets already routed, so nobody gets a ticket twice.
        await self.queue.ack_many(team, entries)
        redelivered = {e.ticket_id for e in entries if e.redelivered}
        for result in results:
            result.redelivered = result.ticket_id in redelivered
        return results

    async def route_waiting(self, team: str) -> list[Routed]:
        """Route open tickets nobody has yet (no agent was online or had room when they came in), after
        taking back unclaimed tickets from agents whose console went away (browser closed or crashed)."""
        if self.require_online:
            await self._take_back_from_offline(team)
        async with self.sessions() as session:
            team_row = await self._team_by_name(session, team)
            ids = list((await session.execute(
                select(HandoffTicket.id).where(HandoffTicket.team_id == team_row.id, HandoffTicket.status == "open",
                                               HandoffTicket.agent_id.is_(None))
            )).scalars())
        return await self._assign(ids, note_waiting=False) if ids else []

    async def _take_back_from_offline(self, team: str) -> None:
        now = self.clock.now()
        online = await self.presence.online(team, now)
        async with self.sessions() as session, session.begin():
            team_row = await self._team_by_name(session, team)
            stranded = list((await session.execute(
                select(HandoffTicket).where(HandoffTicket.team_id == team_row.id, HandoffTicket.status == "open",
                                            HandoffTicket.agent_id.is_not(None)).with_for_update()
            )).scalars())
            for ticket in stranded:
                if ticket.agent_id in online:
                    continue
                session.add(record_event(ticket, "released", now, None, previous_agent_id=ticket.agent_id,
                                         reason="the agent's console went offline before claiming it"))
                ticket.agent_id, ticket.routed_at = None, None

    async def _assign(self, ticket_ids: Sequence[int], *, note_waiting: bool = True) -> list[Routed]:
        # Two routers (or a router and a join) touching the same ticket on SQLite: the version check makes
        # the loser fail instead of overwriting; it then re-reads and normally finds the ticket routed.
        for _ in range(3):
            try:
                return await self._assign_batch(ticket_ids, note_waiting)
            except StaleDataError:
                continue
        return await self._assign_batch(ticket_ids, note_waiting)

    async def _assign_batch(self, ticket_ids: Sequence[int], note_waiting: bool) -> list[Routed]:
        """Route a batch in one transaction: most urgent first, skills, capacity, round-robin."""
        now = self.clock.now()
        results: dict[int, Routed] = {}
        announcements: list[tuple[str, int | None, dict[str, Any]]] = []
        async with self.sessions() as session, session.begin():
            tickets = list((await session.execute(
                select(HandoffTicket).where(HandoffTicket.id.in_(ticket_ids)).order_by(HandoffTicket.id)
                .with_for_update()  # in id order, so that two routers never deadlock on PostgreSQL
            )).scalars())
            todo = []
            for ticket in tickets:
                if ticket.status != "open" or ticket.agent_id is not None:
                    results[ticket.id] = Routed(ticket.id, ticket.agent_id, already_routed=True)
                else:
                    todo.append(ticket)
            team_ids = {t.team_id for t in todo}
            teams = {t.id: t for t in (await session.execute(select(Team).where(Team.id.in_(team_ids)))).scalars()}
            agents = list((await session.execute(
                select(Agent).where(Agent.team_id.in_(team_ids), Agent.active).order_by(Agent.id).with_for_update()
            )).scalars().unique()) if team_ids else []
            counts = await self._open_counts(session, [a.id for a in agents])
            online: dict[int, set[int] | None] = {
                team_id: (await self.presence.online(team.name, now) if self.require_online else None)
                for team_id, team in teams.items()}
            todo.sort(key=lambda t: (priority_rank(t.priority), t.created_at, t.id))
            for n, ticket in enumerate(todo):
                agent = choose_agent(ticket, agents, counts, online[ticket.team_id])
                if agent is None:
                    results[ticket.id] = Routed(ticket.id, None)
                    if note_waiting:
                        session.add(record_event(ticket, "routed", now, agent_id=None,
                                                 reason="waiting: no online agent with the skills and room"))
                        announcements.append((teams[ticket.team_id].name, None, ticket.to_dict()))
                    continue
                ticket.agent_id = agent.id
                ticket.routed_at = now
                # Strictly increasing within the batch, so that round-robin moves on to the next agent.
                agent.last_routed_at = now + timedelta(microseconds=n)
                counts[agent.id] = counts.get(agent.id, 0) + 1
                session.add(record_event(ticket, "routed", now, agent.id, reason="skills, capacity, round-robin"))
                results[ticket.id] = Routed(ticket.id, agent.id)
                announcements.append((teams[ticket.team_id].name, agent.id, ticket.to_dict()))
        for team_name, agent_id, payload in announcements:
            if agent_id is not None:
                await self.notifier.to_agent(agent_id, "ticket_routed", {"ticket": payload})
            await self.notifier.to_team(team_name, "ticket_updated", {"ticket": payload})
        return [results.get(tid, Routed(tid, None, already_routed=True)) for tid in ticket_ids]

    async def run_router(self, team: str, consumer: str, stop: asyncio.Event, *, block_ms: int = 1000) -> None:
        """Route the team's stream until `stop` is set; survives Redis restarts (retries after a pause)."""
        while not stop.is_set():
            try:
                await self.route_next(team, consumer, block_ms=block_ms)
            except Exception:
                log.exception("handoff router for team %s failed; retrying in 1s", team)
                await asyncio.sleep(1.0)

    async def run_sla_monitor(self, stop: asyncio.Event, *, interval: float = 5.0) -> None:
        """Check SLA clocks every `interval` seconds until `stop` is set: warnings go to the ticket's
        agent, breaches also to the team's leads (pub/sub events `sla_warning`, `sla_breach`)."""
        monitor = SlaMonitor(self.sessions, self.clock, self._publish_sla)
        while not stop.is_set():
            try:
                await monitor.tick()
            except Exception:
                log.exception("SLA monitor tick failed; retrying in %ss", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def _publish_sla(self, kind: str, payload: dict[str, Any]) -> None:
        recipients = {payload.get("agent_id"), *payload.get("lead_ids", [])} - {None}
        for agent_id in recipients:
            await self.notifier.to_agent(int(agent_id), kind, payload)  # type: ignore[arg-type]

    async def _open_counts(self, session: AsyncSession, agent_ids: Sequence[int]) -> dict[int, int]:
        if not agent_ids:
            return {}
        rows = await session.execute(
            select(HandoffTicket.agent_id, func.count()).where(
                HandoffTicket.agent_id.in_(agent_ids), HandoffTicket.status.in_(OPEN_STATUSES)
            ).group_by(HandoffTicket.agent_id))
        return {int(a): int(n) for a, n in rows.all() if a is not None}

    # --- what an agent sees ---------------------------------------------------------------------------

    async def tickets_for(self, agent_id: int, *, include_closed: bool = False) -> list[HandoffTicket]:
        """The agent's queue: what they may see, most urgent first (priority, then SLA time left)."""
        async with self.sessions() as session:
            agent = await self._agent(session, agent_id)
            query = select(HandoffTicket)
            if not include_closed:
                query = query.where(HandoffTicket.status.in_(OPEN_STATUSES))
            if "admin" not in agent.roles:
                query = query.where(HandoffTicket.team_id == agent.team_id)
                if "lead" not in agent.roles:
                    query = query.where(or_(HandoffTicket.agent_id == agent.id,
                                            and_(HandoffTicket.agent_id.is_(None), HandoffTicket.status == "open")))
            tickets = [t for t in (await session.execute(query)).scalars() if can_see(agent, t)]
        far = self.clock.now() + timedelta(days=3650)

        def urgency(t: HandoffTicket) -> tuple[int, datetime, datetime]:
            deadline = t.active_deadline()
            return priority_rank(t.priority), deadline[1] if deadline else far, t.created_at

        return sorted(tickets, key=urgency)

    async def ticket(self, agent_id: int, ticket_id: int) -> HandoffTicket:
        async with self.sessions() as session:
            agent = await self._agent(session, agent_id)
            ticket = await session.get(HandoffTicket, ticket_id)
            if ticket is None:
                raise TicketNotFound(f"ticket {ticket_id} does not exist")
            if not can_see(agent, ticket):
                raise NotAllowed(f"ticket {ticket_id} is not routed to you; ask your team lead to reassign it")
            return ticket

    async def events(self, agent_id: int, ticket_id: int) -> list[TicketEvent]:
        await self.ticket(agent_id, ticket_id)
        async with self.sessions() as session:
            return list((await session.execute(
                select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
            )).scalars())

    async def open_ticket_for_conversation(self, conversation_id: str) -> HandoffTicket | None:
        """The open ticket that makes the bot stay silent in this conversation, if any."""
        async with self.sessions() as session:
            return (await session.execute(
                select(HandoffTicket).where(HandoffTicket.conversation_id == conversation_id,
                                            HandoffTicket.status.in_(OPEN_STATUSES)).limit(1)
            )).scalar_one_or_none()

    # --- agent actions --------------------------------------------------------------------------------

    async def claim(self, agent_id: int, ticket_id: int) -> HandoffTicket:
        """Take the ticket. Idempotent for its owner; a second agent gets AlreadyClaimed."""
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            agent = await self._agent(session, agent_id)
            ticket = await self._visible(session, agent, ticket_id, taken_is_claimed=True)
            if ticket.status == "claimed" and ticket.agent_id == agent.id:
                return ticket
            counts = await self._open_counts(session, [agent.id])
            already_mine = ticket.agent_id == agent.id
            if not already_mine and counts.get(agent.id, 0) >= agent.max_open_threads:
                raise AtCapacity(f"you already have {agent.max_open_threads} open threads: resolve or release "
                                 "one before claiming another")
            # A conditional UPDATE is the lock: of two agents clicking at once exactly one matches.
            result = await session.execute(
                update(HandoffTicket)
                .where(HandoffTicket.id == ticket_id, HandoffTicket.status == "open",
                       or_(HandoffTicket.agent_id.is_(None), HandoffTicket.agent_id == agent.id))
                .values(status="claimed", agent_id=agent.id, claimed_at=now, version=HandoffTicket.version + 1)
                .execution_options(synchronize_session=False))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise AlreadyClaimed(f"ticket {ticket_id} was already taken by another agent")
            await session.refresh(ticket)
            session.add(record_event(ticket, "claimed", now, agent.id))
            team = agent.team.name
        await self.notifier.to_team(team, "ticket_updated", {"ticket": ticket.to_dict()})
        return ticket

    async def release(self, agent_id: int, ticket_id: int, reason: str = "") -> HandoffTicket:
        """Give the ticket back to the team queue; it is routed again to someone else if possible."""
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            agent = await self._agent(session, agent_id)
            ticket = await self._visible(session, agent, ticket_id)
            self._require_owner_or_lead(agent, ticket)
            previous = ticket.agent_id
            ticket.status, ticket.agent_id, ticket.claimed_at = "open", None, None
            session.add(record_event(ticket, "released", now, agent.id, previous_agent_id=previous, reason=reason))
            team = agent.team.name if agent.team_id == ticket.team_id else await self._team_name(session, ticket)
        await self.queue.enqueue(team, ticket.id, ticket.priority)
        await self.notifier.to_team(team, "ticket_updated", {"ticket": ticket.to_dict()})
        return ticket

    async def reassign(self, by_agent_id: int, ticket_id: int, to_agent_id: int) -> HandoffTicket:
        """Leads move any ticket of their team; an agent may pass their own ticket to a colleague who has
        the skills for it."""
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            actor = await self._agent(session, by_agent_id)
            ticket = await self._visible(session, actor, ticket_id)
            self._require_owner_or_lead(actor, ticket)
            if not ticket.is_open:
                raise HandoffError(f"ticket {ticket_id} is already {ticket.status}; nothing to reassign")
            target = await self._agent(session, to_agent_id)
            if target.team_id != ticket.team_id or not target.active:
                raise NotAllowed(f"{target.display_name} is not an active member of this ticket's team")
            if not has_skills(target, ticket) and not actor.has_role("lead"):
                raise NotAllowed(f"{target.display_name} lacks the skills for this ticket (language "
                                 f"{ticket.language}, channel {ticket.channel}); ask a lead to override")
            previous = ticket.agent_id
            ticket.agent_id = target.id
            ticket.routed_at = now
            session.add(record_event(ticket, "reassigned", now, actor.id, previous_agent_id=previous,
                                     to_agent_id=target.id))
            team = await self._team_name(session, ticket)
        await self.notifier.to_agent(to_agent_id, "ticket_routed", {"ticket": ticket.to_dict()})
        await self.notifier.to_team(team, "ticket_updated", {"ticket": ticket.to_dict()})
        return ticket

    async def record_reply(self, agent_id: int, ticket_id: int, text: str, **data: Any) -> HandoffTicket:
        """An agent's reply went to the shopper: stops the first/next-response clocks."""
        return await self._owner_action(agent_id, ticket_id, "replied", text=text, **data)

    async def add_note(self, agent_id: int, ticket_id: int, text: str) -> HandoffTicket:
        if not text.strip():
            raise ValueError("an internal note needs some text")
        async with self.sessions() as session, session.begin():
            agent = await self._agent(session, agent_id)
            ticket = await self._visible(session, agent, ticket_id)
            session.add(record_event(ticket, "note", self.clock.now(), agent.id, text=text))
        return ticket

    async def customer_wrote(self, ticket_id: int, channel: str | None = None,
                             session: AsyncSession | None = None) -> HandoffTicket:
        """The shopper wrote while a person owns the thread: starts the next-response clock and tells
        the agent. With `session`, joins the caller's transaction (see `escalate`)."""
        if session is not None:
            ticket = await self._customer_wrote(session, ticket_id, channel)
            if ticket.agent_id:
                self._after_commit(session, self._tell_agent(ticket.agent_id, ticket.to_dict()))
            return ticket
        async with self.sessions() as own, own.begin():
            ticket = await self._customer_wrote(own, ticket_id, channel)
        if ticket.agent_id:
            await self._tell_agent(ticket.agent_id, ticket.to_dict())()
        return ticket

    def _tell_agent(self, agent_id: int, ticket: dict[str, Any]) -> Callable[[], Coroutine[Any, Any, None]]:
        async def tell() -> None:
            await self.notifier.to_agent(agent_id, "customer_message", {"ticket": ticket})

        return tell

    async def _customer_wrote(self, session: AsyncSession, ticket_id: int, channel: str | None) -> HandoffTicket:
        now = self.clock.now()
        ticket = await session.get(HandoffTicket, ticket_id)
        if ticket is None or not ticket.is_open:
            raise TicketNotFound(f"ticket {ticket_id} does not exist or is closed")
        team = await session.get(Team, ticket.team_id)
        assert team is not None
        ticket.last_customer_message_at = now
        if channel and channel not in (ticket.channels or []):
            ticket.channels = [*(ticket.channels or []), channel]
        start_next_response_clock(ticket, team, self.sla, now)
        session.add(record_event(ticket, "customer_message", now, channel=channel))
        await session.flush()
        return ticket

    async def snooze(self, agent_id: int, ticket_id: int, until: datetime) -> HandoffTicket:
        if until <= self.clock.now():
            raise ValueError("snooze until a time in the future")
        return await self._owner_action(agent_id, ticket_id, "snoozed", until=until)

    async def resolve(self, agent_id: int, ticket_id: int, note: str = "") -> HandoffTicket:
        return await self._owner_action(agent_id, ticket_id, "resolved", note=note)

    async def hand_back(self, agent_id: int, ticket_id: int, note: str = "") -> HandoffTicket:
        """Return the conversation to the bot (it answers the shopper's next message again)."""
        return await self._owner_action(agent_id, ticket_id, "handed_back", note=note)

    async def _owner_action(self, agent_id: int, ticket_id: int, kind: str, **data: Any) -> HandoffTicket:
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            agent = await self._agent(session, agent_id)
            ticket = await self._visible(session, agent, ticket_id)
            self._require_owner_or_lead(agent, ticket)
            if not ticket.is_open:
                raise HandoffError(f"ticket {ticket_id} is already {ticket.status}")
            if ticket.agent_id is None or ticket.status == "open":
                # Acting on an unclaimed ticket claims it first, so nobody else replies in parallel.
                ticket.agent_id, ticket.claimed_at = agent.id, now
                ticket.status = "claimed"
                session.add(record_event(ticket, "claimed", now, agent.id, implicit=True))
            event_data = dict(data)
            if kind == "replied":
                stop_response_clocks(ticket, now)
            elif kind == "snoozed":
                ticket.status, ticket.snoozed_until = "snoozed", data["until"]
                event_data["until"] = data["until"].isoformat()
            elif kind in ("resolved", "handed_back"):
                ticket.status, ticket.open_key, ticket.closed_at = kind, None, now
            session.add(record_event(ticket, kind, now, agent.id, **event_data))
            team = await self._team_name(session, ticket)
        await self.notifier.to_team(team, "ticket_updated", {"ticket": ticket.to_dict()})
        if kind in ("resolved", "handed_back"):
            await self.route_waiting(team)  # the agent has room again
        return ticket

    # --- helpers --------------------------------------------------------------------------------------

    async def _agent(self, session: AsyncSession, agent_id: int) -> Agent:
        agent = await session.get(Agent, agent_id)
        if agent is None or not agent.active:
            raise NotAllowed(f"agent {agent_id} does not exist or is deactivated")
        return agent

    async def _visible(self, session: AsyncSession, agent: Agent, ticket_id: int, *,
                       taken_is_claimed: bool = False) -> HandoffTicket:
        ticket = (await session.execute(
            select(HandoffTicket).where(HandoffTicket.id == ticket_id).with_for_update()
        )).scalar_one_or_none()
        if ticket is None:
            raise TicketNotFound(f"ticket {ticket_id} does not exist")
        if (taken_is_claimed and ticket.agent_id not in (None, agent.id) and ticket.status == "claimed"
                and ticket.team_id == agent.team_id and has_skills(agent, ticket)):
            # It was in this agent's queue a moment ago: say it was taken, not that it is forbidden.
            raise AlreadyClaimed(f"ticket {ticket_id} was already taken by another agent")
        if not can_see(agent, ticket):
            raise NotAllowed(f"ticket {ticket_id} is not routed to you; ask your team lead to reassign it")
        return ticket

    @staticmethod
    def _require_owner_or_lead(agent: Agent, ticket: HandoffTicket) -> None:
        if ticket.agent_id not in (None, agent.id) and not agent.has_role("lead"):
            raise NotAllowed(f"ticket {ticket.id} belongs to another agent; ask your team lead")

    async def _team_by_name(self, session: AsyncSession, name: str) -> Team:
        team = (await session.execute(select(Team).where(Team.name == name))).scalar_one_or_none()
        if team is None:
            raise HandoffError(f"team {name!r} does not exist: create it first")
        return team

    async def _team_name(self, session: AsyncSession, ticket: HandoffTicket) -> str:
        team = await session.get(Team, ticket.team_id)
        assert team is not None
        return team.name
