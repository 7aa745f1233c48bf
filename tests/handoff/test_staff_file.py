"""staff.yml sets every skill routing uses (languages, channels, regions), the agent's capacity and the team's
SLA pausing; reloading it applies changes; a wrong file names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.demo import StaffFileError, load_staff, read_staff_file
from handoff.models import Agent, Team
from handoff.service import HandoffService
from handoff.triggers import Trigger

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-store"

STAFF = """teams:
  - {name: night, timezone: America/New_York, hours: {mon: ["09:00-17:00"]}, pause_sla_outside_hours: false,
     languages: [en]}
staff:
  - {login: ava, password: ava-password, name: Ava, team: night, languages: [en], channels: [whatsapp],
     regions: [NA], max_open_threads: 1}
  - {login: bo, password: bo-password, name: Bo, team: night, languages: [en]}
"""


def project(tmp_path: Path, staff: str, handoff: str = "regions: {NA: [US, CA]}\n") -> Path:
    (tmp_path / "staff.yml").write_text(staff, encoding="utf-8")
    (tmp_path / "handoff.yml").write_text(handoff, encoding="utf-8")
    return tmp_path


def test_the_demo_staff_file_is_valid() -> None:
    spec = read_staff_file(DEMO)
    lead = next(s for s in spec.staff if s.login == "lead")
    assert lead.regions == ["APAC"] and lead.channels == ["widget", "whatsapp"] and lead.max_open_threads == 3


async def test_channels_regions_capacity_and_sla_pausing_reach_routing(
        tmp_path: Path, sessions: async_sessionmaker[AsyncSession], service: HandoffService) -> None:
    assert await load_staff(sessions, project(tmp_path, STAFF)) == 2
    async with sessions() as session:
        ava = (await session.execute(select(Agent).where(Agent.login == "ava"))).scalar_one()
        team = (await session.execute(select(Team))).scalar_one()
    assert (ava.channels, ava.regions, ava.max_open_threads) == (["whatsapp"], ["NA"], 1)
    assert team.pause_sla_outside_hours is False

    bo = await service.authenticate("bo", "bo-password")
    assert bo is not None
    for agent in (ava, bo):
        await service.heartbeat(agent.id)
    # A widget chat from Germany: Ava works neither the channel nor the region.
    widget = await service.escalate(customer_id="c1", conversation_id="1", channel="widget", language="en",
                                    triggers=[Trigger("human_request", "asked for a person", "P3")], region="EU")
    whatsapp = await service.escalate(customer_id="c2", conversation_id="2", channel="whatsapp", language="en",
                                      triggers=[Trigger("human_request", "asked for a person", "P3")], region="NA")
    routed = {r.ticket_id: r.agent_id for r in await service.route_next("night", "router-1")}
    assert routed[widget.ticket["id"]] == bo.id
    assert routed[whatsapp.ticket["id"]] == ava.id


async def test_reloading_the_file_applies_changes_but_keeps_passwords(
        tmp_path: Path, sessions: async_sessionmaker[AsyncSession], service: HandoffService) -> None:
    await load_staff(sessions, project(tmp_path, STAFF))
    changed = STAFF.replace("max_open_threads: 1", "max_open_threads: 4").replace("ava-password", "new-password")
    changed = changed.replace("pause_sla_outside_hours: false", "pause_sla_outside_hours: true")
    assert await load_staff(sessions, project(tmp_path, changed)) == 0
    async with sessions() as session:
        ava = (await session.execute(select(Agent).where(Agent.login == "ava"))).scalar_one()
        team = (await session.execute(select(Team))).scalar_one()
    assert ava.max_open_threads == 4 and team.pause_sla_outside_hours is True
    assert await service.authenticate("ava", "ava-password") is not None


@pytest.mark.parametrize(("change", "key", "what"), [
    (("channels: [whatsapp]", "channels: [whatsap]"), "staff.0.channels", "unknown channel(s) ['whatsap']"),
    (("regions: [NA]", "regions: [Americas]"), "staff.0 (ava).regions", "neither regions of handoff.yml"),
    (("max_open_threads: 1", "max_open_threads: 0"), "staff.0.max_open_threads", "greater than or equal to 1"),
    (("team: night, languages: [en], channels", "team: day, languages: [en], channels"), "staff.0 (ava).team",
     "no team 'day'"),
    (("pause_sla_outside_hours: false", "pause_sla: false"), "teams.0.pause_sla", "Extra inputs"),
    (("America/New_York", "America/Gotham"), "teams.0 (night)", "unknown time zone"),
])
def test_a_wrong_staff_file_names_the_file_and_the_key(tmp_path: Path, change: tuple[str, str], key: str,
                                                        what: str) -> None:
    path = project(tmp_path, STAFF.replace(*change))
    with pytest.raises(StaffFileError) as caught:
        read_staff_file(path)
    message = str(caught.value)
    assert message.startswith(str(path / "staff.yml")) and f"{key}:" in message and what in message, message
