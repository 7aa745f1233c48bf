"""Builds the engine's parts from the bot project: NLU model, knowledge base, responses, actions, handoff.

Each part is an adapter from a package's own API to what the engine needs (bot/engine.py's protocols).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog

from actions.registry import ActionContext, configure
from actions.responses import ResponseCatalog
from actions.runner import ActionCall, ActionRunner, RemoteActionRunner, load_domain
from bot.channels.base import QuickReply
from bot.config import Settings
from bot.engine import ActionOutcome, ConversationEngine, CustomerFacts, KBAnswer, KBHit, Rendered
from bot.events import Events
from bot.store.db import Database
from handoff.config import FILE_NAME as HANDOFF_FILE
from handoff.config import HandoffConfig, load_handoff_config

log = structlog.get_logger(__name__)

Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class Runtime:
    engine: ConversationEngine
    responses: DomainResponses
    nlu: Any = None
    knowledge: Knowledge | None = None
    actions: Actions | None = None
    handoff: Any = None
    invoices: Any = None
    background_loops: list[Loop] = field(default_factory=list)
    closers: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    async def close(self) -> None:
        for close in self.closers:
            await close()


class DomainResponses:
    """The project's domain.yml responses in the shopper's language (Babel-formatted variables)."""

    def __init__(self, catalog: ResponseCatalog) -> None:
        self.catalog = catalog

    def render(self, name: str, language: str, **variables: Any) -> Rendered:
        rendered = self.catalog.render(name, language, variables)
        return Rendered(rendered.text, _buttons(rendered.buttons), rendered.fallback_used)

    def __contains__(self, name: object) -> bool:
        return name in self.catalog


def _buttons(buttons: Any) -> list[QuickReply]:
    return [QuickReply(str(b.get("title", "")), str(b.get("payload", b.get("title", "")))) for b in buttons or ()]


class Knowledge:
    """KB search for the engine, plus the log of what it could not answer."""

    def __init__(self, searcher: Any, kb: Any) -> None:
        self.searcher = searcher
        self.kb = kb

    @property
    def version(self) -> int:
        return int(self.searcher.version)

    def words(self) -> frozenset[str]:
        """Every word of the published articles (titles, example questions, answers), lower-cased."""
        from nlu.vocabulary import words

        index = self.searcher.index
        if index is None:
            return frozenset()
        return frozenset(w for dv in index.doc_vectors for text in dv.texts for w in words(text))

    def search(self, query: str, language: str) -> KBAnswer:
        result = self.searcher.search(query, language)
        hits = [KBHit(c.article_id, c.version, c.title, c.answer, c.locale, c.confidence) for c in result.candidates]
        return KBAnswer(hits=hits, confident=result.confident, close_call=result.ambiguous,
                        fallback_used=result.fallback_used, trace=result.to_trace())

    async def record_unanswered(self, text: str, language: str, channel: str, conversation_id: int, reason: str) -> None:
        await self.kb.log_unanswered(text, reason=reason, language=language, channel=channel,
                                     conversation_id=str(conversation_id))


class Actions:
    """Runs rasa-sdk actions (in-process or on a Rasa action server) and proves order ownership."""

    def __init__(self, runner: Any, responses: DomainResponses, verifier: Any) -> None:
        self.runner = runner
        self.responses = responses
        self.verifier = verifier

    async def run(self, action: str, slots: dict[str, Any], language: str, sender: str,
                  customer: CustomerFacts) -> ActionOutcome:
        call = ActionCall(action=action, sender_id=sender, slots={**slots, "language": language},
                          latest_message={"text": "", "intent": {"name": action}})
        try:
            result = await self.runner.run(call)
        except Exception as exc:
            log.warning("action_failed", action=action, error=exc.__class__.__name__)
            reply = self.responses.render("utter_store_unavailable", language)
            return ActionOutcome([reply], {}, {"name": action, "error": exc.__class__.__name__}, failed=True,
                                 handoff_reason="store_unavailable")
        replies = [Rendered(r.text, _buttons(r.buttons), r.fallback_used)
                   for r in result.render(self.responses.catalog, language)]
        trace = {"name": action, "responses": result.response_names, "slots_set": result.slots,
                 "runner": self.runner.__class__.__name__}
        return ActionOutcome(replies, result.slots, trace, failed=result.handoff_reason == "store_unavailable",
                             handoff_reason=result.handoff_reason, variables=result.variables)

    async def verify_ownership(self, sender: str, order_number: str, email: str | None, phone: str | None,
                               customer: CustomerFacts) -> tuple[str, dict[str, Any]]:
        from actions.ownership import RateLimited

        try:
            verified = await self.verifier.verify(sender, order_number, email=email, phone=phone,
                                                  known_contacts=[*customer.emails, *customer.phones])
        except RateLimited as exc:
            return "rate_limited", {"retry_after": exc.retry_after}
        if verified is None:
            return "no", {}
        order = verified.order
        return "ok", {"total": float(order.total), "currency": order.currency, "status": order.status,
                      "in_transit": order.status in ("shipped", "in_transit"), "method": verified.method,
                      "email": order.email, "phone": order.phone, "number": order.number}


async def build_runtime(settings: Settings, db: Database, redis: aioredis.Redis, events: Events) -> Runtime:
    project = settings.project
    # First, so a wrong handoff.yml stops start-up at once (HandoffConfigError names the file and key).
    handoff_config = load_handoff_config(project / HANDOFF_FILE)
    domain_path = project / "domain.yml"
    domain = load_domain(domain_path) if domain_path.exists() else {"responses": {}}
    # Rasa projects also keep responses, typically those of retrieval intents, in data/*.yml; domain.yml wins.
    responses = DomainResponses(ResponseCatalog.from_dict(
        {**_data_responses(project / "data"), **(domain.get("responses") or {})}, settings.fallback_language))
    runtime = Runtime(engine=None, responses=responses)  # type: ignore[arg-type]

    runtime.nlu = _load_nlu(settings)
    runtime.knowledge = await _load_knowledge(settings, db, redis, runtime)
    runtime.actions = _load_actions(settings, db, redis, domain, responses, runtime)
    runtime.handoff = _load_handoff(settings, db, redis, events, responses, runtime, handoff_config)
    runtime.engine = ConversationEngine(
        nlu=runtime.nlu, knowledge=runtime.knowledge, responses=responses, actions=runtime.actions,
        handoff=runtime.handoff, languages=settings.languages, fallback_language=settings.fallback_language,
        intent_threshold=settings.answer_threshold, session_expiry_minutes=settings.session_expiry_minutes,
    )
    runtime.engine.on_order_proven = identity_linker(db)
    return runtime


def _data_responses(folder: Path) -> dict[str, Any]:
    """The `responses:` of the project's Rasa data files, read and checked by the NLU's training-data loader."""
    from nlu.training_data import load_training_data

    return load_training_data(folder).responses if folder.is_dir() else {}


def identity_linker(db: Database) -> Callable[[Any, str, dict[str, Any]], Coroutine[Any, Any, None]]:
    """One shopper, one customer: proving an order joins this channel identity to the order's customer.

    Committed in its own short transaction, so the turn's session never holds SQLite's write lock while
    the action it is about to run writes through the store's own session.
    """

    async def link(conversation: Any, order_number: str, facts: dict[str, Any]) -> None:
        from bot.identity import link_by_order

        async with db.sessions() as session, session.begin():
            result = await link_by_order(session, conversation.identity_id, order_number=order_number,
                                         order_email=facts.get("email"), order_phone=facts.get("phone"))
        conversation.customer_id = result.customer_id

    return link


def _load_nlu(settings: Settings) -> Any:
    from nlu.model import MANIFEST, NLUModel

    model_dir = settings.effective_model_dir
    if not (model_dir / MANIFEST).exists():
        log.warning("nlu_model_missing", model_dir=str(model_dir), hint="run `nightdesk train`")
        return None
    model = NLUModel.load(model_dir)
    model.warm_up()
    return model


def search_settings(settings: Settings) -> Any:
    """The KB search settings the project's configuration asks for."""
    from knowledge_base.search import SearchSettings

    return SearchSettings(second_encoder=settings.kb_second_encoder or None, classifier=settings.kb_classifier,
                          target_precision=settings.kb_target_precision)


