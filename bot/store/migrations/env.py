"""Alembic environment: migrations over every package's tables, run on the app's own connection."""

from __future__ import annotations

from alembic import context

from bot.store.metadata import all_metadata

config = context.config
target_metadata = all_metadata()
connection = config.attributes.get("connection")

if connection is None:
    raise RuntimeError("run migrations through bot.store.db.Database.migrate() or `nightdesk db upgrade`")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
