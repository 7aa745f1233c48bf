"""Storefront chat widget channel: the widget's wire protocol (session, WebSocket, long-poll, email).

The widget's identity address is its session token, an unguessable secret kept in the shopper's
localStorage. Inbound messages go through `Ingest.accept` like any channel; replies reach the
browser as live events, and every (re)connect resyncs from the database, so a dropped event or a
restarted server loses nothing. Also serves `widget.js`/`widget.css` and the demo storefront page.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
import yaml
from fastapi import APIRouter, HTTPException, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocketState

from bot.channels.base import InboundMessage, OutboundMessage, SendResult
from bot.events import Events, conversation_channel
from bot.pipeline import Ingest, find_identity, history, open_conversation, resolve_identity
from bot.schemas import MessagePublic
from bot.store.models import ChannelIdentity, Conversation, Customer, Message

log = structlog.get_logger(__name__)

NAME = "widget"
WEB = Path(__file__).resolve().parent.parent / "web"
STATIC = WEB / "static"
STOREFRONT_ASSETS = STATIC / "storefront"
HEARTBEAT_S = 20.0
POLL_WAIT_MAX_S = 30.0
MESSAGES_PER_MINUTE = 30
RESYNC_TAIL = 20  # recent messages always resent on connect: covers replies sent while offline
SESSION_HINTS_TTL_S = 90 * 24 * 3600
FORWARDED_EVENTS = ("message", "typing", "status")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
LOCALE_RE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
# Pragmatic address check: one @, a dotted domain, no spaces. Deliverability is the mail server's job.
EMAIL_RE = re.compile(r"^[^@\s<>()\[\],;:\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


class CORSRoute(APIRoute):
    """The widget runs on the seller's shop domain: its API answers any origin (no cookies are used)."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def with_cors(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except HTTPException as exc:
                # Rendered here, not by the app's handler, so the shop's page can read the error too.
                response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
            response.headers["Access-Control-Allow-Origin"] = "*"
            return response

        return with_cors


router = APIRouter(tags=["widget"])
api = APIRouter(prefix="/api/v1/widget", route_class=CORSRoute)


# ---------------------------------------------------------------- schemas


class SessionRequest(BaseModel):
    session_token: str | None = Field(default=None, max_length=200)
    locale: str = Field(default="", max_length=64)
    timezone: str = Field(default="", max_length=64)


class SessionPublic(BaseModel):
    session_token: str
    conversation_id: int
    history: list[MessagePublic]
    offline: bool
    max_length: int


class PostMessage(BaseModel):
    token: str = Field(max_length=200)
    client_id: str = Field(max_length=100)
    text: str
    payload: str | None = Field(default=None, max_length=500)


class EmailRequest(BaseModel):
    token: str = Field(max_length=200)
    email: str = Field(max_length=320)


