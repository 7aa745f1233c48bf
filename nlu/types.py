"""What the NLU says about one message: the value objects every other package reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class IntentScore:
    name: str
    confidence: float


# The role of a country things come from ("do you ship from China?", "made in Germany"): no destination.
ORIGIN_ROLE = "origin"


@dataclass(frozen=True)
class Entity:
    """One extracted entity. `value` is normalised (synonyms applied, ISO codes for countries)."""

    entity: str
    value: Any
    text: str
    start: int
    end: int
    extractor: str
    role: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"carrier": "UPS"}, {"currency": "EUR"}


@dataclass(frozen=True)
class Sentiment:
    """Scores in [0, 1] per label and the labels that passed their thresholds."""

    scores: dict[str, float]
    labels: tuple[str, ...]

    @property
    def angry(self) -> bool:
        return "angry" in self.labels

    @property
    def urgent(self) -> bool:
        return "urgent" in self.labels

    @property
    def threat(self) -> bool:
        return "threat" in self.labels

    @property
    def asks_human(self) -> bool:
        return "human" in self.labels


SENTIMENT_LABELS = ("angry", "urgent", "threat", "human")


@dataclass(frozen=True)
class ParseResult:
    """The NLU's reading of one message. `intent` is None when the message is out of scope."""

    text: str
    language: str
    language_confidence: float
    intent: str | None
    confidence: float
    ranking: list[IntentScore]
    entities: list[Entity]
    sentiment: Sentiment
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Set when the message is clearly in a language the shop has not configured (`language` is then only the
    # closest configured one): e.g. "pl" for Polish in an English/German shop. Drives `unsupported_language`.
    foreign_language: str | None = None
    # The message with its typing slips of training words mended ("wher is my ordr" -> "where is my order"), which
    # gave the language and entities (and the intent, when it read more surely); None when it had none.
    corrected: str | None = None

    def entity(self, name: str, *, origin: bool = False) -> Entity | None:
        """The first entity of this name; a country things come from (role "origin": "do you ship from China?")
        only when `origin` asks for one."""
        return next((e for e in self.entities if e.entity == name and (e.role == ORIGIN_ROLE) == origin), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
