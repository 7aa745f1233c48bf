"""Email channel: IMAP IDLE in (aioimaplib), SMTP out (aiosmtplib), with threading and no auto-reply loops.

Amazon buyer messages arrive here too, relayed by Amazon's mail system; they become channel "amazon".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, make_msgid, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

import aioimaplib
import aiosmtplib
import structlog
from sqlalchemy import select

from bot.channels.base import Attachment, InboundMessage, OutboundMessage, SendError, SendResult
from bot.channels.formatting import markdown_to_html, markdown_to_plain
from bot.store.models import Conversation, Message

log = structlog.get_logger(__name__)

AMAZON_REPLY_WINDOW = timedelta(hours=24)
THREAD_TTL_S = int(timedelta(days=180).total_seconds())
_MSGID = re.compile(r"<[^<>\s]+>")

# ---------------------------------------------------------------- text: HTML, quotes, signatures


class _HTMLToText(HTMLParser):
    """HTML mail body to plain text; quoted blocks come out as "> " lines so the quote stripper sees them."""

    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "hr"}
    SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.skip = 0
        self.quote = 0
        self.divs: list[bool] = []  # for each open <div>: does it start a quoted block?

    def _newline(self) -> None:
        if self.lines[-1].strip():
            self.lines.append("")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = dict(attrs).get("class") or ""
        quoting = tag == "div" and ("gmail_quote" in classes or "moz-cite-prefix" in classes)
        if tag == "div":
            self.divs.append(quoting)
        if tag in self.SKIP:
            self.skip += 1
        elif tag == "blockquote" or quoting:
            self._newline()
            self.quote += 1
        elif tag in self.BLOCK:
            self._newline()
        if tag == "li":
            self.lines[-1] += "- "

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "blockquote" or (tag == "div" and self.divs and self.divs.pop()):
            self.quote = max(0, self.quote - 1)
            self._newline()
        elif tag in self.BLOCK:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        text = re.sub(r"\s+", " ", data)
        if not text.strip() and not self.lines[-1]:
            return
        if self.quote and not self.lines[-1].startswith(">"):
            self.lines[-1] = "> " * self.quote + self.lines[-1]
        self.lines[-1] += text

    def text(self) -> str:
        return "\n".join(line.strip() for line in self.lines).strip()


def html_to_text(markup: str) -> str:
    parser = _HTMLToText()
    parser.feed(markup)
    parser.close()
    return parser.text()


# A line that starts the quoted original in the usual clients and languages.
_QUOTE_HEADERS = [
    re.compile(r"^On\b.{0,300}\bwrote:\s*$", re.S),  # Gmail, Apple Mail, Thunderbird (en)
    re.compile(r"^Am\b.{0,300}\bschrieb\b.{0,200}:\s*$", re.S),  # de
    re.compile(r"^Le\b.{0,300}\ba écrit\s*:\s*$", re.S),  # fr
    re.compile(r"^El\b.{0,300}\bescribió:\s*$", re.S),  # es
    re.compile(r"^Il giorno\b.{0,300}\bha scritto:\s*$", re.S),  # it
    re.compile(r"^Op\b.{0,300}\bschreef\b.{0,200}:\s*$", re.S),  # nl
    re.compile(r"^-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original)\s*-{2,}\s*$",
               re.I),
    re.compile(r"^_{20,}\s*$"),  # Outlook's rule above the "From: ... Sent: ..." block
]
_OUTLOOK_FROM = re.compile(r"^(From|Von|De|Da):\s", re.I)
_OUTLOOK_NEXT = re.compile(r"^(Sent|Date|Gesendet|Datum|Envoyé|Enviado|Inviato|To|An):\s", re.I)
_MOBILE_SIG = re.compile(r"^(Sent from my \w+|Von meinem \w+ gesendet|Envoyé de mon \w+)", re.I)


def strip_quotes_and_signature(text: str) -> str:
    """The new part of a reply: without the quoted original, "> " lines and the "-- " signature."""
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if any(p.match(stripped) for p in _QUOTE_HEADERS):
            break
        # Gmail wraps a long quote header over two lines ("On Mon, ... <a@b>" / "wrote:").
        if i + 1 < len(lines) and lines[i + 1].strip().endswith(":") and any(
                p.match(stripped + " " + lines[i + 1].strip()) for p in _QUOTE_HEADERS[:6]):
            break
        if _OUTLOOK_FROM.match(stripped) and i + 1 < len(lines) and _OUTLOOK_NEXT.match(lines[i + 1].strip()):
            break
        if line.rstrip("\n") in ("-- ", "--") or _MOBILE_SIG.match(stripped):
            break
        if stripped.startswith(">"):
            continue
        out.append(line.rstrip())
    return "\n".join(out).strip()


# ---------------------------------------------------------------- headers: auto-replies, threading


def auto_reply_reason(msg: EmailMessage) -> str | None:
    """Why this mail must get no answer (a robot wrote it), or None when a person did."""
    auto = (msg.get("Auto-Submitted") or "").strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = (msg.get("Precedence") or "").strip().lower()
    if precedence in ("bulk", "list", "junk", "auto_reply"):
        return f"Precedence: {precedence}"
    for header in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        value = (msg.get(header) or "").strip().lower()
        if header == "X-Auto-Response-Suppress":
            # Set by Exchange on its own automatic messages (OOF, receipts).
            if value in ("all", "oof", "autoreply") and msg.get("X-MS-Exchange-Generated-Message-Source"):
                return f"{header}: {value}"
        elif value:
            return f"{header}: {value}"
    if msg.get("List-Id") or msg.get("List-Unsubscribe"):
        return "mailing list"
    _, sender = _first_address(msg.get("From"))
    local = sender.split("@")[0].lower()
    if local in ("mailer-daemon", "postmaster") or re.fullmatch(r"no[-_.]?reply|do[-_.]?not[-_.]?reply", local):
        return f"robot sender {sender}"
    if (msg.get_content_type() == "multipart/report"
            or (msg.get("Content-Type") or "").lower().startswith("multipart/report")):
        return "delivery report"
    return None


def _first_address(value: str | None) -> tuple[str, str]:
    pairs = getaddresses([value or ""])
    for name, addr in pairs:
        if addr:
            return name, addr.strip().lower()
    return "", ""


def message_ids(value: str | None) -> list[str]:
    return _MSGID.findall(value or "")


def _bare(msgid: str) -> str:
    return msgid.strip().strip("<>")


# ---------------------------------------------------------------- parsing one mail


@dataclass(frozen=True)
class EmailSettings:
    """Everything the email and Amazon channels need, validated once."""

    imap_host: str = ""
    imap_port: int = 993
    imap_ssl: bool = True
    username: str = ""
    password: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: str = ""
    shop_address: str = ""
    shop_name: str = ""
    signature: str = ""
    amazon_relay_domains: tuple[str, ...] = ("marketplace.amazon.com",)
    amazon_seller_address: str = ""
    poll_interval: float = 30.0
    idle_timeout: float = 25 * 60.0  # RFC 2177: re-issue IDLE before 29 minutes
    mailbox: str = "INBOX"

    @property
    def account_key(self) -> str:
        return f"{self.username or self.shop_address}@{self.imap_host}:{self.imap_port}/{self.mailbox}"


@dataclass(frozen=True)
class IgnoredMail:
    message_id: str
    reason: str


@dataclass
class ParsedMail:
    message: InboundMessage
    references: list[str] = field(default_factory=list)


def parse_mail(raw: bytes, settings: EmailSettings, *, thread_lookup: dict[str, str] | None = None
               ) -> ParsedMail | IgnoredMail:
    """One RFC 5322 mail as an InboundMessage on channel email or amazon, or why it gets no answer."""
    msg: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[assignment]
    ids = message_ids(msg.get("Message-ID"))
    # Without a Message-ID a redelivered mail must still dedup: name it by its content.
    message_id = _bare(ids[0]) if ids else "sha256-" + hashlib.sha256(raw).hexdigest()[:32]
    reason = auto_reply_reason(msg)
    if reason:
        return IgnoredMail(message_id, reason)
    name, sender = _first_address(msg.get("From"))
    if not sender:
        return IgnoredMail(message_id, "no sender address")
    if settings.shop_address and sender == settings.shop_address.lower():
        return IgnoredMail(message_id, "sent by the shop itself")

    in_reply_to = [_bare(m) for m in message_ids(msg.get("In-Reply-To"))]
    references = [_bare(m) for m in message_ids(msg.get("References"))]
    # The thread is named by its root; a known id (ours or an earlier mail's) maps to the root we saw.
    lookup = thread_lookup or {}
    thread_key = None
    for ref in [*in_reply_to, *reversed(references)]:
        if ref in lookup:
            thread_key = lookup[ref]
            break
    if thread_key is None:
        thread_key = references[0] if references else (in_reply_to[0] if in_reply_to else message_id)

    plain, markup, attachments = _bodies(msg)
    full_text = plain if plain is not None else html_to_text(markup or "")
    subject = str(msg.get("Subject") or "")
    new_text = strip_quotes_and_signature(full_text)
    try:
        date = parsedate_to_datetime(str(msg.get("Date"))) if msg.get("Date") else None
        if date is not None and date.tzinfo is None:
            date = date.replace(tzinfo=UTC)
    except (TypeError, ValueError):
        date = None
    received_at = datetime.now(UTC)
    to_addrs = [a.lower() for _, a in getaddresses([str(msg.get("To") or ""), str(msg.get("Cc") or "")]) if a]
    channel = "amazon" if _is_amazon(msg, settings) else "email"
    metadata: dict[str, Any] = {
        "email": {
            "message_id": message_id, "subject": subject, "from": sender, "to": to_addrs,
            "reply_to": _first_address(msg.get("Reply-To"))[1] or None,
            "in_reply_to": in_reply_to, "references": references,
            "date": date.isoformat() if date else None, "full_text": full_text,
            "html": markup is not None,
        },
    }
    if channel == "amazon":
        # Amazon asks sellers to answer buyer messages within 24 hours.
        metadata["reply_deadline"] = (received_at + AMAZON_REPLY_WINDOW).isoformat()
        metadata["amazon_alias"] = sender
    # The client's language, when it says so, helps the language detector on short mails.
    language = str(msg.get("Content-Language") or msg.get("Accept-Language") or "").split(",")[0].strip()
    inbound = InboundMessage(
        channel=channel, external_id=message_id, sender=sender, text=new_text or subject,
        received_at=received_at, sender_name=name or None, attachments=tuple(attachments),
        thread_key=thread_key, metadata=metadata, locale_hint=language[:35] or None,
        timezone_hint=_sender_zone(date) if channel == "email" else None,  # Amazon's relay dates its own mails
    )
    return ParsedMail(inbound, references=[*references, *[m for m in in_reply_to if m not in references]])


MAIL_CSS = "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}"


def _sender_zone(date: datetime | None) -> str | None:
    """A fixed-offset zone from the Date header the sender's mail client wrote ("-0500" -> Etc/GMT+5), for
    the out-of-hours reply time. +0000 says nothing (many servers write UTC), nor does a half-hour offset
    (no Etc zone has one)."""
    offset = date.utcoffset() if date is not None else None
    if not offset or offset % timedelta(hours=1):
        return None
    hours = int(offset / timedelta(hours=1))
    return f"Etc/GMT{-hours:+d}" if -12 <= hours <= 14 else None  # Etc/GMT+5 is five hours behind UTC


def _is_amazon(msg: EmailMessage, settings: EmailSettings) -> bool:
    _, sender = _first_address(msg.get("From"))
    domain = sender.rpartition("@")[2]
    return any(domain == d.lower() or domain.endswith("." + d.lower()) for d in settings.amazon_relay_domains)


def _bodies(msg: EmailMessage) -> tuple[str | None, str | None, list[Attachment]]:
    plain: str | None = None
    markup: str | None = None
    attachments: list[Attachment] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        ctype = part.get_content_type()
        filename = part.get_filename()
        if disposition == "attachment" or (filename and disposition != "inline") or (
                not ctype.startswith("text/") and ctype != "message/rfc822"):
            payload = part.get_payload(decode=True) or b""
            kind = ctype.split("/")[0]
            attachments.append(Attachment(
                kind=kind if kind in ("image", "audio", "video") else "document" if filename else "file",
                filename=filename, mime_type=ctype, extra={"size": len(payload)}))
            continue
        try:
            content = part.get_content()
        except (LookupError, ValueError):
            raw_part = part.get_payload(decode=True)
            content = raw_part.decode("utf-8", "replace") if isinstance(raw_part, bytes) else ""
        # IMAP delivers CRLF line endings; the text the engine and agents see uses "\n".
        if ctype == "text/plain" and plain is None:
            plain = str(content).replace("\r\n", "\n")
        elif ctype == "text/html" and markup is None:
            markup = str(content).replace("\r\n", "\n")
    return plain, markup, attachments


# ---------------------------------------------------------------- thread memory (Redis)


class MailThreads:
    """Remembers which thread every Message-ID belongs to and how to reply in a conversation."""

    def __init__(self, redis: Any, prefix: str = "nd:mail") -> None:
        self.redis = redis
        self.prefix = prefix

    async def lookup(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        values = await self.redis.mget([f"{self.prefix}:thread:{i}" for i in ids])
        return {i: (v.decode() if isinstance(v, bytes) else v) for i, v in zip(ids, values, strict=True) if v}

    async def remember(self, message_id: str, thread_key: str) -> None:
        await self.redis.set(f"{self.prefix}:thread:{message_id}", thread_key, ex=THREAD_TTL_S)

    async def set_reply_context(self, conversation_id: int, context: dict[str, Any]) -> None:
        await self.redis.set(f"{self.prefix}:conv:{conversation_id}", json.dumps(context), ex=THREAD_TTL_S)

    async def reply_context(self, conversation_id: int) -> dict[str, Any] | None:
        raw = await self.redis.get(f"{self.prefix}:conv:{conversation_id}")
        return json.loads(raw) if raw else None


# ---------------------------------------------------------------- IMAP listener


AcceptFn = Callable[[InboundMessage], Awaitable[Any]]


class ImapError(RuntimeError):
    pass


class MailboxListener:
    """Reads new mail from one IMAP mailbox with IDLE (or polling) and hands it to the pipeline.

    UIDVALIDITY and the last processed UID live in Redis, advanced only after the pipeline accepted a
    mail: a restart resumes after the last accepted mail, and a crash between accept and save at worst
    re-reads one mail, which Message-ID dedup then drops.
    """

    def __init__(self, settings: EmailSettings, redis: Any, accept: AcceptFn, *, lease_s: float = 60.0) -> None:
        if not settings.imap_host:
            raise ValueError("email needs NIGHTDESK_EMAIL_IMAP_HOST (the IMAP server of the shop mailbox)")
        if not settings.username or not settings.password:
            raise ValueError("email needs NIGHTDESK_EMAIL_USERNAME and NIGHTDESK_EMAIL_PASSWORD for IMAP")
        self.settings = settings
        self.redis = redis
        self.accept = accept
        self.threads = MailThreads(redis)
        self.state_key = f"nd:mail:imap:{settings.account_key}"
        self.client: aioimaplib.IMAP4 | None = None
        self.processed = 0
        self.ignored = 0
        self.idle_supported: bool | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._busy = False  # between fetching a mail and saving its UID
        self.ready = asyncio.Event()
        # With several API processes only one reads the mailbox; the others wait on standby.
        self.lease_key = f"nd:mail:imap:leader:{settings.account_key}"
        self.lease_s = lease_s
        self._lease_token = uuid.uuid4().hex
        self.leading = False

    # -- lifecycle

    def start(self) -> asyncio.Task[None]:
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name="imap-listener")
        return self._task

    async def stop(self) -> None:
        """Stop after the mail being processed (if any), so that a restart does not read it again."""
        self._stopping.set()
        task = self._task
        if task is not None:
            if self._busy:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(task), 30)
            if not task.done():
                task.cancel()  # waiting in IDLE: nothing half-done to lose
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._disconnect()
        if self.leading:
            with contextlib.suppress(Exception):  # an unreleased lease just runs out
                await self.redis.eval(_RELEASE, 1, self.lease_key, self._lease_token)
            self.leading = False
        self._task = None
        self.ready.clear()

    async def _hold_lease(self) -> bool:
        """Take or renew the mailbox lease; False while another process holds it."""
        self.leading = bool(await self.redis.eval(_TAKE_OR_RENEW, 1, self.lease_key, self._lease_token,
                                                  int(self.lease_s * 1000)))
        return self.leading

    async def run(self) -> None:
        """Take the lease, connect, catch up, then wait for new mail; reconnect with backoff on errors."""
        backoff = 1.0
        while not self._stopping.is_set():
            try:
                if not await self._hold_lease():
                    # Another process reads this mailbox; take over if its lease runs out.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.lease_s / 6)
                    continue
                await self._connect()
                await self.catch_up()
                self.ready.set()
                backoff = 1.0
                while not self._stopping.is_set():
                    await self._wait_for_mail()
                    if not await self._hold_lease():
                        log.warning("imap_lease_lost", mailbox=self.settings.account_key)
                        await self._disconnect()
                        break
                    await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("imap_listener_error", error=repr(exc), retry_in=backoff)
                await self._disconnect()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, 60.0)

    async def _connect(self) -> None:
        s = self.settings
        if s.imap_ssl:
            client = aioimaplib.IMAP4_SSL(host=s.imap_host, port=s.imap_port, timeout=30)
        else:
            client = aioimaplib.IMAP4(host=s.imap_host, port=s.imap_port, timeout=30)
        await client.wait_hello_from_server()
        resp = await client.login(s.username, s.password)
        if resp.result != "OK":
            raise ImapError(f"IMAP login as {s.username} failed: {_lines(resp)}; check "
                            "NIGHTDESK_EMAIL_USERNAME / NIGHTDESK_EMAIL_PASSWORD")
        resp = await client.select(s.mailbox)
        if resp.result != "OK":
            raise ImapError(f"cannot open mailbox {s.mailbox}: {_lines(resp)}")
        uidvalidity = _uidvalidity(resp)
        self.client = client
        self.idle_supported = client.has_capability("IDLE")
        stored = await self.redis.hgetall(self.state_key)
        stored_validity = stored.get(b"uidvalidity") or stored.get("uidvalidity")
        if stored_validity is None or int(stored_validity) != uidvalidity:
            if stored_validity is not None:
                # UIDs of the old validity mean nothing now; re-read all, Message-ID dedup drops repeats.
                log.warning("imap_uidvalidity_changed", old=int(stored_validity), new=uidvalidity)
            await self.redis.hset(self.state_key, mapping={"uidvalidity": uidvalidity, "last_uid": 0})

    async def _disconnect(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if client.has_pending_idle():
                client.idle_done()
            await asyncio.wait_for(client.logout(), 5)

    async def last_uid(self) -> int:
        value = await self.redis.hget(self.state_key, "last_uid")
        return int(value or 0)

    # -- reading

    async def catch_up(self) -> int:
        """Process every mail with a UID above the last processed one, in UID order."""
        client = self._client()
        last = await self.last_uid()
        resp = await client.uid_search(f"UID {last + 1}:*")
        if resp.result != "OK":
            raise ImapError(f"UID SEARCH failed: {_lines(resp)}")
        uids = sorted(u for u in _search_uids(resp) if u > last)  # "n:*" always matches the highest UID
        done = 0
        for uid in uids:
            if self._stopping.is_set():
                break
            self._busy = True
            try:
                raw = await self._fetch(uid)
                if raw is not None:
                    await self._handle(raw)
                await self.redis.hset(self.state_key, "last_uid", uid)
            finally:
                self._busy = False
            done += 1
        return done

    async def _fetch(self, uid: int) -> bytes | None:
        resp = await self._client().uid("fetch", str(uid), "(BODY.PEEK[])")
        if resp.result != "OK":
            raise ImapError(f"UID FETCH {uid} failed: {_lines(resp)}")
        for line in resp.lines:
            # aioimaplib hands the message literal over as the one bytearray among the response lines.
            if isinstance(line, bytearray):
                return bytes(line)
        # No body: the mail was expunged since the search (then there is nothing to read, ever), or the server
        # answered oddly. Only the first may be skipped; otherwise retry through the reconnect loop.
        still = await self._client().uid_search(f"UID {uid}")
        if still.result == "OK" and uid in _search_uids(still):
            raise ImapError(f"UID FETCH {uid} returned no message body although the mail exists")
        log.warning("imap_fetch_expunged", uid=uid)
        return None

    async def _handle(self, raw: bytes) -> None:
        pre = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
        refs = [_bare(m) for m in message_ids(pre.get("In-Reply-To")) + message_ids(pre.get("References"))]
        parsed = parse_mail(raw, self.settings, thread_lookup=await self.threads.lookup(refs))
        if isinstance(parsed, IgnoredMail):
            self.ignored += 1
            log.info("email_ignored", message_id=parsed.message_id, reason=parsed.reason)
            return
        msg = parsed.message
        assert msg.thread_key is not None
        await self.threads.remember(msg.external_id, msg.thread_key)
        accepted = await self.accept(msg)
        self.processed += 1
        email_meta = msg.metadata["email"]
        to_shop = [a for a in email_meta["to"] if a == self.settings.shop_address.lower()]
        await self.threads.set_reply_context(int(accepted.conversation_id), {
            "message_id": msg.external_id, "references": parsed.references,
            "subject": email_meta["subject"], "thread_key": msg.thread_key, "channel": msg.channel,
            "to": to_shop[0] if to_shop else self.settings.shop_address, "reply_to": email_meta["reply_to"],
        })

    async def _wait_for_mail(self) -> None:
        client = self._client()
        if not self.idle_supported:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.poll_interval)
            await client.noop()
            return
        # Re-issue IDLE often enough to renew the lease in time (and before the server's 29 minutes).
        period = min(self.settings.idle_timeout, self.lease_s / 3)
        idle = await client.idle_start(timeout=period)
        try:
            while not self._stopping.is_set():
                try:
                    push = await client.wait_server_push(timeout=period + 5)
                except TimeoutError:
                    break
                lines = push if isinstance(push, list) else list(getattr(push, "lines", []))
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:  # IDLE timed out: re-issue it
                    break
                # "* n EXISTS" is new mail; "OK Still here" keep-alives just continue waiting.
                if any(b"EXISTS" in bytes(ln) for ln in lines if isinstance(ln, bytes | bytearray)):
                    break
        finally:
            if client.has_pending_idle():
                client.idle_done()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle, 10)

    def _client(self) -> aioimaplib.IMAP4:
        if self.client is None:
            raise ImapError("not connected to the IMAP server")
        return self.client


_TAKE_OR_RENEW = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _lines(resp: Any) -> str:
    return " ".join(ln.decode(errors="replace") if isinstance(ln, bytes | bytearray) else str(ln)
                    for ln in resp.lines)[:300]


def _uidvalidity(resp: Any) -> int:
    for ln in resp.lines:
        text = ln.decode(errors="replace") if isinstance(ln, bytes | bytearray) else str(ln)
        m = re.search(r"UIDVALIDITY (\d+)", text)
        if m:
            return int(m.group(1))
    raise ImapError("the IMAP server did not report UIDVALIDITY on SELECT")


def _search_uids(resp: Any) -> list[int]:
    uids: list[int] = []
    for ln in resp.lines:
        text = ln.decode(errors="replace") if isinstance(ln, bytes | bytearray) else str(ln)
        text = text.removeprefix("SEARCH").strip()
        if re.fullmatch(r"[\d ]+", text):
            uids.extend(int(x) for x in text.split())
    return uids


# ---------------------------------------------------------------- SMTP sending


class EmailChannel:
    """Replies by SMTP in the shopper's thread: Re: subject, In-Reply-To/References, text + HTML, signature."""

    def __init__(self, settings: EmailSettings, redis: Any, *, name: str = "email", db: Any = None) -> None:
        if not settings.smtp_host:
            raise ValueError("email needs NIGHTDESK_EMAIL_SMTP_HOST to send replies")
        if not settings.shop_address:
            raise ValueError("email needs NIGHTDESK_EMAIL_FROM (the shop's address replies come from)")
        self.name = name
        self.settings = settings
        self.threads = MailThreads(redis)
        self.db = db

    @property
    def from_address(self) -> str:
        if self.name == "amazon" and self.settings.amazon_seller_address:
            # Amazon only relays mail from the address registered in Seller Central.
            return self.settings.amazon_seller_address
        return self.settings.shop_address

    def compose(self, message: OutboundMessage, context: dict[str, Any] | None) -> EmailMessage:
        s = self.settings
        ctx = context or {}
        meta = message.metadata.get("email", {}) if isinstance(message.metadata.get("email"), dict) else {}
        subject = str(meta.get("subject") or ctx.get("subject") or "")
        if not re.match(r"^\s*(re|aw|sv|antw)\s*:", subject, re.I):
            subject = f"Re: {subject}" if subject else f"Re: your message to {s.shop_name or 'us'}"
        mail = EmailMessage()
        from_addr = self.from_address
        mail["From"] = f"{s.shop_name} <{from_addr}>" if s.shop_name else from_addr
        # The shopper's Reply-To wins over the From address the conversation is keyed on.
        mail["To"] = str(ctx.get("reply_to") or message.recipient)
        mail["Subject"] = subject
        domain = from_addr.rpartition("@")[2] or "nightdesk.local"
        mail["Message-ID"] = make_msgid(idstring=f"nd{message.message_id}", domain=domain)
        parent = meta.get("in_reply_to") or ctx.get("message_id")
        if parent:
            refs = [*ctx.get("references", []), parent] if not meta.get("references") else [
                *meta["references"], parent]
            refs = list(dict.fromkeys(refs))
            mail["In-Reply-To"] = f"<{parent}>"
            mail["References"] = " ".join(f"<{r}>" for r in refs)
        if message.author == "bot":
            # RFC 3834: robots' mail must say so, so that other robots do not answer it.
            mail["Auto-Submitted"] = "auto-replied"
            mail["X-Auto-Response-Suppress"] = "All"
        if message.language:
            mail["Content-Language"] = message.language
        # KB answers are Markdown: rendered for the HTML part, without its marks in the plain one.
        text = markdown_to_plain(message.text)
        rich = markdown_to_html(message.text)
        if message.quick_replies:
            text += "\n\n" + "\n".join(f"- {q.title}" for q in message.quick_replies)
            rich += "<ul>" + "".join(f"<li>{html.escape(q.title)}</li>" for q in message.quick_replies) + "</ul>"
        signature = s.signature.strip()
        body = text + (f"\n\n-- \n{signature}\n" if signature else "\n")
        mail.set_content(body)
        sig_html = (f'<div class="signature">-- <br>{html.escape(signature).replace(chr(10), "<br>")}</div>'
                    if signature else "")
        mail.add_alternative(f"<!doctype html><html><head><style>{MAIL_CSS}</style></head>"
                             f"<body>{rich}{sig_html}</body></html>", subtype="html")
        return mail

    async def reply_context(self, conversation_id: int) -> dict[str, Any] | None:
        """Which mail a reply in this conversation answers: the latest inbound mail of the conversation."""
        if self.db is not None:
            async with self.db.sessions() as session:
                row = (await session.execute(
                    select(Message.payload, Conversation.thread_key)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .where(Message.conversation_id == conversation_id, Message.direction == "in")
                    .order_by(Message.id.desc()).limit(1))).first()
            if row is not None and isinstance((row[0] or {}).get("email"), dict):
                email_meta = row[0]["email"]
                refs = [*email_meta.get("references", []),
                        *[m for m in email_meta.get("in_reply_to", []) if m not in email_meta.get("references", [])]]
                return {"message_id": email_meta["message_id"], "references": refs,
                        "subject": email_meta.get("subject", ""), "thread_key": row[1],
                        "reply_to": email_meta.get("reply_to")}
        return await self.threads.reply_context(conversation_id)

    async def send(self, message: OutboundMessage) -> SendResult:
        context = await self.reply_context(message.conversation_id)
        mail = self.compose(message, context)
        msgid = _bare(str(mail["Message-ID"]))
        s = self.settings
        try:
            await aiosmtplib.send(
                mail, hostname=s.smtp_host, port=s.smtp_port, start_tls=s.smtp_starttls or None,
                username=s.smtp_username or None, password=s.smtp_password or None, timeout=30)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"the mail server refused {message.recipient}: {exc}", retryable=False,
                            code="recipient_refused") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise SendError(f"SMTP {exc.code}: {exc.message}", retryable=400 <= exc.code < 500,
                            code=str(exc.code)) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendError(f"cannot reach the SMTP server {s.smtp_host}:{s.smtp_port}: {exc!r}",
                            retryable=True, code="smtp_unreachable", retry_after=30) from exc
        if context and context.get("thread_key"):
            # The shopper's answer to this reply must land in the same conversation.
            await self.threads.remember(msgid, str(context["thread_key"]))
        return SendResult(external_id=msgid, status="sent")


