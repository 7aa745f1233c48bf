"""The agent console: its page, the queue and ticket API (permissions enforced by handoff.service), agent
replies through the shopper's channel, and live updates over Server-Sent Events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select

from bot.channels.base import Attachment
from bot.channels.formatting import markdown_to_html
from bot.deps import AdminUser, AgentUser
from bot.pipeline import ReplyDraft, announce_outbound, enqueue_reply
from bot.schemas import MessagePublic
from bot.store.models import ChannelIdentity, Conversation, Customer, DecisionTrace, Message
from handoff.canned import CannedResponses, UnknownVariable, canned_values
from handoff.context import KBSuggestion, TranscriptEntry, build_context_packet
from handoff.models import HandoffTicket
from handoff.queues import agent_channel, team_channel
from handoff.service import (
    AlreadyClaimed,
    AtCapacity,
    HandoffError,
    HandoffService,
    NotAllowed,
    TicketNotFound,
)
from handoff.translate import (
    DeepLTranslator,
    LibreTranslateTranslator,
    NoTranslator,
    TranslationUnavailable,
    Translator,
)
from handoff.triggers import Trigger

log = structlog.get_logger(__name__)
router = APIRouter(tags=["console"])
TEMPLATE = Path(__file__).resolve().parent.parent / "web" / "templates" / "console.html"
HEARTBEAT_S = 15.0

# Shipped defaults; a project's canned_responses.yml (same shape) replaces them.
DEFAULT_CANNED = {
    "tracking": {
        "en": {"title": "Tracking link", "body": "Hi {{customer.name}}, you can follow order {{order.number}} here: "
                                                 "{{order.tracking_url}}"},
        "de": {"title": "Sendungslink", "body": "Hallo {{customer.name}}, Ihre Bestellung {{order.number}} können "
                                                "Sie hier verfolgen: {{order.tracking_url}}"},
    },
    "apology": {
        "en": {"title": "Apology", "body": "Hi {{customer.name}}, I am sorry for the trouble. I am looking into it "
                                           "personally and will get back to you shortly."},
        "de": {"title": "Entschuldigung", "body": "Hallo {{customer.name}}, das tut mir leid. Ich kümmere mich "
                                                  "persönlich darum und melde mich gleich wieder."},
        "zh": {"title": "致歉", "body": "{{customer.name}}您好，非常抱歉给您带来不便。我会亲自跟进，稍后回复您。"},
    },
}


# --- wiring -----------------------------------------------------------------------------------------------

def handoff_service(state: Any) -> HandoffService:
    """The app's HandoffService. The runtime builds it and runs its team routers and SLA monitor
    (bot/runtime.py), so the console only uses it."""
    return state.runtime.handoff.service  # type: ignore[no-any-return]


async def _service(request: Request) -> HandoffService:
    return handoff_service(request.app.state)


HandoffDep = Annotated[HandoffService, Depends(_service)]


def _agent_id(user: Any) -> int:
    if user.agent_id is None:
        raise HTTPException(403, "the console needs an agent account: log in as an agent, not with the API token")
    return int(user.agent_id)


@contextlib.contextmanager
def _errors() -> Any:
    """Handoff errors as HTTP answers that say what to do."""
    try:
        yield
    except TicketNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except NotAllowed as exc:
        raise HTTPException(403, str(exc)) from exc
    except (AlreadyClaimed, AtCapacity) as exc:
        raise HTTPException(409, str(exc)) from exc
    except HandoffError as exc:
        raise HTTPException(409, str(exc)) from exc
    except UnknownVariable as exc:
        raise HTTPException(400, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc


def _translator(state: Any) -> Translator:
    settings = state.settings
    cached = getattr(state, "handoff_translator", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    translator: Translator
    if settings.translator == "libretranslate" and settings.translator_url:
        translator = LibreTranslateTranslator(settings.translator_url, settings.translator_api_key or None,
                                              timeout=settings.translator_timeout)
    elif settings.translator == "deepl" and settings.translator_api_key:
        translator = DeepLTranslator(settings.translator_api_key, url=settings.translator_url or None,
                                     timeout=settings.translator_timeout)
    else:
        translator = NoTranslator()
    state.handoff_translator = translator
    return translator


def _canned(state: Any) -> CannedResponses:
    import yaml

    path = Path(state.settings.project) / "canned_responses.yml"
    data = yaml.safe_load(path.read_text()) if path.exists() else DEFAULT_CANNED
    return CannedResponses.from_dict(data or DEFAULT_CANNED, state.settings.fallback_language)


# --- pages and reads --------------------------------------------------------------------------------------

@router.get("/console", response_class=HTMLResponse, include_in_schema=False)
async def console_page() -> HTMLResponse:
    return HTMLResponse(TEMPLATE.read_text(encoding="utf-8"))


def _ticket_view(ticket: HandoffTicket, now: Any) -> dict[str, Any]:
    data = ticket.to_dict()
    deadline = ticket.active_deadline()
    data["seconds_left"] = int((deadline[1] - now).total_seconds()) if deadline else None
    return data


@router.get("/api/v1/console/me")
async def me(user: AgentUser, service: HandoffDep) -> dict[str, Any]:
    with _errors():
        agent = await service.agent(_agent_id(user))
    return {"id": agent.id, "login": agent.login, "display_name": agent.display_name, "roles": agent.roles,
            "languages": agent.languages, "channels": agent.channels, "team": agent.team.name,
            "max_open_threads": agent.max_open_threads}


@router.get("/api/v1/console/team")
async def team(user: AgentUser, service: HandoffDep) -> dict[str, Any]:
    with _errors():
        return {"members": await service.team_members(_agent_id(user))}


@router.get("/api/v1/console/tickets")
async def tickets(user: AgentUser, service: HandoffDep) -> dict[str, Any]:
    with _errors():
        rows = await service.tickets_for(_agent_id(user))
    now = service.clock.now()
    return {"tickets": [_ticket_view(t, now) for t in rows]}


@router.get("/api/v1/console/tickets/{ticket_id}")
async def ticket_detail(ticket_id: int, user: AgentUser, service: HandoffDep, request: Request) -> dict[str, Any]:
    agent_id = _agent_id(user)
    with _errors():
        ticket = await service.ticket(agent_id, ticket_id)
        events = await service.events(agent_id, ticket_id)
        agent = await service.agent(agent_id)
    state = request.app.state
    async with state.db.sessions() as session:
        conversation = await session.get(Conversation, int(ticket.conversation_id))
        customer = await session.get(Customer, conversation.customer_id) if conversation else None
        conv_ids = [conversation.id] if conversation else []
        if customer is not None:
            conv_ids = list((await session.execute(
                select(Conversation.id).where(Conversation.customer_id == customer.id))).scalars())
        messages = list((await session.execute(
            select(Message).where(Message.conversation_id.in_(conv_ids), Message.status != "stored")
            .order_by(Message.id).limit(500))).scalars()) if conv_ids else []
        traces = list((await session.execute(
            select(DecisionTrace).where(DecisionTrace.conversation_id.in_(conv_ids))
            .order_by(DecisionTrace.id))).scalars()) if conv_ids else []
    trace_by_message = {t.inbound_message_id: t.trace for t in traces}
    translator = _translator(state)
    transcript = []
    translations: dict[int, dict[str, Any]] = {}
    for m in messages:
        author = "shopper" if m.direction == "in" else ("bot" if m.author == "bot" else "agent")
        translation = None
        if (author == "shopper" and m.text and not isinstance(translator, NoTranslator)
                and (m.language or ticket.language) not in agent.languages and agent.languages):
            try:
                translation = (await translator.translate(m.text, agent.languages[0], m.language)).text
            except TranslationUnavailable as exc:
                translations[m.id] = {"error": exc.reason}
        if translation:
            translations[m.id] = {"text": translation}
        transcript.append(TranscriptEntry(m.created_at, m.channel, author, m.text, m.language, translation,
                                          trace_by_message.get(m.id)))
    last_trace = traces[-1].trace if traces else {}
    suggestions = _kb_suggestions(state, [e.text for e in transcript if e.author == "shopper"], ticket.language)
    customer_info = {"id": ticket.customer_id, "name": customer.display_name if customer else None,
                     "email": customer.email if customer else None, "phone": customer.phone if customer else None}
    orders = await _customer_orders(state, ticket, conv_ids)
    packet = build_context_packet(
        transcript=transcript, parse=None, triggers=[Trigger(**t) for t in ticket.triggers],
        customer=customer_info, orders=orders,
        kb_suggestions=suggestions, language=ticket.language, ticket_id=ticket.id)
    context = packet.to_dict()
    decision = last_trace.get("decision", {}) if isinstance(last_trace, dict) else {}
    context["intent"] = decision.get("intent")
    context["intent_confidence"] = decision.get("confidence")
    context["entities"] = last_trace.get("entities", [])
    context["sentiment"] = last_trace.get("sentiment", {})
    context["channel_rules"] = await _channel_rules(state, messages, conv_ids)
    return {
        "ticket": _ticket_view(ticket, service.clock.now()),
        "events": [e.to_dict() for e in events],
        # The bot's KB answers are Markdown: `html` is them rendered (HTML typed into them stays escaped text).
        "messages": [{**MessagePublic.of(m).model_dump(mode="json"), "translation": translations.get(m.id),
                      "decision": trace_by_message.get(m.id),
                      "html": markdown_to_html(m.text) if m.author == "bot" and m.text else None} for m in messages],
        "context": context,
        "canned": _canned_for(state, ticket, customer_info, conversation, orders),
    }


async def _customer_orders(state: Any, ticket: HandoffTicket, conv_ids: list[int]) -> list[dict[str, Any]]:
    """The customer's orders from the store connector: the ticket's order and those placed with contacts
    the customer's channels prove (email senders, WhatsApp numbers)."""
    from actions.registry import get_context
    from actions.store import OrderNotFound, StoreError

    try:
        store = get_context().store
    except Exception:
        return []
    found: dict[str, Any] = {}
    try:
        if ticket.order_number:
            with contextlib.suppress(OrderNotFound):
                order = await store.get_order(ticket.order_number)
                found[order.number] = order
        async with state.db.sessions() as session:
            identities = list((await session.execute(
                select(ChannelIdentity).join(Conversation, Conversation.identity_id == ChannelIdentity.id)
                .where(Conversation.id.in_(conv_ids)))).scalars()) if conv_ids else []
        for identity in identities:
            if identity.channel in ("email", "amazon"):
                orders = await store.find_orders(email=identity.address)
            elif identity.channel == "whatsapp":
                orders = await store.find_orders(phone=identity.address if identity.address.startswith("+")
                                                 else f"+{identity.address}")
            else:
                continue
            for order in orders:
                found.setdefault(order.number, order)
    except StoreError:
        return [{"error": "the store could not be reached"}]
    out = []
    for order in sorted(found.values(), key=lambda o: o.created_at, reverse=True)[:10]:
        shipment = order.shipments[-1] if order.shipments else None
        out.append({"number": order.number, "status": order.status, "total": f"{order.total} {order.currency}",
                    "created": order.created_at.date().isoformat(),
                    "carrier": shipment.carrier if shipment else None,
                    "tracking_url": shipment.tracking_url if shipment and (shipment.tracking_url or "").startswith(
                        ("https://", "http://")) else None})
    return out


