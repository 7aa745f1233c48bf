"""`nightdesk test FILE.yml`: scripted conversations run through the real engine, reported like a test runner.

File format:

    conversations:
      - name: order status after proving ownership (en)
        steps:
          - user: "where is my order ND-100105?"
            expect: {kind: ask, action: action_order_status, slot: email}
          - user: "chloe.bernard311@example.org"
            expect: {kind: act, reply_contains: "UA696272698CN", language: en}

Expectation keys: kind (one value or a list), intent, action, article, slot, language, reply_contains
(text or list, all must appear), reply_not_contains, replies (count), ticket (true/false), priority (the
ticket's tier, P1-P4), trigger (escalation trigger names that must have fired), slots (a mapping of slot
names to the values the conversation must hold after the step: `{return_reason: "the vase arrived broken"}`,
null for an empty slot), also_answered (the article ids, in order, that answered the message's other
questions; [] for none), buttons (payloads that must be among the replies' buttons, like `/intent:cancel_order`;
[] for no buttons at all). A conversation may say `channel: email` (the shopper writes mail from an address of
their own; default: the REST API). A step may carry
`payload: /affirm` (a button press), `locale: de-DE` (the browser's language) and `after: 2h` (the shopper
writes that long after the previous step; the conversation's last turn is moved back by as much).
A run starts from a fresh database seeded with the project's demo data, which all its conversations share;
each conversation is its own shopper (a new sender), so what one conversation leaves in the shared store
(an order proven and linked to its customer, a ticket on that customer, the guessing limit on an order
number) can be seen by later ones in the same run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from bot.channels.base import InboundMessage
from bot.config import Settings, load_settings

console = Console()
EXPECT_KEYS = {"kind", "intent", "action", "article", "slot", "language", "reply_contains", "reply_not_contains",
               "replies", "ticket", "priority", "trigger", "slots", "also_answered", "buttons"}


class ConversationFileError(ValueError):
    pass


@dataclass
class Step:
    user: str
    expect: dict[str, Any]
    payload: str | None = None
    locale: str | None = None
    after: timedelta | None = None  # how long the shopper waited before writing this


@dataclass
class Conversation:
    name: str
    steps: list[Step]
    channel: str = "api"  # "email": the shopper writes mail from their own address (which proves it)


CHANNELS = ("api", "email")


@dataclass
class Result:
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def load_conversations(path: Path) -> list[Conversation]:
    from handoff.sla import parse_duration  # here: `nightdesk --help` need not load the handoff models
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConversationFileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("conversations"), list):
        raise ConversationFileError(f"{path}: expected a top-level 'conversations:' list")
    out = []
    for i, raw in enumerate(data["conversations"], 1):
        name = str(raw.get("name") or f"conversation {i}")
        steps = []
        for j, step in enumerate(raw.get("steps") or [], 1):
            if "user" not in step:
                raise ConversationFileError(f"{path}: {name!r} step {j} has no 'user:' message")
            expect = step.get("expect") or {}
            unknown = set(expect) - EXPECT_KEYS
            if unknown:
                raise ConversationFileError(f"{path}: {name!r} step {j}: unknown expectation(s) {sorted(unknown)}; "
                                            f"use {sorted(EXPECT_KEYS)}")
            after = None
            if step.get("after") is not None:
                try:
                    after = parse_duration(str(step["after"]))
                except ValueError as exc:
                    raise ConversationFileError(f"{path}: {name!r} step {j}: after: {exc}") from None
                if not isinstance(after, timedelta):
                    raise ConversationFileError(f"{path}: {name!r} step {j}: after: write it like 90m, 2h or 1d")
            steps.append(Step(str(step["user"]), expect, step.get("payload"), step.get("locale"), after))
        if not steps:
            raise ConversationFileError(f"{path}: {name!r} has no steps")
        channel = str(raw.get("channel") or "api")
        if channel not in CHANNELS:
            raise ConversationFileError(f"{path}: {name!r}: channel {channel!r} is not one of {list(CHANNELS)}")
        out.append(Conversation(name, steps, channel))
    return out


def check(expect: dict[str, Any], trace: dict[str, Any], replies: list[str],
          buttons: list[str] | None = None) -> list[str]:
    decision = trace.get("decision", {})
    problems = []
    if "buttons" in expect:  # payloads of the replies' buttons
        wanted_buttons = _as_list(expect["buttons"])
        missing = [b for b in wanted_buttons if b not in (buttons or [])]
        if missing or (not wanted_buttons and buttons):
            problems.append(f"buttons: expected {wanted_buttons!r}, got {buttons or []!r}")

    def want(key: str, actual: Any) -> None:
        if key not in expect:
            return
        wanted = expect[key]
        options = wanted if isinstance(wanted, list) else [wanted]
        if actual not in options:
            problems.append(f"{key}: expected {wanted!r}, got {actual!r}")

    want("kind", decision.get("kind"))
    want("intent", decision.get("intent"))
    want("action", decision.get("action"))
    want("article", decision.get("article_id"))
    want("slot", decision.get("slot"))
    want("language", trace.get("language"))
    want("priority", (trace.get("handoff") or {}).get("priority"))
    if "also_answered" in expect:  # the articles that answered the message's other questions, in order
        cited = [a.get("article_id") for a in decision.get("also_answered") or []]
        if cited != _as_list(expect["also_answered"]):
            problems.append(f"also_answered: expected {_as_list(expect['also_answered'])!r}, got {cited!r}")
    fired = [t.get("name") for t in decision.get("triggers") or []]
    for name in _as_list(expect.get("trigger")):
        if name not in fired:
            problems.append(f"trigger: expected {name!r} to fire, got {fired}")
    slots = expect.get("slots") or {}
    if not isinstance(slots, dict):
        problems.append(f"slots: expected a mapping of slot names to values, got {slots!r}")
        slots = {}
    for name, wanted in slots.items():
        actual = (trace.get("slots") or {}).get(name)
        if actual != wanted:
            problems.append(f"slot {name}: expected {wanted!r}, got {actual!r}")
    if "ticket" in expect and bool(decision.get("ticket_id")) != bool(expect["ticket"]):
        problems.append(f"ticket: expected {'a' if expect['ticket'] else 'no'} ticket, got {decision.get('ticket_id')!r}")
    if "replies" in expect and len(replies) != int(expect["replies"]):
        problems.append(f"replies: expected {expect['replies']}, got {len(replies)}")
    text = "\n".join(replies)
    for needle in _as_list(expect.get("reply_contains")):
        if str(needle).lower() not in text.lower():
            problems.append(f"reply does not contain {needle!r}: {text[:160]!r}")
    for needle in _as_list(expect.get("reply_not_contains")):
        if str(needle).lower() in text.lower():
            problems.append(f"reply contains {needle!r}: {text[:160]!r}")
    return problems


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


async def run_conversations(settings: Settings, conversations: list[Conversation], verbose: bool = False,
                            observe: Callable[[str, dict[str, Any], list[str]], None] | None = None) -> list[Result]:
    """Runs each conversation on a fresh demo shop and checks its steps; `observe` also gets each step's message,
    decision trace and replies (scripts/decisions.py records them)."""
    # Imported here, not at module level: `nightdesk --help` should not load the engine.
    from bot.demo import load_demo
    from bot.events import Events
    from bot.pipeline import EngineWorker, Ingest
    from bot.redis_conn import EmbeddedRedis, connect
    from bot.runtime import build_runtime
    from bot.store.db import Database
    from bot.store.models import DecisionTrace

    await load_demo(settings)
    embedded = None if settings.redis_url else EmbeddedRedis(settings.var_dir)
    redis = connect(settings.redis_url or embedded.url)  # type: ignore[union-attr]
    db = Database(settings.effective_database_url)
    events = Events(redis)
    ingest = Ingest(db, redis, events)
    runtime = await build_runtime(settings, db, redis, events)
    worker = EngineWorker(db, redis, events, runtime.engine, "conversation-tests")
    results = []
    try:
        for conversation in conversations:
            result = Result(conversation.name)
            sender = f"test-{uuid.uuid4().hex[:10]}"
            if conversation.channel == "email":
                sender += "@shopper.example"
            conversation_id: int | None = None
            for number, step in enumerate(conversation.steps, 1):
                if step.after is not None and conversation_id is not None:
                    await _time_passes(db, conversation_id, step.after)
                accepted = await ingest.accept(InboundMessage(
                    channel=conversation.channel, external_id=uuid.uuid4().hex, sender=sender, text=step.user,
                    payload=step.payload, locale_hint=step.locale))
                replies = await worker.process(accepted.message_id)
                async with db.sessions() as session:
                    row = (await session.execute(DecisionTrace.__table__.select().where(
                        DecisionTrace.inbound_message_id == accepted.message_id))).first()
                trace = row.trace if row is not None else {}
                conversation_id = row.conversation_id if row is not None else conversation_id
                if observe is not None:
                    observe(step.user, trace, [r.text for r in replies])
                problems = check(step.expect, trace, [r.text for r in replies],
                                 [q["payload"] for r in replies for q in (r.payload or {}).get("quick_replies", [])])
                if verbose:
                    console.print(f"  {step.user} -> {trace.get('decision', {}).get('kind')}: "
                                  f"{' | '.join(r.text[:80] for r in replies)}", highlight=False, markup=False)
                result.failures += [f"step {number} ({step.user!r}): {p}" for p in problems]
                if problems:
                    break
            results.append(result)
    finally:
        await runtime.close()
        await redis.aclose()
        await db.dispose()
        if embedded is not None:
            embedded.close()
    return results


async def _time_passes(db: Any, conversation_id: int, waited: timedelta) -> None:
    """As if the shopper's last turn in this conversation had been `waited` earlier."""
    from bot.store.models import Conversation as StoredConversation

    async with db.sessions() as session:
        stored = await session.get(StoredConversation, conversation_id)
        if stored is None or not (stored.state or {}).get("last_turn_at"):
            return
        last = datetime.fromisoformat(stored.state["last_turn_at"])
        stored.state = {**stored.state, "last_turn_at": (last - waited).isoformat()}
        await session.commit()


def register(app: typer.Typer) -> None:
    @app.command("test")
    def test_command(
        files: Annotated[list[Path], typer.Argument(help="conversation test files (YAML)")],
        project: Annotated[Path, typer.Option("--project", "-p")] = Path("examples/demo-store"),
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="print every turn")] = False,
    ) -> None:
        """Run scripted conversations and report failures like a test runner (exit 1 on any failure)."""
        conversations: list[Conversation] = []
        try:
            for path in files:
                conversations += load_conversations(path)
        except (ConversationFileError, OSError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        from bot.cli import check_seller_file

        try:
            check_seller_file(project)
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        with tempfile.TemporaryDirectory(prefix="nd-convtest-") as tmp:
            settings = load_settings(project=project, var_dir=Path(tmp), database_url="")
            started = time.monotonic()
            results = asyncio.run(run_conversations(settings, conversations, verbose))
        failed = [r for r in results if not r.passed]
        for r in results:
            mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
            console.print(f"{mark} {r.name}", highlight=False)
            for failure in r.failures:
                console.print(f"     {failure}", highlight=False, markup=False)
        console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed "
                      f"in {time.monotonic() - started:.1f}s", highlight=False)
        if failed:
            raise typer.Exit(1)
