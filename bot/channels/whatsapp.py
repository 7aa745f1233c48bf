"""WhatsApp Cloud API channel: verifies and parses Meta's webhooks, sends through the Graph API.

Only wire format lives here: signature check, payload <-> InboundMessage/status events, the Graph
API request shapes, the 24-hour customer-service window and what each Graph error code means.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import phonenumbers
import phonenumbers.timezone
import structlog
from babel.languages import get_official_languages
from fastapi import APIRouter, BackgroundTasks, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from bot.channels.base import (
    Attachment,
    InboundMessage,
    OutboundMessage,
    QuickReply,
    SendError,
    SendResult,
)
from bot.channels.formatting import markdown_to_whatsapp
from bot.deps import IngestDep, RedisDep, SettingsDep

log = structlog.get_logger(__name__)

NAME = "whatsapp"
WINDOW = timedelta(hours=24)
BUTTON_TITLE_MAX = 20
BUTTONS_MAX = 3
LIST_ROWS_MAX = 10
LIST_TITLE_MAX = 24
# The button that opens a list message, in the reply's language (at most 20 characters); others get English.
LIST_BUTTON = {"en": "Choose", "de": "Auswählen", "es": "Elegir", "fr": "Choisir", "it": "Scegli", "pt": "Escolher",
               "nl": "Kiezen", "ja": "選択する", "zh": "请选择", "ko": "선택", "pl": "Wybierz", "tr": "Seç"}
INTERACTIVE_BODY_MAX = 1024
TEXT_MAX = 4096

# Graph error codes (see Meta's "Error codes" reference).
RATE_LIMIT_CODES = {4, 80007, 130429, 131056}
REENGAGEMENT = 131047
UNDELIVERABLE = 131026
TOKEN_EXPIRED = 190

ALERTS_KEY = "nd:alerts"
ALERT_KEY_PREFIX = "nd:alert:"
ALERT_TTL_S = 600
MEDIA_KINDS = ("image", "document", "audio", "video", "sticker")


def last_inbound_key(phone_number_id: str, wa_id: str) -> str:
    return f"nd:wa:last_in:{phone_number_id}:{wa_id}"


# ---------------------------------------------------------------- inbound: signature and payload


def verify_signature(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """True when `X-Hub-Signature-256` is `sha256=<hex HMAC-SHA256 of the raw body with the app secret>`."""
    if not header or not header.startswith("sha256=") or not app_secret:
        return False
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def sign(raw_body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` header value Meta would send for this body."""
    return "sha256=" + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


class WhatsAppPayloadError(ValueError):
    """The webhook body is not a WhatsApp Cloud API notification; the message says where and what."""


@dataclass(frozen=True)
class StatusEvent:
    """A delivery status of one of our outbound messages."""

    external_id: str
    status: str  # sent | delivered | read | failed
    recipient: str
    timestamp: datetime
    error: str | None = None
    error_code: int | None = None


@dataclass
class ParsedWebhook:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    phone_number_ids: set[str] = field(default_factory=set)


