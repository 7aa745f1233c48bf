"""The context packet an agent sees next to a handoff ticket: the whole story across channels, what the
NLU understood, why it escalated, the customer and their orders, KB suggestions, a suggested reply in
the shopper's language and a short extractive summary."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from handoff.triggers import Trigger
from nlu.types import ParseResult

EncodeFn = Callable[[list[str]], np.ndarray]

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*|\n+")
# Order numbers (#A1001, 112-1234567-1234567), and money amounts: the facts agents look for first.
_ORDER_REF = re.compile(r"#\s?[A-Z0-9-]{3,}|\b\d{3}-\d{7}-\d{7}\b|\b[A-Z]{1,3}-?\d{4,}\b")
_AMOUNT = re.compile(r"(?:[€$£¥]\s?\d[\d.,]*|\d[\d.,]*\s?(?:€|EUR|USD|GBP|CNY|JPY|\$|元|円|euros?|dollars?))",
                     re.IGNORECASE)

_GREETING = {
    "en": "Hi {name},", "de": "Hallo {name},", "es": "Hola {name}:", "fr": "Bonjour {name},",
    "it": "Ciao {name},", "pt": "Olá {name},", "nl": "Hallo {name},", "ja": "{name}様", "zh": "{name}您好，",
}


@dataclass(frozen=True)
class TranscriptEntry:
    at: datetime
    channel: str
    author: str  # "shopper" | "bot" | "agent"
    text: str
    language: str | None = None
    translation: str | None = None  # shown next to the original, never instead of it
    decision: Mapping[str, Any] | None = None  # the bot's decision trace for its turns

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["decision"] = dict(self.decision) if self.decision else None
        return data


@dataclass(frozen=True)
class KBSuggestion:
    article_id: str
    version: int
    title: str
    locale: str
    answer: str
    score: float


@dataclass(frozen=True)
class SuggestedReply:
    text: str
    article_id: str
    article_version: int
    locale: str
    in_shopper_language: bool


@dataclass
class ContextPacket:
    ticket_id: int | None
    customer: Mapping[str, Any]
    language: str
    intent: str | None
    intent_confidence: float | None
    entities: list[dict[str, Any]]
    sentiment: dict[str, Any]
    triggers: list[dict[str, Any]]
    channels: list[str]
    transcript: list[TranscriptEntry]
    orders: list[Mapping[str, Any]]
    kb_suggestions: list[KBSuggestion]
    suggested_reply: SuggestedReply | None
    summary: list[str]
    facts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "customer": dict(self.customer),
            "language": self.language,
            "intent": self.intent,
            "intent_confidence": self.intent_confidence,
            "entities": self.entities,
            "sentiment": self.sentiment,
            "triggers": self.triggers,
            "channels": self.channels,
            "transcript": [entry.to_dict() for entry in self.transcript],
            "orders": [dict(order) for order in self.orders],
            "kb_suggestions": [asdict(s) for s in self.kb_suggestions],
            "suggested_reply": asdict(self.suggested_reply) if self.suggested_reply else None,
            "summary": self.summary,
            "facts": self.facts,
        }


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and len(s.strip()) > 1]


def extract_facts(texts: Sequence[str]) -> list[str]:
    """Order numbers and amounts the shopper mentioned, in order of first mention, without repeats."""
    seen: dict[str, None] = {}
    for text in texts:
        for match in list(_ORDER_REF.finditer(text)) + list(_AMOUNT.finditer(text)):
            seen.setdefault(match.group(0).strip(), None)
    return list(seen)


def summarize(texts: Sequence[str], *, max_sentences: int = 3, encode: EncodeFn | None = None) -> list[str]:
    """The shopper sentences closest to the centroid of everything they wrote (TF-IDF on character
    n-grams, which works for any script, or the given multilingual encoder), with a bonus for sentences
    that carry an order number or an amount; returned in the order they were written."""
    sentences: list[str] = []
    for text in texts:
        for sentence in split_sentences(text):
            if sentence not in sentences:
                sentences.append(sentence)
    if len(sentences) <= max_sentences:
        return sentences
    if encode is not None:
        vectors = np.asarray(encode(sentences), dtype=np.float32)
    else:
        tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        vectors = tfidf.fit_transform(sentences).toarray().astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
    centroid = vectors.mean(axis=0)
    centroid /= np.linalg.norm(centroid) + 1e-9
    scores = vectors @ centroid
    for i, sentence in enumerate(sentences):
        if _ORDER_REF.search(sentence) or _AMOUNT.search(sentence):
            scores[i] += 0.25
        if len(sentence) < 12:
            scores[i] -= 0.2  # "ok", "hello?" say nothing about the case
    best = sorted(np.argsort(-scores)[:max_sentences].tolist())
    return [sentences[i] for i in best]


def suggest_reply(suggestions: Sequence[KBSuggestion], language: str, customer_name: str | None = None
                  ) -> SuggestedReply | None:
    """The best KB article in the shopper's language (else the best one at all), with a greeting."""
    if not suggestions:
        return None
    lang = language.split("-")[0]
    ranked = sorted(suggestions, key=lambda s: -s.score)
    article = next((s for s in ranked if s.locale.split("-")[0] == lang), ranked[0])
    in_language = article.locale.split("-")[0] == lang
    text = article.answer.strip()
    if customer_name:
        greeting = _GREETING.get(article.locale.split("-")[0], _GREETING["en"]).format(name=customer_name)
        text = f"{greeting}\n\n{text}"
    return SuggestedReply(text, article.article_id, article.version, article.locale, in_language)


def build_context_packet(
    *,
    transcript: Sequence[TranscriptEntry],
    parse: ParseResult | None,
    triggers: Sequence[Trigger | Mapping[str, Any]] = (),
    customer: Mapping[str, Any] | None = None,
    orders: Sequence[Mapping[str, Any]] = (),
    kb_suggestions: Sequence[KBSuggestion] = (),
    language: str | None = None,
    ticket_id: int | None = None,
    encode: EncodeFn | None = None,
    max_summary_sentences: int = 3,
) -> ContextPacket:
    customer = dict(customer or {})
    entries = sorted(transcript, key=lambda e: e.at)
    lang = language or (parse.language if parse else None) or customer.get("language") or "en"
    shopper_texts = [e.text for e in entries if e.author == "shopper"]
    channels = list(dict.fromkeys(e.channel for e in entries))
    return ContextPacket(
        ticket_id=ticket_id,
        customer=customer,
        language=lang,
        intent=parse.intent if parse else None,
        intent_confidence=parse.confidence if parse else None,
        entities=[asdict(e) for e in parse.entities] if parse else [],
        sentiment={"scores": dict(parse.sentiment.scores), "labels": list(parse.sentiment.labels)} if parse else {},
        triggers=[t.to_dict() if isinstance(t, Trigger) else dict(t) for t in triggers],
        channels=channels,
        transcript=entries,
        orders=list(orders),
        kb_suggestions=list(kb_suggestions),
        suggested_reply=suggest_reply(kb_suggestions, lang, customer.get("name")),
        summary=summarize(shopper_texts, max_sentences=max_summary_sentences, encode=encode),
        facts=extract_facts(shopper_texts),
    )
