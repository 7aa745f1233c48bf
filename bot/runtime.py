"""Builds the engine's parts from the bot project: NLU model, knowledge base, responses, actions, handoff.

Each part is an adapter from a package's own API to what the engine needs (bot/engine.py's protocols).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog
import yaml

from bot.config import Settings
from bot.engine import ConversationEngine, Rendered
from bot.events import Events
from bot.store.db import Database

log = structlog.get_logger(__name__)

Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class Runtime:
    engine: ConversationEngine
    nlu: Any = None
    knowledge: Any = None
    actions: Any = None
    handoff: Any = None
    background_loops: list[Loop] = field(default_factory=list)
    closers: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    async def close(self) -> None:
        for close in self.closers:
            await close()


class DomainResponses:
    """Response templates from the project's domain.yml (until the full renderer is wired)."""

    def __init__(self, domain_file: Path, fallback_language: str) -> None:
        self.fallback = fallback_language
        data = yaml.safe_load(domain_file.read_text()) if domain_file.exists() else {}
        self.responses: dict[str, list[dict[str, Any]]] = (data or {}).get("responses", {}) or {}

    def render(self, name: str, language: str, **variables: Any) -> Rendered:
        variants = self.responses.get(name, [])
        pick = next((v for v in variants if _variant_locale(v) == language), None)
        fallback_used = pick is None
        pick = pick or next((v for v in variants if _variant_locale(v) in (self.fallback, None)), None)
        if pick is None:
            return Rendered(text=name, fallback_used=True)
        text = str(pick.get("text", ""))
        for key, value in variables.items():
            text = text.replace("{" + key + "}", str(value))
        return Rendered(text=text, fallback_used=fallback_used)


def _variant_locale(variant: dict[str, Any]) -> str | None:
    meta = variant.get("metadata") or {}
    return variant.get("locale") or meta.get("locale")


async def build_runtime(settings: Settings, db: Database, redis: aioredis.Redis, events: Events) -> Runtime:
    responses = DomainResponses(settings.project / "domain.yml", settings.fallback_language)
    engine = ConversationEngine(
        nlu=None, knowledge=None, responses=responses, actions=None, handoff=None,
        languages=settings.languages, fallback_language=settings.fallback_language,
    )
    return Runtime(engine=engine)