class MessageRejected(ValueError):
    """A shopper's message the widget will not accept; `detail` tells the shopper what to do."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


# ---------------------------------------------------------------- the channel (sending side)


class WidgetChannel:
    """Sending to the widget is publishing a live event; the database copy is what resync reads."""

    name = NAME

    def __init__(self, events: Events, redis: Any = None) -> None:
        self.events = events
        self.redis = redis

    async def send(self, message: OutboundMessage) -> SendResult:
        public = {
            "id": message.message_id,
            "conversation_id": message.conversation_id,
            "direction": "out",
            "author": message.author,
            "channel": NAME,
            "text": message.text,
            "quick_replies": [{"title": q.title, "payload": q.payload} for q in message.quick_replies],
            "attachments": [a.__dict__ for a in message.attachments],
            "status": "sent",
            "language": message.language,
            "created_at": datetime.now(UTC).isoformat(),
        }
        await self.events.publish(message.conversation_id, {"type": "message", "message": public}, console=False)
        return SendResult(external_id=f"widget-{message.message_id}", status=await self._receipt(message))

    async def _receipt(self, message: OutboundMessage) -> str:
        """The browser may have shown the reply (from the persisted copy) before it was 'sent'."""
        if self.redis is None:
            return "sent"
        delivered, read = await self.redis.hmget(_receipts_key(message.recipient), "delivered", "read")
        if read and int(read) >= message.message_id:
            return "read"
        if delivered and int(delivered) >= message.message_id:
            return "delivered"
        return "sent"


def build(state: Any) -> WidgetChannel:
    return WidgetChannel(state.events, getattr(state, "redis", None))


# ---------------------------------------------------------------- helpers


def _clean_locale(value: str) -> str | None:
    value = value.strip()
    return value if value and LOCALE_RE.match(value) else None


def _clean_timezone(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    try:
        ZoneInfo(value)
    except (KeyError, ValueError):
        return None
    return value


def _receipts_key(token: str) -> str:
    return f"nd:widget:receipts:{token}"


def _hints_key(token: str) -> str:
    return f"nd:widget:hints:{token}"


def max_length(request: Request | WebSocket) -> int:
    settings = getattr(request.app.state, "settings", None)
    return int(getattr(settings, "message_max_length", 2000))


async def is_offline(request: Request | WebSocket) -> bool:
    """Offline = no human can answer live right now.

    `app.state.live_available()` decides when the app provides it; otherwise the support teams'
    business hours from the project's staff.yml do (no team open now = offline).
    """
    state = request.app.state
    check = getattr(state, "live_available", None)
    if check is None:
        hours = getattr(state, "widget_team_hours", None)
        if hours is None:
            hours = state.widget_team_hours = _team_hours(getattr(state, "settings", None))
        return bool(hours) and not any(h.is_open(datetime.now(UTC)) for h in hours)
    available = check()
    if inspect.isawaitable(available):
        available = await available
    return not bool(available)


def _team_hours(settings: Any) -> list[Any]:
    """The teams' business hours from `<project>/staff.yml`; none (= always live) when absent."""
    from handoff.hours import BusinessHours

    project = getattr(settings, "project", None)
    path = Path(project) / "staff.yml" if project else None
    if path is None or not path.exists():
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    hours = []
    for team in data.get("teams") or []:
        if isinstance(team, dict) and team.get("hours") is not None:
            hours.append(BusinessHours.from_dict(team))
    return hours


def check_text(text: str, limit: int) -> str:
    text = text.strip()
    if not text:
        raise MessageRejected("empty", "Your message is empty. Type something, then send it.")
    if len(text) > limit:
        raise MessageRejected(
            "too_long",
            f"Your message is {len(text):,} characters long; the limit is {limit:,}. "
            "Please shorten it or send it in several parts.",
        )
    return text


async def _identity(session: AsyncSession, token: str) -> ChannelIdentity | None:
    if not token:
        return None
    return await find_identity(session, NAME, token)


async def _conversation_ids(session: AsyncSession, identity: ChannelIdentity) -> list[int]:
    rows = await session.execute(
        select(Conversation.id).where(Conversation.identity_id == identity.id).order_by(Conversation.id)
    )
    return list(rows.scalars().all())


