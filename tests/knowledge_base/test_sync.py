"""Two worker processes' searchers follow each other's publishes through the real Redis."""

from __future__ import annotations

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from knowledge_base.search import KBSearcher
from knowledge_base.sync import VERSION_KEY, KBIndexSync
from tests.knowledge_base.conftest import article, make_kb
from tests.knowledge_base.test_incremental import ARTICLES


async def test_a_publish_in_one_process_reaches_the_other(redis_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}"
    kb_a, engine_a = await make_kb(url)
    kb_b, engine_b = await make_kb(url)
    await kb_a.import_articles(ARTICLES, author="seller")
    redis_a = aioredis.Redis.from_url(redis_url)
    redis_b = aioredis.Redis.from_url(redis_url)
    searcher_a, searcher_b = KBSearcher(kb_a), KBSearcher(kb_b)
    sync_a = KBIndexSync(redis_a, searcher_a, poll_interval=30)
    sync_b = KBIndexSync(redis_b, searcher_b, poll_interval=30)  # long poll: the pub/sub message must do it
    try:
        await sync_a.announce()
        sync_b.start()
        assert await sync_b.wait_for_version(searcher_a.version, within=60)
        assert searcher_b.search("do you take PayPal?", "en").best.article_id == "payment"  # type: ignore[union-attr]

        await kb_a.publish_article(
            article("payment", "en", "Payment methods", "We accept Visa, Mastercard, PayPal and **Klarna**.",
                    ["how can I pay?", "do you take PayPal?", "which cards do you accept?"]),
            author="ana",
        )
        version = await sync_a.announce()
        assert int(await redis_a.get(VERSION_KEY)) == version == searcher_a.version
        assert await sync_b.wait_for_version(version, within=60)
        answer = searcher_b.search("do you take PayPal?", "en").best
        assert answer is not None and answer.version == 2 and "Klarna" in answer.answer
    finally:
        await sync_b.stop()
        await redis_a.aclose()
        await redis_b.aclose()
        for engine in (engine_a, engine_b):
            assert isinstance(engine, AsyncEngine)
            await engine.dispose()


async def test_a_process_that_missed_the_message_catches_up_from_the_key(redis_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}"
    kb_a, engine_a = await make_kb(url)
    kb_b, engine_b = await make_kb(url)
    await kb_a.import_articles(ARTICLES, author="seller")
    redis_a = aioredis.Redis.from_url(redis_url)
    redis_b = aioredis.Redis.from_url(redis_url)
    searcher_b = KBSearcher(kb_b)
    sync_a = KBIndexSync(redis_a, KBSearcher(kb_a))
    sync_b = KBIndexSync(redis_b, searcher_b)
    try:
        version = await sync_a.announce()  # nobody listens yet
        assert searcher_b.version == -1
        assert await sync_b.catch_up()
        assert searcher_b.version == version
        assert not await sync_b.catch_up()
    finally:
        await redis_a.aclose()
        await redis_b.aclose()
        for engine in (engine_a, engine_b):
            assert isinstance(engine, AsyncEngine)
            await engine.dispose()
