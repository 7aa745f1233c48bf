"""Every package's table metadata, for Alembic and for the schema check in the tests."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

# (module, base class) of each package that owns tables; bot's own tables first.
TABLE_OWNERS = (
    ("bot.store.models", "CoreBase"),
    ("knowledge_base.models", "KBBase"),
    ("actions.models", "StoreBase"),
    ("handoff.models", "HandoffBase"),
)


def all_metadata() -> list[MetaData]:
    found = []
    for module_name, base_name in TABLE_OWNERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        found.append(getattr(module, base_name).metadata)
    return found
