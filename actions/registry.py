"""Where actions find the store connector, seller data and invoice store: set at startup, or from env.

In the bot process the app calls `configure(ActionContext(...))`. A separate action server
(`python -m rasa_sdk --actions actions.order_actions`) configures itself on first use from:
  NIGHTDESK_DATABASE_URL   database holding the demo store tables (required for the demo store)
  NIGHTDESK_STORE          "demo" (default) or "shopify"
  NIGHTDESK_SHOPIFY_URL / NIGHTDESK_SHOPIFY_TOKEN / NIGHTDESK_SHOPIFY_API_VERSION   for Shopify
  NIGHTDESK_PROJECT_DIR    bot project with store/seller.yml (default examples/demo-store)
  NIGHTDESK_INVOICE_DIR    where issued invoice PDFs go (default ./var/invoices)
  NIGHTDESK_PUBLIC_URL     prefix for invoice links (default: none, links are paths like /files/...)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from actions.invoices import InvoiceStore
from actions.seller import SellerProfile
from actions.store import StoreConnector

ROOT = Path(__file__).resolve().parent.parent


class ActionsNotConfigured(RuntimeError):
    """No store configured: call actions.registry.configure() or set NIGHTDESK_DATABASE_URL."""


@dataclass
class ActionContext:
    store: StoreConnector
    seller: SellerProfile
    invoices: InvoiceStore
    public_url: str = ""  # e.g. "https://shop-support.example"; prefixes invoice link paths
    today: Callable[[], date] = field(default=lambda: datetime.now(UTC).date())  # late parcels are judged by it

    def link(self, path: str) -> str:
        return f"{self.public_url.rstrip('/')}{path}" if self.public_url else path


_context: ActionContext | None = None


def configure(context: ActionContext) -> None:
    global _context
    _context = context


def reset() -> None:
    global _context
    _context = None


def get_context() -> ActionContext:
    if _context is None:
        configure(context_from_env())
    assert _context is not None
    return _context


def demo_context(
    sessionmaker: Any,
    project_dir: str | Path = ROOT / "examples" / "demo-store",
    invoice_dir: str | Path = "var/invoices",
    public_url: str = "",
) -> ActionContext:
    """The context for the demo store in the bot's own database (tables from actions.models)."""
    from actions.demo_store import DemoStore

    seller = SellerProfile.load(Path(project_dir) / "store" / "seller.yml")
    return ActionContext(store=DemoStore(sessionmaker, seller), seller=seller, invoices=InvoiceStore(invoice_dir),
                         public_url=public_url)


def context_from_env(env: dict[str, str] | None = None) -> ActionContext:
    env = dict(os.environ if env is None else env)
    project = Path(env.get("NIGHTDESK_PROJECT_DIR", ROOT / "examples" / "demo-store"))
    seller = SellerProfile.load(project / "store" / "seller.yml")
    invoices = InvoiceStore(env.get("NIGHTDESK_INVOICE_DIR", "var/invoices"))
    kind = env.get("NIGHTDESK_STORE", "demo")
    store: StoreConnector
    if kind == "shopify":
        from actions.shopify import ShopifyStore

        try:
            store = ShopifyStore(env["NIGHTDESK_SHOPIFY_URL"], env["NIGHTDESK_SHOPIFY_TOKEN"], seller=seller,
                                 api_version=env.get("NIGHTDESK_SHOPIFY_API_VERSION", "2024-10"))
        except KeyError as exc:
            raise ActionsNotConfigured(f"NIGHTDESK_STORE=shopify needs {exc.args[0]}") from exc
    elif kind == "demo":
        url = env.get("NIGHTDESK_DATABASE_URL")
        if not url:
            raise ActionsNotConfigured(
                "actions need a store: set NIGHTDESK_DATABASE_URL (demo store) or call actions.registry.configure()"
            )
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

        from actions.demo_store import DemoStore

        store = DemoStore(async_sessionmaker(create_async_engine(url), expire_on_commit=False), seller)
    else:
        raise ActionsNotConfigured(f"NIGHTDESK_STORE={kind!r}: use 'demo' or 'shopify'")
    return ActionContext(store=store, seller=seller, invoices=invoices, public_url=env.get("NIGHTDESK_PUBLIC_URL", ""))
