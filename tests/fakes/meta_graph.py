"""A local fake of Meta's Graph API for WhatsApp Cloud API tests, served by uvicorn on a loopback port.

It plays both sides Meta plays: the API Nightdesk sends to (with the 24-hour customer-service window,
a per-user pair rate limit, token expiry and injectable errors, all on a clock tests can move) and the
webhook sender (payloads signed with the app secret, duplicate redelivery, retries on non-200).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.servers import free_port, wait_for_port

WINDOW = timedelta(hours=24)


@dataclass
class SentMessage:
    wamid: str
    to: str
    type: str
    body: dict[str, Any]
    at: datetime

    @property
    def text(self) -> str:
        if self.type == "text":
            return str(self.body["text"]["body"])
        if self.type == "interactive":
            return str(self.body["interactive"]["body"]["text"])
        return ""


@dataclass
class WebhookDelivery:
    payload: dict[str, Any]
    attempts: list[int] = field(default_factory=list)  # HTTP status of each attempt

    @property
    def final_status(self) -> int | None:
        return self.attempts[-1] if self.attempts else None


class FakeMetaGraph:
    """Meta's Graph API (the /messages endpoint) and webhook sender, for one WhatsApp business number."""

    def __init__(self, *, app_secret: str = "test-app-secret", access_token: str = "test-access-token",
                 phone_number_id: str = "106540352242922", display_number: str = "15550001234",
                 version: str = "v21.0", templates: set[tuple[str, str]] | None = None,
                 pair_rate: tuple[int, float] | None = None) -> None:
        self.app_secret = app_secret
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.display_number = display_number
        self.version = version
        self.templates = templates if templates is not None else {("order_followup", "en_US")}
        # (max messages, per seconds of fake time) to one user; None = no limit.
        self.pair_rate = pair_rate
        self.port = free_port()
        self.webhook_url: str | None = None
        self.sent: list[SentMessage] = []
        self.read_receipts: list[str] = []
        self.rejected: list[dict[str, Any]] = []
        self.last_user_message: dict[str, datetime] = {}
        self.token_expired = False
        self._injected: list[tuple[int, int, str]] = []  # (http status, code, title) for the next sends
        self._offset = timedelta()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._sends_per_user: dict[str, list[datetime]] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    # ---------------------------------------------------------------- the clock tests move

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        self._offset += delta

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---------------------------------------------------------------- test controls

    def expire_token(self) -> None:
        self.token_expired = True

    def fail_next(self, code: int, *, http_status: int = 400, title: str = "error", times: int = 1) -> None:
        """Make the next `times` sends fail with this Graph error code."""
        with self._lock:
            self._injected.extend([(http_status, code, title)] * times)

    def messages_to(self, wa_id: str) -> list[SentMessage]:
        with self._lock:
            return [m for m in self.sent if m.to == wa_id]

    async def wait_for_sent(self, count: int, wa_id: str | None = None, wait_s: float = 30.0) -> list[SentMessage]:
        deadline = time.monotonic() + wait_s
        while True:
            found = self.messages_to(wa_id) if wa_id else list(self.sent)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)

    # ---------------------------------------------------------------- the Graph API

    def _error(self, http_status: int, code: int, title: str, details: str = "") -> JSONResponse:
        body = {"error": {"message": f"({code}) {title}", "type": "OAuthException",
                          "code": code, "error_data": {"messaging_product": "whatsapp", "details": details or title},
                          "fbtrace_id": "FAKE" + str(next(self._ids))}}
        return JSONResponse(body, status_code=http_status)

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{version}/{phone_number_id}/messages")
        async def messages(version: str, phone_number_id: str, request: Request) -> JSONResponse:
            return self._handle_send(version, phone_number_id, request.headers.get("authorization", ""),
                                     await request.json())

        return app

    def _handle_send(self, version: str, phone_number_id: str, auth: str, body: dict[str, Any]) -> JSONResponse:
        with self._lock:
            if version != self.version or phone_number_id != self.phone_number_id:
                return self._error(400, 100, "Invalid parameter", f"unknown {version}/{phone_number_id}")
            if auth != f"Bearer {self.access_token}" or self.token_expired:
                return self._error(401, 190, "Error validating access token: Session has expired")
            if body.get("messaging_product") != "whatsapp":
                return self._error(400, 100, "Invalid parameter", "messaging_product must be 'whatsapp'")
            if body.get("status") == "read":
                self.read_receipts.append(str(body.get("message_id")))
                return JSONResponse({"success": True})
            if self._injected:
                http_status, code, title = self._injected.pop(0)
                self.rejected.append({"code": code, **body})
                return self._error(http_status, code, title)
            to = str(body.get("to", ""))
            kind = str(body.get("type", "text"))
            now = self.now()
            problem = self._validate(kind, body)
            if problem:
                return self._error(400, 100, "Invalid parameter", problem)
            if kind == "template":
                tpl = body["template"]
                if (tpl.get("name"), (tpl.get("language") or {}).get("code")) not in self.templates:
                    return self._error(404, 132001, "Template name does not exist in the translation")
            else:
                last = self.last_user_message.get(to)
                if last is None or now - last > WINDOW:
                    self.rejected.append({"code": 131047, **body})
                    return self._error(400, 131047, "Re-engagement message",
                                       "More than 24 hours have passed since the recipient last replied")
            if self.pair_rate:
                limit, per = self.pair_rate
                recent = [t for t in self._sends_per_user.get(to, []) if (now - t).total_seconds() < per]
                if len(recent) >= limit:
                    self.rejected.append({"code": 131056, **body})
                    return self._error(400, 131056, "(Business Account, Consumer Account) pair rate limit hit")
                self._sends_per_user[to] = [*recent, now]
            wamid = f"wamid.FAKE{next(self._ids):08d}"
            self.sent.append(SentMessage(wamid=wamid, to=to, type=kind, body=body, at=now))
            return JSONResponse({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                                 "messages": [{"id": wamid}]})

    @staticmethod
    def _validate(kind: str, body: dict[str, Any]) -> str | None:
        """The documented limits Meta enforces on interactive messages."""
        if kind == "text" and not (body.get("text") or {}).get("body"):
            return "text.body is required"
        if kind == "interactive":
            inter = body.get("interactive") or {}
            if not (inter.get("body") or {}).get("text"):
                return "interactive.body.text is required"
            if len(inter["body"]["text"]) > 1024:
                return "interactive.body.text is longer than 1024 characters"
            action = inter.get("action") or {}
            if inter.get("type") == "button":
                buttons = action.get("buttons") or []
                if not 1 <= len(buttons) <= 3:
                    return "interactive buttons: 1 to 3 buttons"
                if any(len(b["reply"]["title"]) > 20 for b in buttons):
                    return "interactive buttons: title longer than 20 characters"
            elif inter.get("type") == "list":
                rows = [r for s in action.get("sections", []) for r in s.get("rows", [])]
                if not 1 <= len(rows) <= 10:
                    return "interactive list: 1 to 10 rows"
                if any(len(r["title"]) > 24 for r in rows):
                    return "interactive list: row title longer than 24 characters"
            else:
                return f"unsupported interactive type {inter.get('type')!r}"
        return None

    # ---------------------------------------------------------------- webhooks to Nightdesk

    def envelope(self, value: dict[str, Any]) -> dict[str, Any]:
        return {"object": "whatsapp_business_account", "entry": [{
            "id": "WABA_FAKE", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": self.display_number, "phone_number_id": self.phone_number_id},
                **value}}]}]}

    def user_message(self, wa_id: str, *, text: str | None = None, name: str = "Shopper",
                     wamid: str | None = None, kind: str = "text", content: dict[str, Any] | None = None,
                     at: datetime | None = None) -> dict[str, Any]:
        """A webhook payload for a message from a user; records the user's window as Meta does."""
        at = at or self.now()
        with self._lock:
            prev = self.last_user_message.get(wa_id)
            if prev is None or at > prev:
                self.last_user_message[wa_id] = at
        msg: dict[str, Any] = {"from": wa_id, "id": wamid or f"wamid.IN{next(self._ids):08d}",
                               "timestamp": str(int(at.timestamp())), "type": kind}
        if kind == "text":
            msg["text"] = {"body": text or ""}
        else:
            msg[kind] = content or {}
        return self.envelope({"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [msg]})

    def status_event(self, wamid: str, status: str, recipient: str, *,
                     error: tuple[int, str] | None = None) -> dict[str, Any]:
        st: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(self.now().timestamp())),
                              "recipient_id": recipient}
        if error:
            st["errors"] = [{"code": error[0], "title": error[1], "message": error[1],
                             "error_data": {"details": error[1]}}]
        return self.envelope({"statuses": [st]})

    def sign(self, raw: bytes, secret: str | None = None) -> str:
        return "sha256=" + hmac.new((secret or self.app_secret).encode(), raw, hashlib.sha256).hexdigest()

    async def deliver(self, payload: dict[str, Any], *, retries: int = 5, backoff: float = 0.1,
                      signature: str | None = None) -> WebhookDelivery:
        """POST a signed webhook to Nightdesk; on non-200 retry like Meta does (here with a short backoff)."""
        if not self.webhook_url:
            raise RuntimeError("set FakeMetaGraph.webhook_url to Nightdesk's /webhooks/whatsapp first")
        raw = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json",
                   "X-Hub-Signature-256": signature if signature is not None else self.sign(raw)}
        delivery = WebhookDelivery(payload)
        async with httpx.AsyncClient(timeout=20.0) as client:
            for attempt in range(retries + 1):
                try:
                    resp = await client.post(self.webhook_url, content=raw, headers=headers)
                    delivery.attempts.append(resp.status_code)
                    if resp.status_code == 200:
                        break
                except httpx.HTTPError:
                    delivery.attempts.append(0)
                await asyncio.sleep(backoff * (2 ** attempt))
        return delivery

    # ---------------------------------------------------------------- server

    def start(self) -> FakeMetaGraph:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-meta-graph", daemon=True)
        self._thread.start()
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
