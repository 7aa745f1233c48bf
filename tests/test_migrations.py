"""The Alembic migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.store.db import Database
from bot.store.metadata import all_metadata


async def test_migrations_match_the_models(database_url):
    db = Database(database_url)
    await db.migrate()
    await db.migrate()  # applying twice is harmless (start-up runs it every time)

    def diff(connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        return compare_metadata(context, all_metadata())

    async with db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    await db.dispose()
    assert differences == [], f"models and migrations differ; run scripts/make_migration.py: {differences}"
