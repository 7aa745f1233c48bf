"""Pluggable translation of agent replies and incoming messages: none (the default), a
LibreTranslate-compatible server, or DeepL. Failures raise TranslationUnavailable; callers show the original."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx


@dataclass(frozen=True)
class Translation:
    text: str
    source_lang: str | None
    provider: str


class TranslationUnavailable(Exception):
    """The translator could not translate; `reason` says why and what the operator can do."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason


class Translator(Protocol):
    name: str

    async def translate(self, text: str, target: str, source: str | None = None) -> Translation: ...


class NoTranslator:
    """No machine translation: the text stays as it is (suggested replies come from the KB instead)."""

    name = "none"

    async def translate(self, text: str, target: str, source: str | None = None) -> Translation:
        return Translation(text, source, self.name)


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(seconds, 3.0))


async def _post(provider: str, client: httpx.AsyncClient, url: str, **kwargs: object) -> httpx.Response:
    try:
        return await client.post(url, **kwargs)  # type: ignore[arg-type]
    except httpx.TimeoutException as exc:
        raise TranslationUnavailable(provider, f"no answer from {url} within the timeout; the service is slow "
                                               "or down") from exc
    except httpx.HTTPError as exc:
        raise TranslationUnavailable(provider, f"cannot reach {url} ({exc.__class__.__name__}); check the "
                                               "translator URL in the settings") from exc


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body)[:200]
    return str(body)[:200]


class LibreTranslateTranslator:
    """A LibreTranslate-compatible server: POST /translate {q, source, target, format, api_key}."""

    name = "libretranslate"

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 5.0,
                 client: httpx.AsyncClient | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"LibreTranslate URL {url!r} must start with http:// or https://")
        self.url = url.rstrip("/") + "/translate"
        self.api_key = api_key
        self._client = client or httpx.AsyncClient(timeout=_timeout(timeout))

    async def translate(self, text: str, target: str, source: str | None = None) -> Translation:
        payload: dict[str, str] = {"q": text, "source": source or "auto", "target": target, "format": "text"}
        if self.api_key:
            payload["api_key"] = self.api_key
        response = await _post(self.name, self._client, self.url, json=payload)
        if response.status_code in (401, 403):
            raise TranslationUnavailable(self.name, "the server refused the API key "
                                                    f"({_error_detail(response)}); check the translator API key")
        if response.status_code == 429:
            raise TranslationUnavailable(self.name, "rate limit reached; retry later or raise the server's limit")
        if response.status_code != 200:
            raise TranslationUnavailable(self.name, f"HTTP {response.status_code}: {_error_detail(response)}")
        body = response.json()
        translated = body.get("translatedText")
        if not isinstance(translated, str):
            raise TranslationUnavailable(self.name, "the answer had no translatedText")
        detected = body.get("detectedLanguage")
        lang = detected.get("language") if isinstance(detected, dict) else source
        return Translation(translated, lang, self.name)

    async def aclose(self) -> None:
        await self._client.aclose()


class DeepLTranslator:
    """DeepL's API: POST /v2/translate with `Authorization: DeepL-Auth-Key ...`, JSON {text: [...],
    target_lang}. Keys ending in ":fx" belong to the free plan and use api-free.deepl.com."""

    name = "deepl"

    def __init__(self, auth_key: str, *, url: str | None = None, timeout: float = 5.0,
                 client: httpx.AsyncClient | None = None) -> None:
        if not auth_key:
            raise ValueError("DeepL needs an auth key: set it in the settings or choose another translator")
        base = url or ("https://api-free.deepl.com" if auth_key.endswith(":fx") else "https://api.deepl.com")
        self.url = base.rstrip("/") + "/v2/translate"
        self._headers = {"Authorization": f"DeepL-Auth-Key {auth_key}"}
        self._client = client or httpx.AsyncClient(timeout=_timeout(timeout))

    async def translate(self, text: str, target: str, source: str | None = None) -> Translation:
        payload: dict[str, object] = {"text": [text], "target_lang": _deepl_target(target)}
        if source:
            payload["source_lang"] = source.split("-")[0].upper()
        response = await _post(self.name, self._client, self.url, json=payload, headers=self._headers)
        if response.status_code == 403:
            raise TranslationUnavailable(self.name, "DeepL refused the auth key; check the DeepL key in the settings")
        if response.status_code == 456:
            raise TranslationUnavailable(self.name, "the DeepL character quota is used up for this billing period")
        if response.status_code == 429:
            raise TranslationUnavailable(self.name, "too many requests to DeepL; retry in a moment")
        if response.status_code != 200:
            raise TranslationUnavailable(self.name, f"HTTP {response.status_code}: {_error_detail(response)}")
        translations = response.json().get("translations") or []
        if not translations or not isinstance(translations[0].get("text"), str):
            raise TranslationUnavailable(self.name, "the answer had no translations")
        first = translations[0]
        detected = first.get("detected_source_language")
        return Translation(first["text"], detected.lower() if isinstance(detected, str) else source, self.name)

    async def aclose(self) -> None:
        await self._client.aclose()


def _deepl_target(lang: str) -> str:
    """DeepL wants regional variants for English and Portuguese targets."""
    code = lang.replace("_", "-").upper()
    return {"EN": "EN-US", "PT": "PT-BR"}.get(code, code)


async def translate_or_original(translator: Translator, text: str, target: str,
                                source: str | None = None) -> tuple[Translation, str | None]:
    """The translation, or the original text with the reason it could not be translated."""
    try:
        return await translator.translate(text, target, source), None
    except TranslationUnavailable as exc:
        return Translation(text, source, "none"), exc.reason
