"""The message pipeline: accept (dedup, persist, enqueue) -> engine workers -> senders.

Write-ahead: an inbound message is committed to the database before the channel gets its 200,
then announced on the `nd:inbound` stream. Workers in consumer group "engine" turn it into
replies, committed with the decision trace before they are announced on `nd:outbound`; senders
in group "senders" deliver them. Entries of a dead consumer are taken over with XAUTOCLAIM, and
every step checks the message's status first, so a redelivery never produces a second reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, cast

import redis.asyncio as aioredis
import structlog
from prometheus_client import Counter, Histogram
from redis.exceptions import LockNotOwnedError, ResponseError
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.base import Attachment, Channel, InboundMessage, OutboundMessage, QuickReply, SendError
from bot.events import Events
from bot.schemas import MessagePublic
from bot.store.db import Database
from bot.store.models import ChannelIdentity, Conversation, Customer, DecisionTrace, Message, utcnow
from bot.turns import queue_turn_done, turn_key

log = structlog.get_logger(__name__)

STREAM_IN = "nd:inbound"
STREAM_OUT = "nd:outbound"
GROUP_ENGINE = "engine"
GROUP_SENDERS = "senders"
DEDUP_TTL_S = 7 * 24 * 3600
STREAM_MAXLEN = 200_000

INBOUND_TOTAL = Counter("nightdesk_inbound_messages_total", "Inbound messages accepted", ["channel", "duplicate"])
TURN_SECONDS = Histogram("nightdesk_turn_seconds", "Engine time per inbound message")
SENT_TOTAL = Counter("nightdesk_outbound_messages_total", "Outbound send attempts by result", ["channel", "result"])

STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}


def _status_update(where: Any, status: str, error: str | None) -> Any:
    """The UPDATE that records a reply's status without ever moving it back (`failed` always applies). The rank
    check is in the statement itself: SQLite has no row locks, so a read-then-write could write `delivered`
    over a `read` recorded in between."""
    if status == "failed":
        return update(Message).where(where).values(status="failed", error=error)
    lower = [name for name, rank in STATUS_RANK.items() if rank < STATUS_RANK.get(status, -1)]
    return update(Message).where(where, Message.status.in_(lower)).values(status=status)


@dataclass(frozen=True)
class Accepted:
    message_id: int
    conversation_id: int
    duplicate: bool


@dataclass
class ReplyDraft:
    """One message the bot (or an agent) wants to send in the conversation's channel."""

    text: str
    quick_replies: list[QuickReply] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    language: str | None = None
    author: str = "bot"


@dataclass
class TurnOutcome:
    replies: list[ReplyDraft]
    trace: dict[str, Any]


class Engine(Protocol):
    async def handle(self, session: AsyncSession, conversation: Conversation, message: Message) -> TurnOutcome: ...