def _require(obj: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict):
        raise WhatsAppPayloadError(f"{where}: expected an object")
    if key not in obj:
        raise WhatsAppPayloadError(f"{where}: missing '{key}'")
    value = obj[key]
    if not isinstance(value, kind):
        raise WhatsAppPayloadError(f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _timestamp(value: Any, where: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError):
        raise WhatsAppPayloadError(f"{where}.timestamp: expected Unix seconds, got {value!r}") from None


def _describe_error(errors: Any) -> tuple[str | None, int | None]:
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, None
    err = errors[0]
    code = err.get("code")
    title = err.get("title") or err.get("message") or "error"
    details = (err.get("error_data") or {}).get("details") if isinstance(err.get("error_data"), dict) else None
    text = f"{code} {title}" + (f": {details}" if details else "")
    return text, int(code) if isinstance(code, int | str) and str(code).isdigit() else None


def _parse_message(msg: dict[str, Any], names: dict[str, str], phone_number_id: str,
                   where: str) -> InboundMessage | None:
    wamid = _require(msg, "id", str, where)
    sender = _require(msg, "from", str, where)
    kind = _require(msg, "type", str, where)
    received_at = _timestamp(msg.get("timestamp", time.time()), where)
    text = ""
    payload: str | None = None
    attachments: list[Attachment] = []
    unreadable: list[str] = []
    meta: dict[str, Any] = {"wa_type": kind, "phone_number_id": phone_number_id}
    context = msg.get("context")
    if isinstance(context, dict) and context.get("id"):
        meta["reply_to"] = context["id"]

    if kind == "text":
        text = _require(_require(msg, "text", dict, where), "body", str, f"{where}.text")
    elif kind == "interactive":
        inter = _require(msg, "interactive", dict, where)
        itype = _require(inter, "type", str, f"{where}.interactive")
        if itype not in ("button_reply", "list_reply"):
            raise WhatsAppPayloadError(f"{where}.interactive.type: unknown reply type {itype!r}")
        reply = _require(inter, itype, dict, f"{where}.interactive")
        payload = _require(reply, "id", str, f"{where}.interactive.{itype}")
        text = str(reply.get("title", ""))
    elif kind == "button":
        # A tap on a template's quick-reply button.
        button = _require(msg, "button", dict, where)
        payload = str(button.get("payload") or button.get("text") or "")
        text = str(button.get("text", ""))
    elif kind in MEDIA_KINDS:
        media = _require(msg, kind, dict, where)
        caption = media.get("caption")
        attachments.append(Attachment(
            kind=kind, media_id=media.get("id"), filename=media.get("filename"),
            mime_type=media.get("mime_type"), caption=caption,
            extra={k: v for k, v in media.items() if k in ("sha256", "voice", "animated")},
        ))
        text = caption or ""
        # The bot reads text only; the engine answers politely or escalates.
        unreadable.append(kind)
    elif kind == "location":
        loc = _require(msg, "location", dict, where)
        lat, lon = loc.get("latitude"), loc.get("longitude")
        if not isinstance(lat, int | float) or not isinstance(lon, int | float):
            raise WhatsAppPayloadError(f"{where}.location: latitude and longitude must be numbers")
        label = ", ".join(str(loc[k]) for k in ("name", "address") if loc.get(k))
        attachments.append(Attachment(kind="location", caption=label or None,
                                      extra={"latitude": lat, "longitude": lon, **(
                                          {"url": loc["url"]} if loc.get("url") else {})}))
        text = label
    elif kind == "reaction":
        # An emoji on an earlier message is not something to answer.
        return None
    else:
        # contacts, order, system, unsupported, unknown ...: kept, flagged for the engine.
        unreadable.append(kind)
        err_text, _ = _describe_error(msg.get("errors"))
        if err_text:
            meta["wa_error"] = err_text
    if unreadable:
        meta["unreadable"] = unreadable
    return InboundMessage(
        channel=NAME, external_id=wamid, sender=sender, text=text, received_at=received_at,
        sender_name=names.get(sender), attachments=tuple(attachments), payload=payload, metadata=meta,
        timezone_hint=timezone_for_phone(sender), locale_hint=language_for_phone(sender),
    )


def language_for_phone(wa_id: str) -> str | None:
    """The language of the shopper's country, from their WhatsApp number, when the country speaks one:
    +34 -> es, +1 201 -> en, +81 -> ja; Switzerland, Belgium, Canada or India -> None. Only a hint: the bot
    uses it when the first message is too short to tell ("orden ND-100234")."""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse("+" + wa_id.lstrip("+")))
    except phonenumbers.NumberParseException:
        return None
    spoken = get_official_languages(region, de_facto=True) if region else ()
    return spoken[0] if len(spoken) == 1 else None


def timezone_for_phone(wa_id: str) -> str | None:
    """The shopper's time zone from their WhatsApp number, when its country (or area) has one clock:
    +49 -> Europe/Berlin, +1 201 -> America/New_York; an Australian or British mobile -> None."""
    try:
        number = phonenumbers.parse("+" + wa_id.lstrip("+"))
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in phonenumbers.timezone.time_zones_for_number(number) if z != "Etc/Unknown"]
    if not zones:
        return None
    now = datetime.now(UTC)
    try:
        offsets = {now.astimezone(ZoneInfo(z)).utcoffset() for z in zones}
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return zones[0] if len(offsets) == 1 else None