async def _current_conversation(session: AsyncSession, identity: ChannelIdentity) -> int | None:
    rows = await session.execute(
        select(Conversation.id)
        .where(Conversation.identity_id == identity.id, Conversation.status == "open")
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    return rows.scalar_one_or_none()


async def messages_after(session: AsyncSession, identity: ChannelIdentity, after: int) -> list[MessagePublic]:
    """Messages newer than `after`, plus the recent tail (the client ignores ids it already shows)."""
    ids = await _conversation_ids(session, identity)
    if not ids:
        return []
    newer = await history(session, ids, after_id=after)
    tail_rows = await session.execute(
        select(Message)
        .where(Message.conversation_id.in_(ids), Message.id <= after, Message.status != "stored")
        .order_by(Message.id.desc())
        .limit(RESYNC_TAIL)
    )
    tail = list(reversed(tail_rows.scalars().all()))
    return [MessagePublic.of(m) for m in tail + newer]


@contextlib.asynccontextmanager
async def live_events(redis: Any, conversation_id: int) -> AsyncIterator[Any]:
    """A confirmed subscription to one conversation's events (see `Events.publish`).

    Unlike `Events.subscribe`, this returns only once Redis confirmed the SUBSCRIBE, so a database
    read made afterwards plus the events received cover everything: nothing falls in between.
    """
    pubsub = redis.pubsub()
    await pubsub.subscribe(conversation_channel(conversation_id))
    try:
        await pubsub.get_message(timeout=5.0)  # the subscribe confirmation
        yield pubsub
    finally:
        with contextlib.suppress(Exception):
            await pubsub.unsubscribe()
        await pubsub.aclose()


async def next_event(pubsub: Any) -> dict[str, Any]:
    while True:
        raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
        if raw and raw.get("type") == "message":
            event: dict[str, Any] = json.loads(raw["data"])
            return event


async def _hints(redis: Any, token: str) -> tuple[str | None, str | None]:
    raw = await redis.get(_hints_key(token))
    if not raw:
        return None, None
    data = json.loads(raw)
    return data.get("locale"), data.get("timezone")


async def _within_rate(redis: Any, identity_id: int) -> bool:
    """Sliding window: at most MESSAGES_PER_MINUTE messages in any 60 seconds per widget session."""
    key = f"nd:widget:rate:{identity_id}"
    now = datetime.now(UTC).timestamp()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(key, 0, now - 60)
        pipe.zadd(key, {f"{now}:{secrets.token_hex(4)}": now})
        pipe.zcard(key)
        pipe.expire(key, 120)
        _, _, count, _ = await pipe.execute()
    return int(count) <= MESSAGES_PER_MINUTE


async def submit(request: Request | WebSocket, identity: ChannelIdentity, token: str, client_id: str, text: str,
                 payload: str | None) -> tuple[MessagePublic, bool]:
    """Hand one shopper message to the pipeline; a resend with the same client_id is a duplicate."""
    if not CLIENT_ID_RE.match(client_id or ""):
        raise MessageRejected("bad_client_id", "The message has no valid client_id; reload the page and retry.")
    text = check_text(text, max_length(request))
    state = request.app.state
    # The widget is public: one session cannot flood the engine (a person types far slower than this).
    if not await _within_rate(state.redis, identity.id):
        raise MessageRejected(
            "rate_limited", "You are sending messages very quickly. Please wait a minute, then send it again."
        )
    locale, timezone = await _hints(state.redis, token)
    ingest: Ingest = state.ingest
    accepted = await ingest.accept(
        InboundMessage(
            channel=NAME,
            # Namespaced by identity: a client_id chosen by one browser can never collide with another's.
            external_id=f"{identity.id}:{client_id}",
            sender=token,
            text=text,
            locale_hint=locale,
            timezone_hint=timezone,
            payload=payload or None,
        )
    )
    async with state.db.sessions() as session:
        message = await session.get(Message, accepted.message_id)
        assert message is not None
        return MessagePublic.of(message), accepted.duplicate


async def record_receipt(request: Request | WebSocket, identity: ChannelIdentity, token: str, up_to: int,
                         status: str) -> int:
    """The widget showed replies up to `up_to` (delivered) with the chat open (read): store it on them.

    Returns how many stored replies changed. Replies not sent yet pick it up in `WidgetChannel.send`.
    """
    if status not in ("delivered", "read") or up_to <= 0:
        return 0
    state = request.app.state
    key = _receipts_key(token)
    previous = int(await state.redis.hget(key, status) or 0)
    if up_to <= previous:
        return 0
    levels = {"delivered": up_to, "read": up_to} if status == "read" else {"delivered": up_to}
    await state.redis.hset(key, mapping=levels)
    await state.redis.expire(key, SESSION_HINTS_TTL_S)
    # `sending` too: the browser can show a reply before the sender has stored that it was sent.
    lower = ("sending", "sent", "delivered") if status == "read" else ("sending", "sent")
    async with state.db.sessions() as session:
        ids = await _conversation_ids(session, identity)
        rows = await session.execute(
            select(Message.id).where(
                Message.conversation_id.in_(ids), Message.direction == "out", Message.id > previous,
                Message.id <= up_to, Message.status.in_(lower),
            )
        )
        message_ids = list(rows.scalars().all())
    ingest: Ingest = state.ingest
    for message_id in message_ids:
        await ingest.record_status_of(message_id, status)
    return len(message_ids)


# ---------------------------------------------------------------- HTTP API


@api.post("/session", response_model=SessionPublic)
async def open_session(body: SessionRequest, request: Request) -> SessionPublic:
    """Start or resume a widget session; a known token brings back the shopper's history."""
    state = request.app.state
    locale, timezone = _clean_locale(body.locale), _clean_timezone(body.timezone)
    async with state.db.sessions() as session, session.begin():
        identity = await _identity(session, body.session_token or "")
        if identity is None:
            token = secrets.token_urlsafe(32)
            identity = await resolve_identity(session, NAME, token)
        else:
            token = identity.address
        probe = InboundMessage(channel=NAME, external_id="", sender=token, text="", timezone_hint=timezone)
        conversation = await open_conversation(session, identity, probe)
        past = await messages_after(session, identity, 0)
    await state.redis.set(
        _hints_key(token), json.dumps({"locale": locale, "timezone": timezone}), ex=SESSION_HINTS_TTL_S
    )
    return SessionPublic(
        session_token=token,
        conversation_id=conversation.id,
        history=past,
        offline=await is_offline(request),
        max_length=max_length(request),
    )


@api.get("/messages")
async def poll_messages(
    request: Request,
    token: str = Query(max_length=200),
    after: int = Query(default=0, ge=0),
    wait: float = Query(default=25.0, ge=0),
) -> dict[str, Any]:
    """Long-poll fallback: answers as soon as there is something newer than `after`, or after `wait`."""
    state = request.app.state
    async with state.db.sessions() as session:
        identity = await _identity(session, token)
        if identity is None:
            raise HTTPException(401, "Unknown widget session. Start a new one with POST /api/v1/widget/session.")
        conversation_id = await _current_conversation(session, identity)
    result: dict[str, Any] = {"messages": [], "offline": await is_offline(request)}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait, POLL_WAIT_MAX_S)
    async with contextlib.AsyncExitStack() as stack:
        pubsub = await stack.enter_async_context(live_events(state.redis, conversation_id)) if conversation_id else None
        while True:
            async with state.db.sessions() as session:
                fresh = await history(session, await _conversation_ids(session, identity), after)
            if fresh:
                result["messages"] = [MessagePublic.of(m).model_dump(mode="json") for m in fresh]
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                return result
            if pubsub is None:
                # No open conversation to follow (all closed): look again now and then, never spin.
                await asyncio.sleep(min(2.0, remaining))
                continue
            try:
                event = await asyncio.wait_for(next_event(pubsub), timeout=remaining)
            except TimeoutError:
                return result
            if event.get("type") == "typing":
                result["typing"] = bool(event.get("on"))
                return result