async def _channel_rules(state: Any, messages: list[Message], conv_ids: list[int]) -> list[dict[str, Any]]:
    """Deadlines the shopper's channels impose on the agent: WhatsApp's 24-hour window, Amazon's 24-hour rule."""
    from bot.channels.whatsapp import window_state

    rules: list[dict[str, Any]] = []
    last_amazon = next((m for m in reversed(messages) if m.channel == "amazon" and m.direction == "in"), None)
    if last_amazon is not None and (last_amazon.payload or {}).get("reply_deadline"):
        rules.append({"channel": "amazon", "reply_by": last_amazon.payload["reply_deadline"],
                      "rule": "Amazon expects a reply within 24 hours"})
    settings = state.settings
    if settings.whatsapp_phone_number_id:
        async with state.db.sessions() as session:
            numbers = list((await session.execute(
                select(ChannelIdentity.address).join(Conversation, Conversation.identity_id == ChannelIdentity.id)
                .where(Conversation.id.in_(conv_ids), ChannelIdentity.channel == "whatsapp"))).scalars())
        for number in set(numbers):
            window = await window_state(state.redis, settings.whatsapp_phone_number_id, number.lstrip("+"))
            rules.append({"channel": "whatsapp", "window_open": window.open,
                          "closes_at": window.closes_at.isoformat() if window.closes_at else None,
                          "rule": "free text only inside the 24-hour window; a template outside it"})
    return rules