def parse_webhook(body: Any) -> ParsedWebhook:
    """Messages and status events of one webhook notification; raises WhatsAppPayloadError if malformed."""
    if not isinstance(body, dict):
        raise WhatsAppPayloadError("body: expected a JSON object")
    obj = body.get("object")
    if obj != "whatsapp_business_account":
        raise WhatsAppPayloadError(f"object: expected 'whatsapp_business_account', got {obj!r}")
    result = ParsedWebhook()
    for i, entry in enumerate(_require(body, "entry", list, "body")):
        for j, change in enumerate(_require(entry, "changes", list, f"entry[{i}]")):
            where = f"entry[{i}].changes[{j}]"
            value = _require(change, "value", dict, where)
            if change.get("field", "messages") != "messages":
                continue
            metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
            phone_number_id = str(metadata.get("phone_number_id", ""))
            if phone_number_id:
                result.phone_number_ids.add(phone_number_id)
            names: dict[str, str] = {}
            for k, contact in enumerate(value.get("contacts") or []):
                if isinstance(contact, dict) and contact.get("wa_id"):
                    profile = contact.get("profile")
                    if isinstance(profile, dict) and profile.get("name"):
                        names[str(contact["wa_id"])] = str(profile["name"])
                elif not isinstance(contact, dict):
                    raise WhatsAppPayloadError(f"{where}.value.contacts[{k}]: expected an object")
            messages = value.get("messages") or []
            if not isinstance(messages, list):
                raise WhatsAppPayloadError(f"{where}.value.messages: expected a list")
            for k, msg in enumerate(messages):
                parsed = _parse_message(msg, names, phone_number_id, f"{where}.value.messages[{k}]")
                if parsed is not None:
                    result.messages.append(parsed)
            statuses = value.get("statuses") or []
            if not isinstance(statuses, list):
                raise WhatsAppPayloadError(f"{where}.value.statuses: expected a list")
            for k, st in enumerate(statuses):
                w = f"{where}.value.statuses[{k}]"
                status = _require(st, "status", str, w)
                if status not in ("sent", "delivered", "read", "failed", "deleted", "warning"):
                    raise WhatsAppPayloadError(f"{w}.status: unknown status {status!r}")
                err_text, err_code = _describe_error(st.get("errors"))
                result.statuses.append(StatusEvent(
                    external_id=_require(st, "id", str, w), status=status,
                    recipient=str(st.get("recipient_id", "")),
                    timestamp=_timestamp(st.get("timestamp", time.time()), w),
                    error=err_text, error_code=err_code,
                ))
            if value.get("errors"):
                err_text, _ = _describe_error(value.get("errors"))
                log.error("whatsapp_webhook_error", error=err_text)
    return result


# ---------------------------------------------------------------- outbound: Graph API


@dataclass(frozen=True)
class WhatsAppConfig:
    phone_number_id: str
    access_token: str
    graph_base_url: str = "https://graph.facebook.com"
    api_version: str = "v21.0"
    template_name: str = ""
    template_language: str = "en_US"
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.phone_number_id:
            raise ValueError("WhatsApp needs NIGHTDESK_WHATSAPP_PHONE_NUMBER_ID (the Cloud API phone-number id)")
        if not self.access_token:
            raise ValueError("WhatsApp needs NIGHTDESK_WHATSAPP_ACCESS_TOKEN (a system-user token)")

    @property
    def messages_url(self) -> str:
        return f"{self.graph_base_url.rstrip('/')}/{self.api_version}/{self.phone_number_id}/messages"


@dataclass(frozen=True)
class WindowState:
    """The 24-hour customer-service window of one WhatsApp user, as the agent console shows it."""

    open: bool
    last_inbound_at: datetime | None
    closes_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"open": self.open,
                "last_inbound_at": self.last_inbound_at.isoformat() if self.last_inbound_at else None,
                "closes_at": self.closes_at.isoformat() if self.closes_at else None}


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def note_inbound(redis: Any, phone_number_id: str, wa_id: str, at: datetime) -> None:
    """Remember when the user last wrote; only ever moves forward (Meta may deliver out of order)."""
    key = last_inbound_key(phone_number_id, wa_id)
    current = await redis.get(key)
    if current is None or float(current) < at.timestamp():
        await redis.set(key, str(at.timestamp()), ex=int(timedelta(days=30).total_seconds()))


async def window_state(redis: Any, phone_number_id: str, wa_id: str, now: datetime | None = None) -> WindowState:
    """Whether free text may be sent to this user now, and when the window closes (for the agent console)."""
    raw = await redis.get(last_inbound_key(phone_number_id, wa_id))
    if raw is None:
        return WindowState(open=False, last_inbound_at=None, closes_at=None)
    last = datetime.fromtimestamp(float(raw), UTC)
    closes = last + WINDOW
    return WindowState(open=(now or _utcnow()) < closes, last_inbound_at=last, closes_at=closes)


