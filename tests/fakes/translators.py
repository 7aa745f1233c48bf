"""Local fakes of the LibreTranslate and DeepL HTTP APIs (documented request and response shapes),
served by a real HTTP server on a loopback port, with auth failures and slow answers on demand."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.loopback import LoopbackServer

# A tiny phrase book, enough for tests to check that the right text went the right way.
PHRASES: dict[tuple[str, str], str] = {
    ("de", "en"): "Where is my parcel? I ordered two weeks ago.",
    ("en", "de"): "Ihr Paket ist unterwegs und kommt morgen an.",
    ("fr", "en"): "I want a refund.",
    ("en", "fr"): "Votre remboursement est en cours.",
}
SOURCES = {
    "Wo ist mein Paket? Ich habe vor zwei Wochen bestellt.": "de",
    "Your parcel is on its way and arrives tomorrow.": "en",
    "Je veux un remboursement.": "fr",
    "Your refund is being processed.": "en",
}


def fake_translate(text: str, source: str | None, target: str) -> tuple[str, str]:
    detected = source if source and source != "auto" else SOURCES.get(text, "en")
    return PHRASES.get((detected, target), f"[{target}] {text}"), detected


class _FakeServer(LoopbackServer):
    """Common plumbing: a ThreadingHTTPServer on 127.0.0.1 and a free port."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.delay = 0.0  # seconds to wait before answering, to trigger client timeouts
        self.requests: list[dict[str, Any]] = []
        self._serve(self._handler())

    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if (self.headers.get("Content-Type") or "").startswith("application/json"):
                    body = json.loads(raw or b"{}")
                else:  # form-encoded, which both APIs also accept
                    body = {k: (v if k == "text" else v[0]) for k, v in parse_qs(raw.decode()).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.requests.append({"path": self.path, "headers": headers, "body": body})
                if fake.delay:
                    time.sleep(fake.delay)
                status, answer = fake.handle(self.path, headers, body)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        return Handler


class FakeLibreTranslate(_FakeServer):
    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path != "/translate":
            return 404, {"error": "Not Found"}
        if body.get("api_key") != self.api_key:
            return 403, {"error": "Invalid API key"}
        for field in ("q", "target"):
            if not body.get(field):
                return 400, {"error": f"Invalid request: missing {field} parameter"}
        source = body.get("source") or "auto"
        text, detected = fake_translate(str(body["q"]), source, str(body["target"]))
        answer: dict[str, Any] = {"translatedText": text}
        if source == "auto":
            answer["detectedLanguage"] = {"confidence": 90.0, "language": detected}
        return 200, answer


class FakeDeepL(_FakeServer):
    def handle(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path != "/v2/translate":
            return 404, {"message": "Not found"}
        if headers.get("authorization") != f"DeepL-Auth-Key {self.api_key}":
            return 403, {"message": "Wrong endpoint or invalid auth key"}
        texts = body.get("text")
        target = body.get("target_lang")
        if not texts or not target:
            return 400, {"message": "Value for 'text' or 'target_lang' not specified"}
        source = body.get("source_lang")
        target_code = str(target).split("-")[0].lower()
        out = []
        for text in texts if isinstance(texts, list) else [texts]:
            translated, detected = fake_translate(str(text), source.lower() if source else None, target_code)
            out.append({"detected_source_language": detected.upper(), "text": translated})
        return 200, {"translations": out}