def _kb_suggestions(state: Any, shopper_texts: list[str], language: str) -> list[KBSuggestion]:
    """KB articles for what the shopper last wrote, through the runtime's KB search (if loaded)."""
    knowledge = getattr(getattr(state, "runtime", None), "knowledge", None)
    query = " ".join(shopper_texts[-2:]).strip()
    if knowledge is None or not query:
        return []
    try:
        answer = knowledge.search(query, language)
    except Exception:
        log.exception("console_kb_search_failed")
        return []
    return [KBSuggestion(h.article_id, h.version, h.title, h.locale, h.answer, float(h.confidence))
            for h in answer.hits[:3]]


def _canned_for(state: Any, ticket: HandoffTicket, customer: dict[str, Any], conversation: Conversation | None,
                orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    slots = (conversation.state or {}).get("slots", {}) if conversation else {}
    number = ticket.order_number or slots.get("verified_order") or slots.get("order_number")
    values = canned_values(customer, number, orders)
    out = []
    for canned in _canned(state).for_locale(ticket.language):
        try:
            out.append({"key": canned.key, "title": canned.title, "text": canned.render(values), "error": None})
        except UnknownVariable as exc:
            out.append({"key": canned.key, "title": canned.title, "text": canned.body, "error": str(exc)})
    return out


# --- agent actions ----------------------------------------------------------------------------------------

class AttachmentIn(BaseModel):
    url: str = Field(max_length=1000, description="as returned by POST .../attachments")
    filename: str = Field(max_length=200)
    mime_type: str = Field(max_length=100)


class ReplyBody(BaseModel):
    text: str = Field(default="", max_length=4000)
    translate: bool = Field(default=False, description="machine-translate into the shopper's language first")
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=5)

    @model_validator(mode="after")
    def _something_to_send(self) -> ReplyBody:
        if not self.text.strip() and not self.attachments:
            raise ValueError("write a reply or attach a file")
        return self