class _GraphError(Exception):
    def __init__(self, http_status: int, code: int | None, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.retry_after = retry_after


class WhatsAppChannel:
    """Sends replies through the Cloud API, inside the 24-hour window as free text, outside as a template."""

    name = NAME

    def __init__(self, config: WhatsAppConfig, redis: Any, *, http: httpx.AsyncClient | None = None,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.config = config
        self.redis = redis
        self.clock = clock
        self._http = http or httpx.AsyncClient(timeout=config.timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the 24-hour window

    async def note_inbound(self, wa_id: str, at: datetime) -> None:
        await note_inbound(self.redis, self.config.phone_number_id, wa_id, at)

    async def window(self, wa_id: str) -> WindowState:
        return await window_state(self.redis, self.config.phone_number_id, wa_id, self.clock())

    # -- sending

    async def send(self, message: OutboundMessage) -> SendResult:
        state = await self.window(message.recipient)
        if not state.open:
            log.info("whatsapp_window_closed", conversation_id=message.conversation_id,
                     message_id=message.message_id)
            return await self._send_template(message)
        try:
            first_id = await self._send_free_form(message)
        except _GraphError as exc:
            if exc.code == REENGAGEMENT:
                # Meta's clock says the window is closed even though ours did not: trust Meta.
                log.info("whatsapp_reengagement_required", message_id=message.message_id)
                return await self._send_template(message)
            raise await self._send_error(exc) from None
        return SendResult(external_id=first_id, status="sent")

    async def mark_read(self, wamid: str) -> None:
        """Show the shopper the blue ticks on their message."""
        try:
            await self._post({"messaging_product": "whatsapp", "status": "read", "message_id": wamid})
        except _GraphError as exc:
            err = await self._send_error(exc)
            log.warning("whatsapp_mark_read_failed", code=err.code, error=str(err))

    async def _send_free_form(self, message: OutboundMessage) -> str:
        first_id: str | None = None
        if message.text or not message.attachments:
            first_id = await self._post(self._text_or_interactive(message))
        for att in message.attachments:
            body = self._attachment_body(message.recipient, att)
            if body is not None:
                att_id = await self._post(body)
                first_id = first_id or att_id
        assert first_id is not None
        return first_id

    async def _send_template(self, message: OutboundMessage) -> SendResult:
        if not self.config.template_name:
            raise SendError(
                "The shopper's 24-hour WhatsApp window is closed and no approved template is configured; "
                "set NIGHTDESK_WHATSAPP_TEMPLATE_NAME and NIGHTDESK_WHATSAPP_TEMPLATE_LANGUAGE.",
                retryable=False, code=str(REENGAGEMENT))
        body = {
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": message.recipient,
            "type": "template",
            "template": {"name": self.config.template_name,
                         "language": {"code": self.config.template_language}},
        }
        try:
            wamid = await self._post(body)
        except _GraphError as exc:
            raise await self._send_error(exc) from None
        return SendResult(external_id=wamid, status="sent")

    def _text_or_interactive(self, message: OutboundMessage) -> dict[str, Any]:
        base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": message.recipient}
        replies = message.quick_replies
        text = markdown_to_whatsapp(message.text)  # KB answers are Markdown; WhatsApp has its own marks
        if replies and len(text) <= INTERACTIVE_BODY_MAX:
            if len(replies) <= BUTTONS_MAX and all(len(r.title) <= BUTTON_TITLE_MAX for r in replies):
                return {**base, "type": "interactive", "interactive": {
                    "type": "button", "body": {"text": text},
                    "action": {"buttons": [{"type": "reply", "reply": {"id": r.payload[:256], "title": r.title}}
                                           for r in replies]}}}
            if len(replies) <= LIST_ROWS_MAX:
                return {**base, "type": "interactive", "interactive": {
                    "type": "list", "body": {"text": text},
                    "action": {"button": LIST_BUTTON.get((message.language or "en").split("-")[0].split("_")[0].lower(),
                                                         LIST_BUTTON["en"]),
                               "sections": [{"rows": [_list_row(r) for r in replies]}]}}}
        if replies:
            # More options than WhatsApp can show as buttons or a list: number them in the text.
            text = text + "\n\n" + "\n".join(f"{i}. {r.title}" for i, r in enumerate(replies, 1))
        return {**base, "type": "text", "text": {"body": text[:TEXT_MAX], "preview_url": False}}

    @staticmethod
    def _attachment_body(to: str, att: Attachment) -> dict[str, Any] | None:
        if att.kind == "location":
            return {"messaging_product": "whatsapp", "to": to, "type": "location", "location": {
                "latitude": att.extra.get("latitude"), "longitude": att.extra.get("longitude"),
                "name": att.caption or ""}}
        kind = att.kind if att.kind in ("image", "document", "audio", "video", "sticker") else "document"
        media: dict[str, Any] = {"link": att.url} if att.url else {"id": att.media_id}
        if not att.url and not att.media_id:
            return None
        if att.caption and kind in ("image", "document", "video"):
            media["caption"] = att.caption
        if att.filename and kind == "document":
            media["filename"] = att.filename
        return {"messaging_product": "whatsapp", "to": to, "type": kind, kind: media}

    async def _post(self, body: dict[str, Any]) -> str:
        try:
            resp = await self._http.post(self.config.messages_url, json=body, headers={
                "Authorization": f"Bearer {self.config.access_token}"})
        except httpx.HTTPError as exc:
            raise _GraphError(0, None, f"cannot reach the Graph API: {exc!r}", None) from exc
        retry_after = _retry_after(resp.headers.get("Retry-After"))
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if resp.status_code >= 400 or "error" in data:
            err = data.get("error") if isinstance(data.get("error"), dict) else {}
            code = err.get("code")
            details = (err.get("error_data") or {}).get("details") if isinstance(err.get("error_data"), dict) else None
            msg = str(err.get("message") or resp.reason_phrase or "Graph API error")
            if details:
                msg += f" ({details})"
            raise _GraphError(resp.status_code, int(code) if isinstance(code, int) else None, msg, retry_after)
        if body.get("status") == "read":
            return body["message_id"]
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages or "id" not in messages[0]:
            raise _GraphError(resp.status_code, None, f"Graph API answered without a message id: {data!r}", None)
        return str(messages[0]["id"])

    async def _send_error(self, exc: _GraphError) -> SendError:
        code = exc.code
        text = f"WhatsApp Graph API error {code or exc.http_status}: {exc}"
        if code == TOKEN_EXPIRED or exc.http_status == 401:
            await raise_operator_alert(
                self.redis, "whatsapp_token_expired",
                "The WhatsApp access token has expired or was revoked; replies are not going out. "
                "Create a new system-user token and set NIGHTDESK_WHATSAPP_ACCESS_TOKEN.",
                code=code)
            return SendError(text, retryable=False, code=str(code or exc.http_status))
        if code in RATE_LIMIT_CODES or exc.http_status == 429:
            # 131056 is the pair rate (about one message per 6 s to the same user).
            default = 6.0 if code == 131056 else 2.0
            return SendError(text, retryable=True, code=str(code or 429),
                             retry_after=exc.retry_after or default)
        if exc.http_status == 0 or exc.http_status >= 500:
            return SendError(text, retryable=True, code=str(code or exc.http_status),
                             retry_after=exc.retry_after)
        return SendError(text, retryable=False, code=str(code or exc.http_status))


STATUS_RETRY_DELAYS_S = (0.5, 2.0, 5.0, 15.0)


async def _record_status_later(ingest: Any, st: StatusEvent) -> None:
    for delay in STATUS_RETRY_DELAYS_S:
        await asyncio.sleep(delay)
        if await ingest.record_status(NAME, st.external_id, st.status, st.error):
            return
    log.info("whatsapp_status_for_unknown_message", wamid=st.external_id, status=st.status)


def _list_row(reply: QuickReply) -> dict[str, Any]:
    title = reply.title if len(reply.title) <= LIST_TITLE_MAX else reply.title[: LIST_TITLE_MAX - 1] + "…"
    row: dict[str, Any] = {"id": reply.payload[:200], "title": title}
    if title != reply.title:
        row["description"] = reply.title[:72]
    return row


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


async def raise_operator_alert(redis: Any, kind: str, message: str, **fields: Any) -> None:
    """An alert for the operators: an error log line, plus Redis entries the ops dashboard shows.

    `nd:alert:<kind>` holds the active alert (10 minutes); `nd:alerts` lists the last 200, one entry per
    occurrence window so that a burst of failing sends does not flood it.
    """
    log.error(kind, alert=message, **fields)
    entry = json.dumps({"kind": kind, "message": message, "at": _utcnow().isoformat(), **fields})
    try:
        if await redis.set(ALERT_KEY_PREFIX + kind, entry, nx=True, ex=ALERT_TTL_S):
            await redis.lpush(ALERTS_KEY, entry)
            await redis.ltrim(ALERTS_KEY, 0, 199)
    except Exception as exc:  # the alert must not hide the original failure
        log.error("operator_alert_not_stored", kind=kind, error=repr(exc))


def config_from(settings: Any) -> WhatsAppConfig:
    return WhatsAppConfig(
        phone_number_id=settings.whatsapp_phone_number_id,
        access_token=settings.whatsapp_access_token,
        graph_base_url=settings.whatsapp_graph_url,
        api_version=settings.whatsapp_api_version,
        template_name=settings.whatsapp_template_name,
        template_language=settings.whatsapp_template_language,
    )


def is_configured(settings: Any) -> bool:
    return bool(settings.whatsapp_phone_number_id and settings.whatsapp_access_token)


def build(state: Any) -> WhatsAppChannel | None:
    """The sending side from app.state (settings whatsapp_*, redis); None when WhatsApp is not configured."""
    if not is_configured(state.settings):
        return None
    return WhatsAppChannel(config_from(state.settings), state.redis)


# ---------------------------------------------------------------- webhook routes

router = APIRouter(prefix="/webhooks/whatsapp", tags=["whatsapp"])


@router.get("")
async def verify_subscription(request: Request, settings: SettingsDep) -> Response:
    """Meta's subscription handshake: echo hub.challenge when hub.verify_token matches."""
    params = request.query_params
    token = params.get("hub.verify_token", "")
    expected = settings.whatsapp_verify_token
    if (params.get("hub.mode") == "subscribe" and expected
            and hmac.compare_digest(token.encode(), expected.encode())):
        return PlainTextResponse(params.get("hub.challenge", ""))
    raise HTTPException(403, "verification failed: hub.mode must be 'subscribe' and hub.verify_token must "
                             "match NIGHTDESK_WHATSAPP_VERIFY_TOKEN")


@router.post("")
async def receive(request: Request, background: BackgroundTasks, settings: SettingsDep, ingest: IngestDep,
                  redis: RedisDep) -> JSONResponse:
    """Verify the signature over the raw body first; nothing is parsed or stored before that."""
    raw = await request.body()
    secret = settings.whatsapp_app_secret
    if not secret:
        raise HTTPException(503, "WhatsApp is not configured: set NIGHTDESK_WHATSAPP_APP_SECRET")
    header = request.headers.get("x-hub-signature-256")
    if not header:
        raise HTTPException(401, "missing X-Hub-Signature-256 header")
    if not verify_signature(raw, header, secret):
        log.warning("whatsapp_bad_signature")
        raise HTTPException(403, "X-Hub-Signature-256 does not match the body signed with the app secret")
    try:
        parsed = parse_webhook(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise HTTPException(400, f"body is not JSON: {exc}") from None
    except WhatsAppPayloadError as exc:
        raise HTTPException(400, f"not a WhatsApp Cloud API notification: {exc}") from None

    channel: WhatsAppChannel | None = getattr(request.app.state, "channels", {}).get(NAME)
    accepted = 0
    for msg in parsed.messages:
        number_id = str(msg.metadata.get("phone_number_id") or settings.whatsapp_phone_number_id)
        await note_inbound(redis, number_id, msg.sender, msg.received_at)
        # The console shows when free text stops being possible in this conversation.
        msg.metadata["window_closes_at"] = (msg.received_at + WINDOW).isoformat()
        result = await ingest.accept(msg)
        if not result.duplicate:
            accepted += 1
            if channel is not None:
                background.add_task(channel.mark_read, msg.external_id)
    for st in parsed.statuses:
        if not await ingest.record_status(NAME, st.external_id, st.status, st.error):
            # The status can beat the sender recording the wamid it just got back: try again shortly.
            background.add_task(_record_status_later, ingest, st)
    return JSONResponse({"ok": True, "accepted": accepted, "statuses": len(parsed.statuses)},
                        background=background)
