"""Small builders shared by the handoff tests."""

from __future__ import annotations

from nlu.types import ParseResult, Sentiment


def parse(text: str, language: str = "en", *labels: str, intent: str | None = None) -> ParseResult:
    scores = {label: (0.93 if label in labels else 0.05) for label in ("angry", "urgent", "threat", "human")}
    return ParseResult(text=text, language=language, language_confidence=0.99, intent=intent, confidence=0.4,
                       ranking=[], entities=[], sentiment=Sentiment(scores=scores, labels=tuple(labels)))
