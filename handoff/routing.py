"""Who may see a ticket and who gets it: skill matching (language, channel, region), capacity,
and round-robin among the eligible agents."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

from handoff.models import Agent, HandoffTicket

_NEVER = datetime.min.replace(tzinfo=UTC)


def has_skills(agent: Agent, ticket: HandoffTicket) -> bool:
    """The agent speaks the ticket's language and works its channel and region (empty lists: any)."""
    if ticket.language.split("-")[0] not in {lang.split("-")[0] for lang in agent.languages or []}:
        return False
    if agent.channels and ticket.channel not in agent.channels:
        return False
    if agent.regions and ticket.region and ticket.region not in agent.regions:
        return False
    return True


def can_see(agent: Agent, ticket: HandoffTicket) -> bool:
    """Server-side visibility: leads and admins see their team's queue; an agent sees what is routed to
    them, or an unrouted ticket of their team they have the skills for."""
    if not agent.active:
        return False
    if "admin" in agent.roles:
        return True
    if agent.team_id != ticket.team_id:
        return False
    if "lead" in agent.roles:
        return True
    if ticket.agent_id is not None:
        return ticket.agent_id == agent.id
    return has_skills(agent, ticket)


def choose_agent(ticket: HandoffTicket, agents: Sequence[Agent], open_counts: Mapping[int, int],
                 online: Collection[int] | None = None) -> Agent | None:
    """The eligible agent with room who got a ticket least recently (round-robin that survives restarts)."""
    eligible = [
        a for a in agents
        if a.active and a.team_id == ticket.team_id and has_skills(a, ticket)
        and open_counts.get(a.id, 0) < a.max_open_threads
        and (online is None or a.id in online)
    ]
    if not eligible:
        return None
    return min(eligible, key=lambda a: (a.last_routed_at or _NEVER, a.id))
