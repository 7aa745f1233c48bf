"""Alembic environment: migrations over every package's tables, run on the app's own connection."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.types import TypeDecorator

from bot.store.metadata import all_metadata

config = context.config
target_metadata = all_metadata()
connection = config.attributes.get("connection")

if connection is None:
    raise RuntimeError("run migrations through bot.store.db.Database.migrate() or `nightdesk db upgrade`")

def render_item(type_: str, obj: Any, autogen_context: Any) -> Any:
    # Packages' TypeDecorators are storage details: migrations spell them as the plain type they wrap.
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl.__class__.__name__}(timezone=True)" if hasattr(obj.impl, "timezone") else repr(obj.impl)
    return False


context.configure(
    connection=connection,
    render_item=render_item,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