UPLOAD_MAX_BYTES = 10 * 1024 * 1024
UPLOAD_TYPES = {"image/png": "image", "image/jpeg": "image", "image/gif": "image", "image/webp": "image",
                "application/pdf": "document", "text/plain": "document", "text/csv": "document"}
UPLOAD_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
                     "application/pdf": ".pdf", "text/plain": ".txt", "text/csv": ".csv"}


class NoteBody(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class SnoozeBody(BaseModel):
    minutes: int = Field(ge=1, le=7 * 24 * 60)


class ReassignBody(BaseModel):
    agent_id: int


class CloseBody(BaseModel):
    note: str = ""


async def _set_owner(request: Request, ticket: HandoffTicket, owner: str) -> None:
    async with request.app.state.db.sessions() as session, session.begin():
        conversation = await session.get(Conversation, int(ticket.conversation_id))
        if conversation is None:
            return
        conversation.owner = owner
        state = dict(conversation.state or {})
        if owner == "bot":
            state.pop("ticket_id", None)
        else:
            state["ticket_id"] = ticket.id
        conversation.state = state


@router.post("/api/v1/console/tickets/{ticket_id}/claim")
async def claim(ticket_id: int, user: AgentUser, service: HandoffDep, request: Request) -> dict[str, Any]:
    with _errors():
        ticket = await service.claim(_agent_id(user), ticket_id)
    await _set_owner(request, ticket, "human")
    return _ticket_view(ticket, service.clock.now())


@router.post("/api/v1/console/tickets/{ticket_id}/release")
async def release(ticket_id: int, user: AgentUser, service: HandoffDep) -> dict[str, Any]:
    with _errors():
        ticket = await service.release(_agent_id(user), ticket_id)
    return _ticket_view(ticket, service.clock.now())


@router.post("/api/v1/console/tickets/{ticket_id}/reassign")
async def reassign(ticket_id: int, body: ReassignBody, user: AgentUser, service: HandoffDep) -> dict[str, Any]:
    with _errors():
        ticket = await service.reassign(_agent_id(user), ticket_id, body.agent_id)
    return _ticket_view(ticket, service.clock.now())


@router.post("/api/v1/console/tickets/{ticket_id}/reply")
async def reply(ticket_id: int, body: ReplyBody, user: AgentUser, service: HandoffDep,
                request: Request) -> dict[str, Any]:
    agent_id = _agent_id(user)
    with _errors():
        ticket = await service.ticket(agent_id, ticket_id)
    text, original = body.text, None
    public = request.app.state.settings.effective_public_url
    attachments = []
    for a in body.attachments:
        if not a.url.startswith(f"{public}/files/uploads/"):
            raise HTTPException(400, f"attachment {a.filename!r} was not uploaded here; upload it first")
        attachments.append(Attachment(kind=UPLOAD_TYPES.get(a.mime_type, "document"), url=a.url,
                                      filename=a.filename, mime_type=a.mime_type))
    if body.translate and text.strip():
        try:
            translated = await _translator(request.app.state).translate(body.text, ticket.language)
        except TranslationUnavailable as exc:
            raise HTTPException(502, f"not sent: translation failed ({exc.reason}); send it untranslated or "
                                     "try again") from exc
        text, original = translated.text, body.text
    with _errors():
        ticket = await service.record_reply(agent_id, ticket_id, text, original=original)
    state = request.app.state
    async with state.db.sessions() as session, session.begin():
        conversation = await session.get(Conversation, int(ticket.conversation_id))
        if conversation is None:
            raise HTTPException(404, f"conversation {ticket.conversation_id} of this ticket no longer exists")
        conversation.owner = "human"
        message = await enqueue_reply(session, conversation, ReplyDraft(text=text, language=ticket.language,
                                                                        author=f"agent:{user.login}",
                                                                        attachments=attachments))
        if original:
            message.payload = {**(message.payload or {}), "original": original}
    await announce_outbound(state.redis, state.events, [message])
    return {"ticket": _ticket_view(ticket, service.clock.now()), "message": MessagePublic.of(message).model_dump(
        mode="json"), "original": original}


@router.post("/api/v1/console/tickets/{ticket_id}/attachments")
async def upload_attachment(ticket_id: int, user: AgentUser, service: HandoffDep, request: Request,
                            file: UploadFile) -> dict[str, Any]:
    """Keep a file an agent wants to send; the reply then links it (channels attach or link it)."""
    with _errors():
        await service.ticket(_agent_id(user), ticket_id)
    mime = (file.content_type or "").split(";")[0].strip().lower()
    if mime not in UPLOAD_TYPES:
        raise HTTPException(415, f"cannot send files of type {mime or 'unknown'}; use "
                                 f"{', '.join(sorted(UPLOAD_TYPES))}")
    data = await file.read(UPLOAD_MAX_BYTES + 1)
    if len(data) > UPLOAD_MAX_BYTES:
        raise HTTPException(413, f"the file is larger than {UPLOAD_MAX_BYTES // (1024 * 1024)} MB")
    if not data:
        raise HTTPException(400, "the file is empty")
    # The extension follows the checked type, so a file is never served as something else (e.g. HTML).
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", (file.filename or "file").rsplit(".", 1)[0]).strip("_")[:80] or "file"
    name = stem + UPLOAD_EXTENSIONS[mime]
    token = secrets.token_urlsafe(18)
    folder = request.app.state.settings.var_dir / "uploads" / token
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread((folder / name).write_bytes, data)
    url = f"{request.app.state.settings.effective_public_url}/files/uploads/{token}/{name}"
    return {"url": url, "filename": name, "mime_type": mime, "size": len(data)}


@router.post("/api/v1/console/tickets/{ticket_id}/note")
async def note(ticket_id: int, body: NoteBody, user: AgentUser, service: HandoffDep) -> dict[str, Any]:
    with _errors():
        ticket = await service.add_note(_agent_id(user), ticket_id, body.text)
    return _ticket_view(ticket, service.clock.now())


@router.post("/api/v1/console/tickets/{ticket_id}/snooze")
async def snooze(ticket_id: int, body: SnoozeBody, user: AgentUser, service: HandoffDep) -> dict[str, Any]:
    with _errors():
        ticket = await service.snooze(_agent_id(user), ticket_id,
                                      service.clock.now() + timedelta(minutes=body.minutes))
    return _ticket_view(ticket, service.clock.now())


@router.post("/api/v1/console/tickets/{ticket_id}/resolve")
async def resolve(ticket_id: int, body: CloseBody, user: AgentUser, service: HandoffDep,
                  request: Request) -> dict[str, Any]:
    with _errors():
        ticket = await service.resolve(_agent_id(user), ticket_id, body.note)
    await _set_owner(request, ticket, "bot")
    return _ticket_view(ticket, service.clock.now())


@router.post("/api/v1/console/tickets/{ticket_id}/hand_back")
async def hand_back(ticket_id: int, body: CloseBody, user: AgentUser, service: HandoffDep,
                    request: Request) -> dict[str, Any]:
    with _errors():
        ticket = await service.hand_back(_agent_id(user), ticket_id, body.note)
    await _set_owner(request, ticket, "bot")
    return _ticket_view(ticket, service.clock.now())


# --- administration: teams, agents, manual escalation -----------------------------------------------------

class TeamBody(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    timezone: str = "UTC"
    hours: dict[str, list[str]] = Field(default_factory=dict, description='{"mon": ["09:00-18:00"], ...}')
    holidays: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    pause_sla_outside_hours: bool = True


class AgentBody(BaseModel):
    login: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=8, max_length=256)
    team: str
    display_name: str | None = None
    roles: list[str] = Field(default_factory=lambda: ["agent"])
    languages: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    max_open_threads: int = Field(default=5, ge=1, le=100)


class EscalateBody(BaseModel):
    conversation_id: int
    reason: str = Field(default="escalated by staff", max_length=300)
    priority_hint: str = Field(default="P3", pattern=r"^P[1-4]$")
    trigger: str = Field(default="manual", max_length=40)
    order_number: str | None = None
    team: str | None = None
    language: str | None = Field(default=None, description="the shopper's language, if staff know it better")


@router.post("/api/v1/console/teams", status_code=201)
async def create_team(body: TeamBody, _admin: AdminUser, service: HandoffDep) -> dict[str, Any]:
    with _errors():
        team = await service.create_team(body.name, timezone=body.timezone, hours=body.hours,
                                         holidays=body.holidays, languages=body.languages,
                                         pause_sla_outside_hours=body.pause_sla_outside_hours)
    return {"id": team.id, "name": team.name}


@router.post("/api/v1/console/agents", status_code=201)
async def create_agent(body: AgentBody, _admin: AdminUser, service: HandoffDep) -> dict[str, Any]:
    with _errors():
        agent = await service.create_agent(body.login, body.password, body.team, display_name=body.display_name,
                                           roles=body.roles, languages=body.languages, channels=body.channels,
                                           regions=body.regions, max_open_threads=body.max_open_threads)
    return {"id": agent.id, "login": agent.login}


async def _customer_phones(session: Any, customer_id: int) -> list[str]:
    """The customer's phone numbers (profile, WhatsApp identities), for the ticket's region."""
    customer = await session.get(Customer, customer_id)
    numbers = list((await session.execute(select(ChannelIdentity.address).where(
        ChannelIdentity.customer_id == customer_id, ChannelIdentity.channel == "whatsapp"))).scalars())
    return [n for n in [customer.phone if customer else None, *numbers] if n]


@router.post("/api/v1/console/escalations", status_code=201)
async def escalate(body: EscalateBody, _admin: AdminUser, service: HandoffDep, request: Request) -> dict[str, Any]:
    """Open (or join) a ticket for a conversation by hand: for integrations and staff."""
    async with request.app.state.db.sessions() as session, session.begin():
        conversation = await session.get(Conversation, body.conversation_id)
        if conversation is None:
            raise HTTPException(404, f"conversation {body.conversation_id} does not exist")
        conversation.owner = "human"
        customer_id, channel = conversation.customer_id, conversation.channel
        language = body.language or conversation.language or request.app.state.settings.fallback_language
        timezone = conversation.timezone
        slots = (conversation.state or {}).get("slots", {})
        order_for_region = body.order_number or slots.get("verified_order") or slots.get("order_number")
        phones = await _customer_phones(session, customer_id)
    desk = request.app.state.runtime.handoff
    region = await desk.region_for(order_for_region, phones) if desk is not None else None
    with _errors():
        result = await service.escalate(
            customer_id=str(customer_id), conversation_id=str(body.conversation_id), channel=channel,
            language=language, triggers=[Trigger(body.trigger, body.reason, body.priority_hint)],
            order_number=body.order_number, region=region, team=body.team, shopper_timezone=timezone)
    async with request.app.state.db.sessions() as session, session.begin():
        conversation = await session.get(Conversation, body.conversation_id)
        if conversation is not None:
            conversation.state = {**(conversation.state or {}), "ticket_id": result.ticket["id"]}
    return {**result.to_trace(), "acknowledgement": result.acknowledgement}


# --- live updates -----------------------------------------------------------------------------------------

@router.get("/api/v1/console/stream")
async def stream(request: Request, user: AgentUser, service: HandoffDep) -> StreamingResponse:
    """Server-Sent Events: `ticket_routed` (new work for this agent), `queue` (refresh the list),
    `customer_message`, `sla_warning`, `sla_breach`. Keeps the agent online while connected."""
    agent_id = _agent_id(user)
    with _errors():
        agent = await service.agent(agent_id)
    team = agent.team.name
    redis = request.app.state.redis

    async def events() -> AsyncIterator[bytes]:
        pubsub = redis.pubsub()
        await pubsub.subscribe(agent_channel(agent_id), team_channel(team))
        try:
            await service.heartbeat(agent_id)
            yield b"event: hello\ndata: {}\n\n"
            loop = asyncio.get_running_loop()
            next_beat = loop.time() + HEARTBEAT_S
            while not await request.is_disconnected():
                raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if loop.time() >= next_beat:
                    await service.heartbeat(agent_id)
                    next_beat = loop.time() + HEARTBEAT_S
                    yield b": keep-alive\n\n"
                if not raw:
                    continue
                data = raw["data"].decode() if isinstance(raw["data"], bytes) else raw["data"]
                event = json.loads(data)
                channel = raw["channel"].decode() if isinstance(raw["channel"], bytes) else raw["channel"]
                if channel == team_channel(team):
                    # Team events only say "something changed": the list is re-read through the permission check.
                    ticket = event.get("ticket") or {}
                    payload = {"type": "queue", "ticket_id": ticket.get("id")}
                    yield f"event: queue\ndata: {json.dumps(payload)}\n\n".encode()
                else:
                    yield f"event: {event.get('type', 'message')}\ndata: {data}\n\n".encode()
        finally:
            # Presence simply expires (60 s): a page reload must not hand the agent's tickets to others.
            await pubsub.unsubscribe()
            await pubsub.aclose()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