async def _load_knowledge(settings: Settings, db: Database, redis: aioredis.Redis, runtime: Runtime) -> Knowledge:
    from knowledge_base.search import KBSearcher
    from knowledge_base.service import KnowledgeBase
    from knowledge_base.sync import KBIndexSync

    kb = KnowledgeBase(db.sessions, source_locale=settings.fallback_language)
    searcher = KBSearcher(kb, settings=search_settings(settings))
    await searcher.refresh(force=True)
    sync = KBIndexSync(redis, searcher)

    async def follow(stop: asyncio.Event) -> None:
        # Every process follows publishes made anywhere, so all serve the same KB version.
        task = asyncio.create_task(sync.run())
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    runtime.background_loops.append(follow)
    runtime.kb_sync = sync  # type: ignore[attr-defined]
    runtime.kb_service = kb  # type: ignore[attr-defined]
    runtime.kb_searcher = searcher  # type: ignore[attr-defined]
    return Knowledge(searcher, kb)


def _load_actions(settings: Settings, db: Database, redis: aioredis.Redis, domain: dict[str, Any],
                  responses: DomainResponses, runtime: Runtime) -> Actions:
    from actions.demo_store import DemoStore
    from actions.invoices import InvoiceStore
    from actions.ownership import OwnershipVerifier
    from actions.seller import SellerProfile

    seller = SellerProfile.load(settings.project / "store" / "seller.yml")
    store: Any
    if settings.store == "shopify":
        from actions.shopify import ShopifyStore

        store = ShopifyStore(settings.shopify_url, settings.shopify_token, seller=seller,
                             api_version=settings.shopify_api_version)
    else:
        store = DemoStore(db.sessions, seller)
    invoices = InvoiceStore(settings.var_dir / "invoices")
    configure(ActionContext(store=store, seller=seller, invoices=invoices, public_url=settings.effective_public_url))
    runtime.invoices = invoices
    runner: Any
    if settings.action_endpoint:
        runner = RemoteActionRunner(settings.action_endpoint, domain)
        runtime.closers.append(runner.aclose)
    else:
        runner = ActionRunner(domain)
    return Actions(runner, responses, OwnershipVerifier(store, redis))


def _load_handoff(settings: Settings, db: Database, redis: aioredis.Redis, events: Events,
                  responses: DomainResponses, runtime: Runtime, config: HandoffConfig) -> Any:
    from actions.registry import get_context
    from bot.handoff_desk import HandoffDesk
    from handoff.service import HandoffService

    service = HandoffService(db.sessions, redis, priority_rules=config.priority, sla=config.sla)
    runtime.handoff_service = service  # type: ignore[attr-defined]

    async def route(stop: asyncio.Event) -> None:
        # One stream router per team, plus a sweep for tickets that waited for an agent to come online.
        routers: dict[str, asyncio.Task[None]] = {}
        router_name = f"router-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        while not stop.is_set():
            try:
                for team in [t.name for t in await service.teams()]:
                    if team not in routers:
                        routers[team] = asyncio.create_task(
                            service.run_router(team, router_name, stop))
                    await service.route_waiting(team)
            except Exception:
                log.exception("router_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=10.0)
        await asyncio.gather(*routers.values(), return_exceptions=True)

    runtime.background_loops.append(route)
    runtime.background_loops.append(service.run_sla_monitor)
    return HandoffDesk(service, responses, events, settings.languages, config=config, store=get_context().store)