@api.post("/messages")
async def post_message(body: PostMessage, request: Request) -> JSONResponse:
    """Long-poll fallback for sending: same dedup (client_id) and limits as the WebSocket."""
    async with request.app.state.db.sessions() as session:
        identity = await _identity(session, body.token)
    if identity is None:
        raise HTTPException(401, "Unknown widget session. Start a new one with POST /api/v1/widget/session.")
    try:
        message, duplicate = await submit(request, identity, body.token, body.client_id, body.text, body.payload)
    except MessageRejected as exc:
        return JSONResponse({"code": exc.code, "detail": exc.detail},
                            status_code=429 if exc.code == "rate_limited" else 422)
    return JSONResponse({"message": message.model_dump(mode="json"), "duplicate": duplicate})


class ReceiptRequest(BaseModel):
    token: str = Field(max_length=200)
    up_to: int = Field(ge=0)
    status: str = Field(pattern="^(delivered|read)$")


@api.post("/receipt")
async def post_receipt(body: ReceiptRequest, request: Request) -> dict[str, int]:
    """Long-poll fallback for delivery/read receipts (the WebSocket sends a `receipt` frame)."""
    async with request.app.state.db.sessions() as session:
        identity = await _identity(session, body.token)
    if identity is None:
        raise HTTPException(401, "Unknown widget session. Start a new one with POST /api/v1/widget/session.")
    return {"updated": await record_receipt(request, identity, body.token, body.up_to, body.status)}