def _fields(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


async def ensure_group(redis: aioredis.Redis, stream: str, group: str) -> None:
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def find_identity(session: AsyncSession, channel: str, address: str) -> ChannelIdentity | None:
    return (
        await session.execute(
            select(ChannelIdentity).where(ChannelIdentity.channel == channel, ChannelIdentity.address == address)
        )
    ).scalar_one_or_none()


async def resolve_identity(
    session: AsyncSession, channel: str, address: str, display_name: str | None = None
) -> ChannelIdentity:
    """The identity for channel+address, creating it (and a new customer) on first contact."""
    identity = await find_identity(session, channel, address)
    if identity is not None:
        return identity
    customer = Customer(display_name=display_name)
    if channel in ("email", "amazon") and "@" in address:
        customer.email = address.lower()
    if channel == "whatsapp":
        customer.phone = address if address.startswith("+") else f"+{address}"
    session.add(customer)
    await session.flush()
    identity = ChannelIdentity(customer_id=customer.id, channel=channel, address=address)
    session.add(identity)
    await session.flush()
    return identity


async def current_customer_id(session: AsyncSession, customer_id: int) -> int:
    """Follow merges: the customer a merged profile now lives in."""
    seen = set()
    while customer_id not in seen:
        seen.add(customer_id)
        merged_into = (
            await session.execute(select(Customer.merged_into_id).where(Customer.id == customer_id))
        ).scalar_one_or_none()
        if merged_into is None:
            return customer_id
        customer_id = merged_into
    return customer_id


async def open_conversation(session: AsyncSession, identity: ChannelIdentity, msg: InboundMessage) -> Conversation:
    """The open conversation this message belongs to (email threads by thread key), or a new one."""
    query = select(Conversation).where(Conversation.status == "open")
    if msg.thread_key:
        query = query.where(Conversation.thread_key == msg.thread_key, Conversation.channel == msg.channel)
    else:
        query = query.where(Conversation.identity_id == identity.id)
    conversation = (await session.execute(query.order_by(Conversation.id.desc()).limit(1))).scalar_one_or_none()
    if conversation is None:
        conversation = Conversation(
            customer_id=await current_customer_id(session, identity.customer_id),
            identity_id=identity.id,
            channel=msg.channel,
            thread_key=msg.thread_key,
            timezone=msg.timezone_hint,
            state={},
        )
        session.add(conversation)
        await session.flush()
    elif msg.timezone_hint and not conversation.timezone:
        conversation.timezone = msg.timezone_hint
    return conversation


_CONVERSATIONS = cast(Table, Conversation.__table__)
_MESSAGES = cast(Table, Message.__table__)
# Built once: a statement built per message costs more CPU (construction, cache key) than running it.
_SENDER_OPEN_CONVERSATION = (
    select(Conversation.id, Conversation.timezone)
    .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
    .where(ChannelIdentity.channel == bindparam("channel"), ChannelIdentity.address == bindparam("address"),
           Conversation.status == "open")
    .order_by(Conversation.id.desc()).limit(1)
)
_TOUCH_CONVERSATION = update(_CONVERSATIONS).where(_CONVERSATIONS.c.id == bindparam("conversation_id"))
_INSERT_MESSAGE = insert(_MESSAGES).returning(_MESSAGES.c.id)


class Ingest:
    """Accepts inbound messages: dedup, write-ahead persist, enqueue. Channels call this and return 200."""

    def __init__(self, db: Database, redis: aioredis.Redis, events: Events) -> None:
        self.db = db
        self.redis = redis
        self.events = events

    async def accept(self, msg: InboundMessage) -> Accepted:
        key = f"nd:dedup:{msg.dedup_key}"
        cached = await self.redis.get(key)
        if cached:
            text = cached.decode() if isinstance(cached, bytes) else str(cached)
            message_id, conversation_id = (int(x) for x in text.split(":"))
            INBOUND_TOTAL.labels(msg.channel, "yes").inc()
            return Accepted(message_id, conversation_id, duplicate=True)
        for attempt in range(3):
            try:
                # No look-up first: the unique (channel, direction, external_id) rejects a redelivery whose
                # dedup key expired, and the IntegrityError below answers it as a duplicate.
                async with self.db.sessions() as session, session.begin():
                    public = MessagePublic.of(await self._store(session, msg))
                break
            except IntegrityError:
                # A concurrent delivery of the same message won the insert...
                async with self.db.sessions() as session:
                    existing = await self._existing(session, msg)
                if existing is None:
                    # ...or a concurrent first message of the same sender created its identity: go again.
                    if attempt < 2:
                        continue
                    raise
                INBOUND_TOTAL.labels(msg.channel, "yes").inc()
                return Accepted(existing.id, existing.conversation_id, duplicate=True)
        pipe = self.redis.pipeline(transaction=False)  # in order, in one round trip
        pipe.set(key, f"{public.id}:{public.conversation_id}", ex=DEDUP_TTL_S)
        pipe.xadd(
            STREAM_IN, {"message_id": public.id, "conversation_id": public.conversation_id},
            maxlen=STREAM_MAXLEN, approximate=True,
        )
        Events.queue(pipe, public.conversation_id, {"type": "message", "message": public.model_dump(mode="json")})
        await pipe.execute()
        INBOUND_TOTAL.labels(msg.channel, "no").inc()
        return Accepted(public.id, public.conversation_id, duplicate=False)

    @staticmethod
    async def _store(session: AsyncSession, msg: InboundMessage) -> Message:
        """Write the message into its sender's open conversation (resolve_identity + open_conversation), in the
        caller's transaction. A returning sender outside email threads, the common case, costs three plain
        statements: the conversation's id, its last activity, the message."""
        message = Message(direction="in", author="shopper", channel=msg.channel, external_id=msg.external_id,
                          text=msg.text, payload=_inbound_payload(msg), status="received", created_at=msg.received_at)
        row = None if msg.thread_key else (
            await session.execute(_SENDER_OPEN_CONVERSATION, {"channel": msg.channel, "address": msg.sender})).first()
        if row is not None:
            message.conversation_id, timezone = row
            touched = {"conversation_id": message.conversation_id, "last_message_at": utcnow()}
            if msg.timezone_hint and not timezone:
                touched["timezone"] = msg.timezone_hint
            await session.execute(_TOUCH_CONVERSATION, touched)
            values = {c.key: getattr(message, c.key) for c in _MESSAGES.columns if c.key != "id"}
            message.id = (await session.execute(_INSERT_MESSAGE, values)).scalar_one()
            return message
        identity = await resolve_identity(session, msg.channel, msg.sender, msg.sender_name)
        conversation = await open_conversation(session, identity, msg)
        conversation.last_message_at = utcnow()
        message.conversation_id = conversation.id
        session.add(message)
        await session.flush()
        return message

    @staticmethod
    async def _existing(session: AsyncSession, msg: InboundMessage) -> Message | None:
        return (
            await session.execute(
                select(Message).where(
                    Message.channel == msg.channel, Message.direction == "in", Message.external_id == msg.external_id
                )
            )
        ).scalar_one_or_none()

    async def record_status(self, channel: str, external_id: str, status: str, error: str | None = None) -> bool:
        """Store a delivery status (sent, delivered, read, failed) on an outbound message; never downgrade."""
        return await self._record_status(
            (Message.channel == channel) & (Message.direction == "out") & (Message.external_id == external_id),
            status, error,
        )

    async def record_status_of(self, message_id: int, status: str) -> bool:
        """The same, for a reply the channel saw before the sender stored its external id (still `sending`)."""
        return await self._record_status((Message.id == message_id) & (Message.direction == "out"), status, None)

    async def _record_status(self, where: Any, status: str, error: str | None) -> bool:
        async with self.db.sessions() as session, session.begin():
            await session.execute(_status_update(where, status, error))
            message = (await session.execute(select(Message).where(where))).scalar_one_or_none()
            if message is None:
                return False
            public = MessagePublic.of(message)
        await self.events.publish(public.conversation_id, {"type": "status", "message": public.model_dump(mode="json")})
        return True

    async def requeue_stranded(self, older_than_s: float = 60.0) -> int:
        """Re-announce messages committed but never announced (the process died between the two)."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        async with self.db.sessions() as session:
            inbound = (
                await session.execute(
                    select(Message.id, Message.conversation_id).where(
                        Message.direction == "in", Message.status == "received", Message.created_at < cutoff
                    )
                )
            ).all()
            outbound = (
                await session.execute(
                    select(Message.id).where(
                        Message.direction == "out", Message.status == "queued", Message.created_at < cutoff
                    )
                )
            ).all()
        for message_id, conversation_id in inbound:
            await self.redis.xadd(STREAM_IN, {"message_id": message_id, "conversation_id": conversation_id})
        for (message_id,) in outbound:
            await self.redis.xadd(STREAM_OUT, {"message_id": message_id})
        return len(inbound) + len(outbound)


def _inbound_payload(msg: InboundMessage) -> dict[str, Any]:
    payload: dict[str, Any] = dict(msg.metadata)
    if msg.attachments:
        payload["attachments"] = [a.__dict__ for a in msg.attachments]
    for name in ("locale_hint", "timezone_hint", "payload", "sender_name"):
        value = getattr(msg, name)
        if value:
            payload[name] = value
    return payload


async def enqueue_reply(
    session: AsyncSession, conversation: Conversation, reply: ReplyDraft, *, status: str = "queued"
) -> Message:
    """Persist one outbound message (the caller commits, then announces it with `announce_outbound`)."""
    message = reply_message(conversation, reply, status=status)
    session.add(message)
    await session.flush()
    return message


def reply_message(conversation: Conversation, reply: ReplyDraft, *, status: str = "queued") -> Message:
    """The outbound message row for a reply, not yet added to a session."""
    return Message(
        conversation_id=conversation.id,
        direction="out",
        author=reply.author,
        channel=conversation.channel,
        text=reply.text,
        payload={
            "quick_replies": [{"title": q.title, "payload": q.payload} for q in reply.quick_replies],
            "attachments": [a.__dict__ for a in reply.attachments],
        },
        language=reply.language,
        status=status,
    )


async def announce_outbound(redis: aioredis.Redis, events: Events, messages: list[Message],
                            first: tuple[int, dict[str, Any]] | None = None,
                            turn: tuple[str, int, dict[str, Any]] | None = None) -> None:
    """Queue committed replies for the senders and show them live, in one round trip to Redis (after `first`,
    a (conversation id, event) to publish before them, for the conversation's followers only; with `turn`, the
    (key, inbound message id, decision trace) of the turn they answer, announced to callers waiting for it)."""
    pipe = redis.pipeline(transaction=False)
    if first is not None:
        events.queue(pipe, first[0], first[1], console=False)
    public = []
    for message in messages:
        if message.status == "queued":
            pipe.xadd(STREAM_OUT, {"message_id": message.id}, maxlen=STREAM_MAXLEN, approximate=True)
        public.append(MessagePublic.of(message).model_dump(mode="json"))
        events.queue(pipe, message.conversation_id, {"type": "message", "message": public[-1]})
    if turn is not None:
        queue_turn_done(pipe, *turn, public)
    if pipe.command_stack:
        await pipe.execute()


class StreamConsumer:
    """A consumer-group reader that also takes over entries idle too long in a dead consumer's hands."""

    stream: str
    group: str

    def __init__(self, redis: aioredis.Redis, consumer: str, claim_idle_ms: int, concurrency: int = 1) -> None:
        self.redis = redis
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._busy = 0  # entries taken and not yet done
        self._freed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle_entry(self, entry_id: bytes, fields: dict[str, str]) -> None:
        raise NotImplementedError

    async def run(self, stop: asyncio.Event) -> None:
        await ensure_group(self.redis, self.stream, self.group)
        backlog = True  # first our own pending entries (a restart under the same name), then new ones
        last_claim = 0.0
        while not stop.is_set():
            try:
                # Take only as many entries as there are free slots: an entry read is this consumer's until it
                # acknowledges it, so taking more would leave them queued here while another consumer idles.
                while self._busy >= self.concurrency:
                    self._freed.clear()
                    await self._freed.wait()
                free = self.concurrency - self._busy
                entries: list[tuple[bytes, dict[bytes, bytes]]] = []
                if time.monotonic() - last_claim > min(self.claim_idle_ms / 2000, 5.0):
                    last_claim = time.monotonic()
                    claimed: Any = await self.redis.xautoclaim(
                        self.stream, self.group, self.consumer, self.claim_idle_ms, "0-0", count=free
                    )
                    entries = [(eid, f) for eid, f in claimed[1] if f]
                if not entries:
                    response: Any = await self.redis.xreadgroup(
                        self.group, self.consumer, {self.stream: "0" if backlog else ">"}, count=free,
                        block=None if backlog else 500,
                    )
                    entries = [(eid, f) for _, items in (response or []) for eid, f in items if f]
                    if backlog and not entries:
                        backlog = False
                        continue
                for entry_id, raw in entries:
                    self._busy += 1
                    task = asyncio.create_task(self._guarded(entry_id, _fields(raw)))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                if backlog:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("stream_consumer_error", stream=self.stream, consumer=self.consumer)
                await asyncio.sleep(1.0)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _guarded(self, entry_id: bytes, fields: dict[str, str]) -> None:
        try:
            await self.handle_entry(entry_id, fields)
            await self.redis.xack(self.stream, self.group, entry_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left pending: another consumer (or we, after claim_idle_ms) will try again.
            log.exception("stream_entry_failed", stream=self.stream, entry=entry_id.decode())
        finally:
            self._busy -= 1
            self._freed.set()


class EngineWorker(StreamConsumer):
    """Consumer group "engine": one inbound message -> decision -> persisted replies + trace."""

    stream = STREAM_IN
    group = GROUP_ENGINE

    def __init__(
        self, db: Database, redis: aioredis.Redis, events: Events, engine: Engine, consumer: str,
        claim_idle_ms: int = 30_000, concurrency: int = 4,
    ) -> None:
        super().__init__(redis, consumer, claim_idle_ms, concurrency)
        self.db = db
        self.events = events
        self.engine = engine

    async def handle_entry(self, entry_id: bytes, fields: dict[str, str]) -> None:
        message_id = int(fields["message_id"])
        conversation_id = int(fields["conversation_id"])
        # One turn at a time per conversation, across all workers. A worker silent for claim_idle_ms
        # counts as dead for its stream entries, and so for its lock too.
        hold = max(self.claim_idle_ms / 1000, 1.0)
        lock = self.redis.lock(f"nd:lock:conv:{conversation_id}", timeout=hold, blocking_timeout=hold * 2 + 5)
        if not await lock.acquire():
            raise TimeoutError(f"conversation {conversation_id} stayed locked; left pending for a retry")
        try:
            await self.process(message_id)
        finally:
            with contextlib.suppress(LockNotOwnedError):  # expired during a slow turn: nothing to release
                await lock.release()

    async def process(self, message_id: int) -> list[Message]:
        started = time.perf_counter()
        async with self.db.sessions() as session:
            row = (await session.execute(_TURN_MESSAGE, {"message_id": message_id})).first()
            if row is None:
                log.warning("inbound_message_missing", message_id=message_id)
                return []
            message, conversation = row
            conversation_id = conversation.id  # still readable once a failed commit has expired the objects
            if message.status != "received":
                # Already decided (a redelivery): make sure its replies were announced, nothing more.
                queued = (
                    await session.execute(
                        select(Message).where(
                            Message.conversation_id == message.conversation_id,
                            Message.direction == "out",
                            Message.status == "queued",
                            Message.id > message.id,
                        )
                    )
                ).scalars().all()
                for reply in queued:
                    await self.redis.xadd(STREAM_OUT, {"message_id": reply.id})
                return []
            typing_off = {"type": "typing", "on": False}
            key = turn_key(message.channel, message.external_id)
            # Sent while the engine works; done before anything is committed, and before typing stops.
            typing_on = asyncio.ensure_future(
                self.events.publish(conversation.id, {"type": "typing", "on": True}, console=False))
            try:
                # No autoflush: the turn's own changes are written in one go at the commit below, so this
                # session holds no write lock while actions, KB and handoff write through their own sessions
                # (on SQLite a held lock would make them wait for us while we wait for them).
                with session.no_autoflush:
                    outcome = await self.engine.handle(session, conversation, message)
                await typing_on  # before the first write: from there to the commit nothing waits
                stored = [reply_message(conversation, r) for r in outcome.replies]
                session.add_all(stored)
                await session.flush()  # the replies' ids, for the trace
                message.status = "processed"
                if outcome.trace.get("language"):
                    message.language = outcome.trace["language"]
                trace = dict(outcome.trace)
                trace["reply_message_ids"] = [m.id for m in stored]
                trace.setdefault("timings_ms", {})["turn_total"] = round((time.perf_counter() - started) * 1000, 2)
                session.add(DecisionTrace(conversation_id=conversation.id, inbound_message_id=message.id, trace=trace))
                await session.commit()
            except IntegrityError:
                # Another worker decided this message first (one decision trace per message): its replies stand,
                # and ours are not stored. A caller that decides a message itself (`nightdesk chat`, `nightdesk
                # test`) while a server works the same stream gets the winner's replies instead of a crash.
                await session.rollback()
                await self.events.publish(conversation_id, typing_off, console=False)
                winner = await self._decided_elsewhere(message_id)
                if winner is None:
                    raise
                log.warning("turn_decided_elsewhere", message_id=message_id)
                return winner
            except BaseException:
                with contextlib.suppress(Exception):
                    await typing_on
                await self.events.publish(conversation.id, typing_off, console=False)
                raise
        # Typing stops, then the replies show: one round trip.
        await announce_outbound(self.redis, self.events, stored, first=(conversation.id, typing_off),
                                turn=(key, message_id, trace))
        TURN_SECONDS.observe(time.perf_counter() - started)
        return stored

    async def _decided_elsewhere(self, message_id: int) -> list[Message] | None:
        """The replies of the decision another worker committed for this message; None when there is none."""
        async with self.db.sessions() as session:
            trace = (await session.execute(select(DecisionTrace.trace).where(
                DecisionTrace.inbound_message_id == message_id))).scalar_one_or_none()
            if trace is None:
                return None
            ids = [int(i) for i in trace.get("reply_message_ids") or []]
            replies = (await session.execute(select(Message).where(Message.id.in_(ids)))).scalars().all() if ids else []
            return sorted(replies, key=lambda m: m.id)


# Built once: a statement built per turn costs more CPU (construction, cache key) than running it.
_TURN_MESSAGE = (select(Message, Conversation).join(Conversation, Conversation.id == Message.conversation_id)
                 .where(Message.id == bindparam("message_id")))

ChannelLookup = Callable[[str], Channel | None]


class Sender(StreamConsumer):
    """Consumer group "senders": delivers queued replies through their channel, with retry and backoff."""

    stream = STREAM_OUT
    group = GROUP_SENDERS

    def __init__(
        self, db: Database, redis: aioredis.Redis, events: Events, channels: ChannelLookup, consumer: str,
        claim_idle_ms: int = 30_000, max_attempts: int = 6, concurrency: int = 8,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(redis, consumer, claim_idle_ms, concurrency)
        self.db = db
        self.events = events
        self.channels = channels
        self.max_attempts = max_attempts
        self._sleep = sleep

    async def handle_entry(self, entry_id: bytes, fields: dict[str, str]) -> None:
        message_id = int(fields["message_id"])
        async with self.db.sessions() as session, session.begin():
            # Claim the message: only one sender may move it from queued to sending.
            claimed = await session.execute(
                update(Message).where(Message.id == message_id, Message.status == "queued").values(status="sending")
            )
            if claimed.rowcount == 0:  # type: ignore[attr-defined]
                current = await session.get(Message, message_id)
                # "sending" from a consumer that died mid-send: it never recorded a result, so we retry.
                stale = current is not None and current.status == "sending" and await self._taken_over(entry_id)
                if not stale:
                    return
            message = await session.get(Message, message_id)
            assert message is not None
            conversation = await session.get(Conversation, message.conversation_id)
            assert conversation is not None
            identity = await session.get(ChannelIdentity, conversation.identity_id)
            assert identity is not None
            outbound = OutboundMessage(
                message_id=message.id,
                conversation_id=conversation.id,
                channel=message.channel,
                recipient=identity.address,
                text=message.text,
                quick_replies=tuple(QuickReply(**q) for q in (message.payload or {}).get("quick_replies", [])),
                attachments=tuple(Attachment(**a) for a in (message.payload or {}).get("attachments", [])),
                language=message.language,
                author=message.author,
                metadata={"thread_key": conversation.thread_key, **(message.payload or {}).get("send_metadata", {})},
            )
        status, external_id, error = await self._deliver(outbound)
        async with self.db.sessions() as session, session.begin():
            # A receipt recorded while the channel was sending (the browser or the REST response already has the
            # reply: `delivered`, `read`) must not be overwritten with `sent`.
            values: dict[str, Any] = {"error": error}
            if external_id:
                values["external_id"] = external_id
            await session.execute(update(Message).where(Message.id == message_id).values(**values))
            await session.execute(_status_update(Message.id == message_id, status, error))
            message = (await session.execute(select(Message).where(Message.id == message_id))).scalar_one()
            public = MessagePublic.of(message)
        await self.events.publish(public.conversation_id, {"type": "status", "message": public.model_dump(mode="json")})

    async def _taken_over(self, entry_id: bytes) -> bool:
        pending = await self.redis.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
        return bool(pending) and int(pending[0].get("times_delivered", 1)) > 1

    async def _deliver(self, outbound: OutboundMessage) -> tuple[str, str | None, str | None]:
        channel = self.channels(outbound.channel)
        if channel is None:
            SENT_TOTAL.labels(outbound.channel, "no_channel").inc()
            return "failed", None, f"channel {outbound.channel!r} is not configured"
        for attempt in range(1, self.max_attempts + 1):
            try:
                result = await channel.send(outbound)
                SENT_TOTAL.labels(outbound.channel, "sent").inc()
                return result.status, result.external_id, None
            except SendError as exc:
                if not exc.retryable or attempt == self.max_attempts:
                    SENT_TOTAL.labels(outbound.channel, "failed").inc()
                    log.warning("send_failed", channel=outbound.channel, code=exc.code, message_id=outbound.message_id)
                    return "failed", None, f"{exc.code or 'error'}: {exc}"
                SENT_TOTAL.labels(outbound.channel, "retry").inc()
                delay = exc.retry_after if exc.retry_after is not None else min(2 ** attempt, 60)
                await self._sleep(delay * (1 + random.random() * 0.2))
            except Exception as exc:  # a bug or an unexpected network error: retry like a transient one
                if attempt == self.max_attempts:
                    SENT_TOTAL.labels(outbound.channel, "failed").inc()
                    log.exception("send_crashed", channel=outbound.channel, message_id=outbound.message_id)
                    return "failed", None, f"unexpected error: {exc}"
                await self._sleep(min(2 ** attempt, 60))
        return "failed", None, "gave up"


async def history(session: AsyncSession, conversation_ids: list[int], after_id: int = 0, limit: int = 500) -> list[Message]:
    """Messages of these conversations after a message id, oldest first (for resync and transcripts)."""
    rows = await session.execute(
        select(Message)
        .where(Message.conversation_id.in_(conversation_ids), Message.id > after_id, Message.status != "stored")
        .order_by(Message.id)
        .limit(limit)
    )
    return list(rows.scalars().all())


@contextlib.asynccontextmanager
async def running(
    tasks: Sequence[Callable[[asyncio.Event], Coroutine[Any, Any, None]]],
) -> AsyncIterator[asyncio.Event]:
    """Run long-lived loops as tasks until the block exits, then stop them cleanly."""
    stop = asyncio.Event()
    started: list[asyncio.Task[None]] = [asyncio.create_task(t(stop)) for t in tasks]
    try:
        yield stop
    finally:
        stop.set()
        done, pending = await asyncio.wait(started, timeout=5)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