# ---------------------------------------------------------------- wiring from Settings


def email_settings(settings: Any) -> EmailSettings:
    def g(name: str, default: Any) -> Any:
        # Optional fields may be missing from older Settings; the defaults are the documented ones.
        return getattr(settings, name, default)

    return EmailSettings(
        imap_host=g("email_imap_host", ""), imap_port=int(g("email_imap_port", 993)),
        imap_ssl=bool(g("email_imap_ssl", True)), username=g("email_username", ""),
        password=g("email_password", ""), smtp_host=g("email_smtp_host", ""),
        smtp_port=int(g("email_smtp_port", 587)), smtp_starttls=bool(g("email_smtp_starttls", True)),
        smtp_username=g("email_smtp_username", "") or "", smtp_password=g("email_smtp_password", "") or "",
        shop_address=(g("email_from", "") or "").lower(), shop_name=g("email_shop_name", "") or "",
        signature=g("email_signature", "") or "",
        amazon_relay_domains=tuple(g("amazon_relay_domains", ["marketplace.amazon.com"])),
        amazon_seller_address=(g("amazon_seller_email", "") or "").lower(),
        poll_interval=float(g("email_poll_interval", 30.0) or 30.0),
    )


def is_configured(settings: Any) -> bool:
    """Replies can go out: an SMTP server and the shop's address are set."""
    return bool(getattr(settings, "email_smtp_host", "") and getattr(settings, "email_from", ""))


def listens(settings: Any) -> bool:
    """Mail can come in: an IMAP server and its login are set."""
    return bool(getattr(settings, "email_imap_host", "") and getattr(settings, "email_username", "")
                and getattr(settings, "email_password", ""))


def build(state: Any) -> EmailChannel | None:
    """The sending side from app.state (settings email_*, redis, db); None when SMTP is not configured."""
    if not is_configured(state.settings):
        return None
    return EmailChannel(email_settings(state.settings), state.redis, db=getattr(state, "db", None))


def background_loops(state: Any) -> list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]]:
    """The IMAP listener as an app background loop; it is kept on `state.mail_listener`."""
    if not listens(state.settings):
        return []
    listener = MailboxListener(email_settings(state.settings), state.redis, state.ingest.accept)
    state.mail_listener = listener

    async def listen(stop: asyncio.Event) -> None:
        listener.start()
        try:
            await stop.wait()
        finally:
            await listener.stop()

    return [listen]
