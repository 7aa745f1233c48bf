"""Loads a bot project's demo data: knowledge base, demo store, staff and teams (idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.auth import hash_password
from bot.config import Settings
from bot.store.db import Database

log = structlog.get_logger(__name__)


def _staff_file(project: Path) -> dict[str, Any]:
    path = project / "staff.yml"
    return yaml.safe_load(path.read_text()) if path.exists() else {"teams": [], "staff": []}


DEMO_LOGINS = [(s["login"], s["password"], tuple(s["roles"]))
               for s in _staff_file(Path("examples/demo-store")).get("staff", [])]


async def load_staff(sessions: async_sessionmaker[AsyncSession], project: Path) -> int:
    from handoff.hours import BusinessHours
    from handoff.models import Agent, Team

    data = _staff_file(project)
    added = 0
    async with sessions() as session, session.begin():
        teams = {t.name: t for t in (await session.execute(select(Team))).scalars()}
        for spec in data.get("teams", []):
            if spec["name"] in teams:
                continue
            hours = BusinessHours.from_dict({"timezone": spec["timezone"], "hours": spec.get("hours", {}),
                                             "holidays": spec.get("holidays", [])})
            team = Team(name=spec["name"], timezone=hours.timezone, hours=spec.get("hours", {}),
                        holidays=spec.get("holidays", []), languages=spec.get("languages", []))
            session.add(team)
            await session.flush()
            teams[team.name] = team
        existing = set((await session.execute(select(Agent.login))).scalars())
        for spec in data.get("staff", []):
            if spec["login"] in existing:
                continue
            session.add(Agent(login=spec["login"], display_name=spec["name"],
                              password_hash=hash_password(spec["password"]), roles=list(spec["roles"]),
                              languages=spec.get("languages", []), team_id=teams[spec["team"]].id))
            added += 1
    return added


async def load_demo(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    await db.migrate()
    try:
        from actions.demo_store import load_demo_store

        store_dir = settings.project / "store"
        if (store_dir / "orders.json").exists():
            report = await load_demo_store(db.sessions, store_dir / "orders.json")
            log.info("demo_store_loaded", orders_added=report.orders_added, orders_total=report.orders_total)
        from knowledge_base.service import KnowledgeBase

        kb = KnowledgeBase(db.sessions, source_locale=settings.fallback_language)
        if not await kb.published_keys() and (settings.project / "kb").exists():
            kb_report = await kb.import_folder(settings.project / "kb", author="demo-import")
            log.info("kb_imported", report=str(kb_report))
        staff = await load_staff(db.sessions, settings.project)
        log.info("staff_loaded", added=staff)
    finally:
        await db.dispose()