@api.post("/email")
async def leave_email(body: EmailRequest, request: Request) -> dict[str, Any]:
    """Offline mode: the shopper leaves an email address so the team can answer later."""
    email = body.email.strip()
    if not EMAIL_RE.match(email):
        raise HTTPException(
            422, f"{email!r} does not look like an email address. Check it and try again, e.g. name@example.com."
        )
    local, domain = email.rsplit("@", 1)
    email = f"{local}@{domain.lower()}"
    async with request.app.state.db.sessions() as session, session.begin():
        identity = await _identity(session, body.token)
        if identity is None:
            raise HTTPException(401, "Unknown widget session. Reload the page and try again.")
        customer = await session.get(Customer, identity.customer_id)
        assert customer is not None
        customer.email = email
    log.info("widget_email_saved", customer_id=identity.customer_id)
    return {"saved": True, "email": email}


@api.options("/{path:path}", include_in_schema=False)
async def preflight(path: str) -> Response:
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Accept",
            "Access-Control-Max-Age": "86400",
        },
    )


router.include_router(api)


# ---------------------------------------------------------------- WebSocket


class _Connection:
    """One widget WebSocket: a single writer queue, a live-event follower and a heartbeat."""

    def __init__(self, websocket: WebSocket, identity: ChannelIdentity, token: str) -> None:
        self.ws = websocket
        self.identity = identity
        self.token = token
        self.outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.conversation_id: int | None = None
        self.follower: asyncio.Task[None] | None = None
        self.last_sent_id = 0

    async def writer(self) -> None:
        while True:
            frame = await self.outgoing.get()
            if frame.get("type") == "message" and isinstance(frame.get("message"), dict):
                self.last_sent_id = max(self.last_sent_id, int(frame["message"].get("id", 0)))
            await self.ws.send_text(json.dumps(frame, default=str))

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            self.outgoing.put_nowait({"type": "ping"})

    async def follow(self, conversation_id: int) -> None:
        """Forward this conversation's live events, after a resync so that nothing falls in between."""
        try:
            async with live_events(self.ws.app.state.redis, conversation_id) as pubsub:
                await self.resync(self.last_sent_id)
                while True:
                    event = await next_event(pubsub)
                    if event.get("type") in FORWARDED_EVENTS:
                        self.outgoing.put_nowait(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Without live events the widget would wait forever: close, it reconnects and resyncs.
            log.warning("widget_events_lost", error=type(exc).__name__)
            with contextlib.suppress(Exception):
                await self.ws.close(code=1011)

    async def resync(self, after: int) -> None:
        async with self.ws.app.state.db.sessions() as session:
            for message in await messages_after(session, self.identity, after):
                self.outgoing.put_nowait({"type": "message", "message": message.model_dump(mode="json")})

    def switch_to(self, conversation_id: int) -> None:
        if conversation_id == self.conversation_id:
            return
        if self.follower is not None:
            self.follower.cancel()
        self.conversation_id = conversation_id
        self.follower = asyncio.create_task(self.follow(conversation_id))

    async def reader(self) -> None:
        while True:
            raw = await self.ws.receive_text()
            try:
                frame = json.loads(raw)
            except json.JSONDecodeError:
                self.outgoing.put_nowait({"type": "error", "code": "bad_frame", "detail": "Frames must be JSON."})
                continue
            if not isinstance(frame, dict):
                continue
            kind = frame.get("type")
            if kind == "pong" or kind == "ping":
                if kind == "ping":
                    self.outgoing.put_nowait({"type": "pong"})
                continue
            if kind == "receipt":
                up_to = frame.get("up_to")
                if isinstance(up_to, int) and not isinstance(up_to, bool):
                    await record_receipt(self.ws, self.identity, self.token, up_to, str(frame.get("status")))
                continue
            if kind != "message":
                continue
            client_id = str(frame.get("client_id") or "")
            try:
                message, _duplicate = await submit(
                    self.ws, self.identity, self.token, client_id, str(frame.get("text") or ""),
                    frame.get("payload") if isinstance(frame.get("payload"), str) else None,
                )
            except MessageRejected as exc:
                self.outgoing.put_nowait({"type": "error", "client_id": client_id, "code": exc.code,
                                          "detail": exc.detail})
                continue
            # A closed conversation means the pipeline opened a new one: follow it from now on.
            self.switch_to(message.conversation_id)
            self.outgoing.put_nowait({"type": "ack", "client_id": client_id,
                                      "message": message.model_dump(mode="json")})


@router.websocket("/ws/widget")
async def widget_socket(websocket: WebSocket, token: str = "", after: int = 0) -> None:
    async with websocket.app.state.db.sessions() as session:
        identity = await _identity(session, token)
        conversation_id = await _current_conversation(session, identity) if identity is not None else None
    await websocket.accept()
    if identity is None:
        # 4401 (after accepting, so the browser sees the code): the client starts a new session.
        await websocket.close(code=4401, reason="unknown widget session")
        return
    conn = _Connection(websocket, identity, token)
    conn.last_sent_id = max(after, 0)
    conn.outgoing.put_nowait({"type": "ready", "conversation_id": conversation_id,
                              "offline": await is_offline(websocket)})
    tasks = [asyncio.create_task(conn.writer()), asyncio.create_task(conn.heartbeat()),
             asyncio.create_task(conn.reader())]
    if conversation_id is not None:
        conn.switch_to(conversation_id)
    else:
        await conn.resync(conn.last_sent_id)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
                log.warning("widget_socket_error", error=type(exc).__name__)
    finally:
        running = [*tasks, *([conn.follower] if conn.follower is not None else [])]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()


# ---------------------------------------------------------------- assets and the demo storefront

_templates = Environment(loader=FileSystemLoader(WEB / "templates"), autoescape=select_autoescape(["html"]))

DEMO_PRODUCTS = (
    {"sku": "LL-LAMP-ARC-BLK", "name": "Arc desk lamp, black", "price": "$53.47", "image": "lamp.svg",
     "blurb": "Adjustable arm, warm LED, fits E27 bulbs."},
    {"sku": "LL-VASE-CERAMIC-S", "name": "Ceramic vase, small", "price": "$110.00", "image": "vase.svg",
     "blurb": "Hand-glazed stoneware from Jingdezhen."},
    {"sku": "LL-THROW-WOOL-GRY", "name": "Wool throw blanket, grey", "price": "$79.06", "image": "throw.svg",
     "blurb": "130 x 170 cm, soft merino blend."},
    {"sku": "LL-PLANTER-HANG", "name": "Hanging planter, macramé", "price": "$15.55", "image": "planter.svg",
     "blurb": "Cotton cord, holds pots up to 18 cm."},
)


def _public_base(request: Request) -> str:
    settings = getattr(request.app.state, "settings", None)
    configured = str(getattr(settings, "public_url", "") or "")
    return configured.rstrip("/") or str(request.base_url).rstrip("/")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
@router.get("/demo", response_class=HTMLResponse, include_in_schema=False)
async def storefront(request: Request) -> HTMLResponse:
    """The demo shop page, embedding the widget exactly as a seller would."""
    html = _templates.get_template("storefront.html").render(base_url=_public_base(request), products=DEMO_PRODUCTS)
    return HTMLResponse(html)


def _asset(path: Path, media_type: str) -> FileResponse:
    # Short cache: sellers embed the URL once, and fixes must reach their shoppers quickly.
    return FileResponse(path, media_type=media_type, headers={
        "Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"})


@router.get("/widget.js", include_in_schema=False)
async def widget_js() -> FileResponse:
    return _asset(STATIC / "widget.js", "text/javascript; charset=utf-8")


@router.get("/widget.css", include_in_schema=False)
async def widget_css() -> FileResponse:
    return _asset(STATIC / "widget.css", "text/css; charset=utf-8")


@router.get("/storefront/{name}", include_in_schema=False)
async def storefront_asset(name: str) -> FileResponse:
    allowed = {p.name: p for p in STOREFRONT_ASSETS.iterdir() if p.is_file()}
    if name not in allowed:
        raise HTTPException(404, f"no storefront asset named {name!r}")
    media = {".svg": "image/svg+xml", ".css": "text/css; charset=utf-8"}
    return _asset(allowed[name], media.get(allowed[name].suffix, "application/octet-stream"))
