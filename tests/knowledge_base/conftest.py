"""Fixtures for the knowledge-base tests: a database with the KB tables, and the demo store's KB loaded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from knowledge_base.articles import Article
from knowledge_base.models import KBBase
from knowledge_base.search import KBSearcher, SearchSettings
from knowledge_base.service import KnowledgeBase
from tests.conftest import DEMO_PROJECT

DEMO_KB = DEMO_PROJECT / "kb"


async def make_kb(url: str) -> tuple[KnowledgeBase, object]:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(KBBase.metadata.create_all)
    return KnowledgeBase(async_sessionmaker(engine, expire_on_commit=False), source_locale="en"), engine


@pytest.fixture
async def kb(database_url: str) -> AsyncIterator[KnowledgeBase]:
    """An empty knowledge base on SQLite and on PostgreSQL."""
    service, engine = await make_kb(database_url)
    yield service
    await engine.dispose()  # type: ignore[attr-defined]


def article(aid: str, locale: str, title: str, body: str, questions: list[str], tags: list[str] | None = None) -> Article:
    return Article(id=aid, locale=locale, title=title, body=body, questions=questions, tags=tags or [])


@pytest.fixture(scope="session")
def demo_searcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KBSearcher]:
    """The demo store's knowledge base imported into SQLite and indexed (built once: encoding is slow)."""
    yield from demo_kb_searcher(tmp_path_factory.mktemp("demo-kb") / "kb.db")


def demo_kb_searcher(path: Path, settings: SearchSettings | None = None, kb: Path = DEMO_KB) -> Iterator[KBSearcher]:
    """A searcher over the demo KB (or the KB folder `kb`) imported into SQLite at `path`, built once on a loop of
    its own."""
    loop = asyncio.new_event_loop()

    async def build() -> KBSearcher:
        service, _ = await make_kb(f"sqlite+aiosqlite:///{path}")
        await service.import_folder(kb, author="tests")
        searcher = KBSearcher(service, settings=settings)
        await searcher.refresh()
        return searcher

    yield loop.run_until_complete(build())
    loop.close()
