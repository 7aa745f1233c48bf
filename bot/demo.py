"""Loads a bot project's demo data: knowledge base, demo store, staff and teams (idempotent)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.auth import hash_password
from bot.config import Settings
from bot.store.db import Database

if TYPE_CHECKING:
    from knowledge_base.service import ImportReport, KnowledgeBase

log = structlog.get_logger(__name__)


CHANNELS = ("widget", "whatsapp", "email", "amazon", "messenger", "instagram", "telegram", "chatwoot", "api", "rest")


class StaffFileError(ValueError):
    """staff.yml is wrong; the message names the file and the key and says what to write."""


class TeamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    timezone: str = "UTC"
    hours: dict[str, list[str]] = Field(default_factory=dict)
    holidays: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    pause_sla_outside_hours: bool = True


class StaffSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=8)
    name: str
    team: str
    roles: list[str] = Field(default_factory=lambda: ["agent"])
    languages: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list, description="empty: every channel")
    regions: list[str] = Field(default_factory=list, description="handoff.yml regions or country codes; empty: all")
    max_open_threads: int = Field(default=5, ge=1, le=100)

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown channel(s) {unknown}: use {', '.join(CHANNELS)}")
        return value


class StaffFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teams: list[TeamSpec] = Field(default_factory=list)
    staff: list[StaffSpec] = Field(default_factory=list)


def _staff_file(project: Path) -> dict[str, Any]:
    path = project / "staff.yml"
    return yaml.safe_load(path.read_text()) if path.exists() else {"teams": [], "staff": []}


DEMO_LOGINS = [(s["login"], s["password"], tuple(s["roles"]))
               for s in _staff_file(Path("examples/demo-store")).get("staff", [])]


def read_staff_file(project: Path) -> StaffFile:
    """The project's staff.yml, checked: teams exist, zones and hours parse, roles, channels and regions are
    known (regions: a region of handoff.yml or a two-letter country code)."""
    from handoff.config import FILE_NAME, load_handoff_config
    from handoff.hours import BusinessHours
    from handoff.models import ROLES

    path = project / "staff.yml"
    if not path.exists():
        return StaffFile()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        staff = StaffFile.model_validate(data)
    except yaml.YAMLError as exc:
        raise StaffFileError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
                    for e in exc.errors()]
        raise StaffFileError(f"{path}: invalid setting(s):\n  " + "\n  ".join(problems)) from None
    regions = set(load_handoff_config(project / FILE_NAME).regions)
    problems = []
    for i, team in enumerate(staff.teams):
        try:
            BusinessHours.from_dict({"timezone": team.timezone, "hours": team.hours, "holidays": team.holidays})
        except ValueError as exc:
            problems.append(f"teams.{i} ({team.name}): {exc}")
    names = {t.name for t in staff.teams}
    for i, member in enumerate(staff.staff):
        where = f"staff.{i} ({member.login})"
        if member.team not in names:
            problems.append(f"{where}.team: no team {member.team!r} in teams: use one of {sorted(names)}")
        if set(member.roles) - set(ROLES):
            problems.append(f"{where}.roles: unknown role(s) {sorted(set(member.roles) - set(ROLES))}: "
                            f"use {', '.join(ROLES)}")
        bad = [r for r in member.regions if r not in regions and not (len(r) == 2 and r.isalpha() and r.isupper())]
        if bad:
            problems.append(f"{where}.regions: {bad} are neither regions of handoff.yml ({sorted(regions)}) nor "
                            "two-letter country codes")
    if problems:
        raise StaffFileError(f"{path}: invalid setting(s):\n  " + "\n  ".join(problems))
    return staff


async def load_staff(sessions: async_sessionmaker[AsyncSession], project: Path) -> int:
    """Create the teams and staff of staff.yml that do not exist yet, and bring existing ones in line with
    the file (hours, languages, skills, capacity, roles; never a password someone may have changed)."""
    from handoff.models import Agent, Team

    spec = read_staff_file(project)
    added = 0
    async with sessions() as session, session.begin():
        teams = {t.name: t for t in (await session.execute(select(Team))).scalars()}
        for t in spec.teams:
            team = teams.get(t.name) or Team(name=t.name)
            team.timezone, team.hours, team.holidays = t.timezone, t.hours, t.holidays
            team.languages, team.pause_sla_outside_hours = t.languages, t.pause_sla_outside_hours
            if t.name not in teams:
                session.add(team)
                await session.flush()
                teams[t.name] = team
        agents = {a.login: a for a in (await session.execute(select(Agent))).scalars()}
        for s in spec.staff:
            agent = agents.get(s.login)
            if agent is None:
                agent = Agent(login=s.login, password_hash=hash_password(s.password))
                session.add(agent)
                added += 1
            agent.display_name, agent.roles, agent.languages = s.name, list(s.roles), list(s.languages)
            agent.channels, agent.regions, agent.max_open_threads = list(s.channels), list(s.regions), s.max_open_threads
            agent.team_id = teams[s.team].id
    return added


DEMO_KB_AUTHOR = "demo-import"


async def import_demo_kb(kb: KnowledgeBase, folder: Path) -> ImportReport:
    """Bring the demo KB up to date with the project's files on every start, without undoing the editor:
    an article/locale whose latest version someone else published, and an archived article, are left as
    they are; new files and files changed since the last demo import are imported."""
    from knowledge_base.articles import load_folder

    authors, archived = await kb.latest_authors()
    files = [a for a in load_folder(folder)
             if a.id not in archived and authors.get((a.id, a.locale), DEMO_KB_AUTHOR) == DEMO_KB_AUTHOR]
    return await kb.import_articles(files, author=DEMO_KB_AUTHOR)


async def load_demo(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    await db.migrate()
    try:
        from actions.demo_store import load_demo_store

        store_dir = settings.project / "store"
        if (store_dir / "orders.json").exists():
            # The demo's orders are moved to today, so parcels are in transit whenever the demo is tried.
            report = await load_demo_store(db.sessions, store_dir / "orders.json", today=datetime.now(UTC).date())
            log.info("demo_store_loaded", orders_added=report.orders_added, orders_total=report.orders_total)
        from knowledge_base.service import KnowledgeBase

        kb = KnowledgeBase(db.sessions, source_locale=settings.fallback_language)
        if (settings.project / "kb").exists():
            kb_report = await import_demo_kb(kb, settings.project / "kb")
            if kb_report.kb_version is not None:
                log.info("kb_imported", created=len(kb_report.created), updated=len(kb_report.updated),
                         unchanged=len(kb_report.unchanged), kb_version=kb_report.kb_version)
        staff = await load_staff(db.sessions, settings.project)
        log.info("staff_loaded", added=staff)
    finally:
        await db.dispose()
