"""The suite's own servers are real and reachable."""

import asyncio

import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


def test_redis_keeps_a_stream_across_a_restart(redis_server, redis_url):
    client = redis.Redis.from_url(redis_url)
    client.xadd("nd:test", {"k": "v"})
    redis_server.restart()
    client = redis.Redis.from_url(redis_url)
    assert client.xlen("nd:test") == 1


def test_each_database_answers(database_url):
    async def go() -> int:
        engine = create_async_engine(database_url)
        async with engine.connect() as conn:
            value = (await conn.execute(text("select 41 + 1"))).scalar_one()
        await engine.dispose()
        return int(value)

    assert asyncio.run(go()) == 42
