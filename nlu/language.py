"""Language identification restricted to the configured languages, robust on very short messages.

lingua decides on real sentences; script detection settles Japanese, Chinese and Korean; a small
lexicon settles one-word messages ("gracias!", "danke"); messages with no language in them
("ok", an order number alone) keep the conversation's previous language or the fallback.

`foreign(text, confidence)` says when a message is clearly written in a language the shop has not
configured (Polish, Turkish, Russian, Arabic, ...), so the handoff's `unsupported_language` trigger can
send it to a person instead of answering in a language the shopper did not write: by script where a script
belongs to no configured language, else, for a long enough message the configured languages do not explain,
by a second, broader lingua detector (low-accuracy mode: ~50 MB instead of ~800 MB for the high-accuracy
models of 25 more languages; accepted only when it is near-certain).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

DEFAULT_LANGUAGES = ("en", "de", "es", "fr", "it", "ja", "zh", "pt", "nl", "ko")

# One-word messages lingua cannot judge but a shopper writes all the time, and two-word ones before an order number
# ("wo ist ND-100105" read as English, lingua's best under 0.5 on five letters, and the bot answered in English).
_SHORT_WORDS: dict[str, str] = {
    word: lang
    for lang, words in {
        "en": "thanks|thank you|thx|hello|bye|goodbye|yes|yeah|yep|nope|please|cheers|where is",
        "de": "danke|danke schön|dankeschön|hallo|tschüss|ja|nein|bitte|moin|servus|genau|wo ist|wo bleibt",
        "es": "gracias|muchas gracias|hola|adiós|adios|vale|sí|por favor|buenas|dónde está",
        "fr": "merci|merci beaucoup|bonjour|salut|oui|non merci|au revoir|bonsoir|d'accord",
        "it": "grazie|grazie mille|buongiorno|ciao|arrivederci|prego|certo",
        "pt": "obrigado|obrigada|olá|ola|tchau|sim|não|nao|bom dia|valeu",
        "nl": "bedankt|dank je|dank u|hoi|doei|dag|nee|alstublieft|waar is",
    }.items()
    for word in words.split("|")
}
# Words shared by many languages: they say nothing about the language.
_AMBIGUOUS = {"ok", "okay", "k", "no", "si", "hi", "hey", "yo", "ja?", "super", "top", "cool", "perfect", "help", "info"}
_NOISE = re.compile(
    r"https?://\S+|\S+@\S+|#?\b[A-Z]{0,4}[-_]?\d[\w-]*\b|[\d\W_]+", re.UNICODE
)
_INVERTED = re.compile("[\u00bf\u00a1]")  # ¿ ¡
# With either mark, Spanish wins unless lingua all but rules it out (an English sentence quoting "¡Hola!").
INVERTED_MIN_SPANISH = 0.05
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")
_HAN = re.compile(r"[\u4e00-\u9fff]")

# Languages recognised only to tell the shopper writes in none of the configured ones.
OTHER_LANGUAGES = ("pl", "tr", "cs", "sk", "hu", "ro", "hr", "sl", "sv", "da", "nb", "fi", "id", "ms", "vi",
                   "ru", "uk", "bg", "el", "ar", "fa", "he", "hi", "th", "ko", "ja", "zh")
# Scripts that belong to a few languages only: a message in one of them needs no statistics.
_SCRIPTS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"[\u0400-\u04ff]"), ("ru", "uk", "bg", "sr")),
    (re.compile(r"[\u0600-\u06ff]"), ("ar", "fa", "ur")),
    (re.compile(r"[\u0590-\u05ff]"), ("he",)),
    (re.compile(r"[\u0370-\u03ff]"), ("el",)),
    (re.compile(r"[\u0e00-\u0e7f]"), ("th",)),
    (re.compile(r"[\u0900-\u097f]"), ("hi", "mr")),
    (_HANGUL, ("ko",)),
    (_KANA, ("ja",)),
    (_HAN, ("zh", "ja")),
)
# Below these the configured languages explain a message well enough, or it is too short to judge.
FOREIGN_MIN_LETTERS = 20
# A shorter message is checked too when no configured language reads it even this surely: "Gdzie jest moja paczka?"
# (19 letters) read as German at 0.32 and got a German fallback.
FOREIGN_MIN_LETTERS_UNSURE = 12
FOREIGN_UNSURE_CONFIDENCE = 0.5
FOREIGN_MAX_CONFIGURED_CONFIDENCE = 0.95
FOREIGN_MIN_CONFIDENCE = 0.8


class LanguageIdentifier:
    """`detect(text, previous)` -> (ISO 639-1 code, confidence in [0, 1])."""

    def __init__(self, languages: Sequence[str] = DEFAULT_LANGUAGES, fallback: str = "en") -> None:
        codes = [c.lower() for c in languages]
        unknown = [c for c in codes if not hasattr(IsoCode639_1, c.upper())]
        if unknown:
            raise ValueError(f"unknown language codes {unknown}; use ISO 639-1 codes like en, de, ja")
        if fallback.lower() not in codes:
            codes.append(fallback.lower())
        self.languages = tuple(codes)
        self.fallback = fallback.lower()
        self._lingua_languages = [_lingua(c) for c in codes]
        self._detector: LanguageDetector | None = None
        self._broad: LanguageDetector | None = None
        self._full: dict[tuple[str, ...], LanguageDetector] = {}
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load lingua's models now rather than on the first message (about a second)."""
        self._lingua().compute_language_confidence_values("warm up the language models")

    def _lingua(self) -> LanguageDetector:
        with self._lock:
            if self._detector is None:
                if len(self._lingua_languages) == 1:
                    self._detector = LanguageDetectorBuilder.from_languages(*self._lingua_languages * 2).build()
                else:
                    self._detector = LanguageDetectorBuilder.from_languages(*self._lingua_languages).build()
            return self._detector

    def _default(self, previous: str | None) -> tuple[str, float]:
        if previous and previous.lower() in self.languages:
            return previous.lower(), 0.0
        return self.fallback, 0.0

    def detect(self, text: str, previous: str | None = None) -> tuple[str, float]:
        # Scripts first: they are unambiguous where lingua's n-grams may hesitate.
        if _KANA.search(text) and "ja" in self.languages:
            return "ja", 1.0
        if _HANGUL.search(text) and "ko" in self.languages:
            return "ko", 1.0
        if _HAN.search(text):
            if "zh" in self.languages:
                return "zh", 0.95
            if "ja" in self.languages:
                return "ja", 0.8
        words = _NOISE.sub(" ", text).strip().lower()
        letters = sum(ch.isalpha() for ch in words)
        if letters < 2 or words in _AMBIGUOUS:
            return self._default(previous)
        short = _SHORT_WORDS.get(words)
        if short is not None and short in self.languages:
            return short, 0.9
        values = self._lingua().compute_language_confidence_values(words)
        if not values:
            return self._default(previous)
        scores = {v.language.iso_code_639_1.name.lower(): float(v.value) for v in values}
        best, best_score = max(scores.items(), key=lambda kv: kv[1])
        prev = previous.lower() if previous else None
        # Inverted question and exclamation marks are written in Spanish only ("¿y a Italia?" reads as Italian).
        if _INVERTED.search(text) and scores.get("es", 0.0) >= INVERTED_MIN_SPANISH:
            return "es", max(scores["es"], 0.9)
        # A conversation rarely switches language: keep the previous one unless the evidence is clear.
        if prev in scores and prev != best and scores[prev] >= 0.5 * best_score and letters < 40:
            return prev, scores[prev]
        if letters < 8 and best_score < 0.5:
            return self._default(previous)
        return best, best_score

    def foreign(self, text: str, confidence: float = 0.0) -> str | None:
        """The language of `text` when it is clearly none of the configured ones, else None.

        `confidence` is what `detect` gave the best configured language; a confident one needs no check.
        """
        words = _NOISE.sub(" ", text).strip().lower()
        letters = sum(ch.isalpha() for ch in words)
        if letters < 2:
            return None
        for pattern, languages in _SCRIPTS:
            if sum(1 for ch in words if pattern.match(ch)) * 2 > letters:
                if any(lang in self.languages for lang in languages):
                    return None  # ours (or a sibling of ours that `detect` already chose between)
                if len(languages) == 1:
                    return languages[0]
                # Which of the script's languages (Russian or Ukrainian, Arabic or Persian) it is, for the agent.
                values = self._full_lingua(languages).compute_language_confidence_values(words)
                return _code(values[0]) if values else languages[0]
        if confidence >= FOREIGN_MAX_CONFIGURED_CONFIDENCE or (letters < FOREIGN_MIN_LETTERS and (
                letters < FOREIGN_MIN_LETTERS_UNSURE or confidence >= FOREIGN_UNSURE_CONFIDENCE)):
            return None
        values = self._broad_lingua().compute_language_confidence_values(words)
        if not values:
            return None
        code = _code(values[0])
        ours = sum(float(v.value) for v in values if _code(v) in self.languages)
        if code in self.languages or float(values[0].value) < FOREIGN_MIN_CONFIDENCE or ours > 1 - FOREIGN_MIN_CONFIDENCE:
            return None
        # Low-accuracy mode errs on short sentences ("how long to get a parcel to Brazil?" -> Vietnamese): the
        # suspect must also beat the configured languages with full models (loaded for the suspect only).
        second = self._full_lingua((*self.languages, code)).compute_language_confidence_values(words)
        if not second or _code(second[0]) != code or second[0].value < FOREIGN_MIN_CONFIDENCE:
            return None
        return code

    def confirming_languages(self) -> set[str]:
        """The languages other than the configured ones whose full models are loaded by now."""
        with self._lock:
            return {code for key in self._full for code in key} - set(self.languages)

    def _full_lingua(self, codes: tuple[str, ...]) -> LanguageDetector:
        """A high-accuracy detector over `codes`, built once (lingua loads each language's models once)."""
        with self._lock:
            detector = self._full.get(codes)
            if detector is None:
                detector = self._full[codes] = LanguageDetectorBuilder.from_languages(*map(_lingua, codes)).build()
            return detector

    def _broad_lingua(self) -> LanguageDetector:
        with self._lock:
            if self._broad is None:
                codes = dict.fromkeys([*self.languages, *DEFAULT_LANGUAGES, *OTHER_LANGUAGES])
                self._broad = LanguageDetectorBuilder.from_languages(*map(_lingua, codes)).with_low_accuracy_mode().build()
            return self._broad


def _lingua(code: str) -> Language:
    return Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper()))


def _code(value: Any) -> str:
    """The ISO 639-1 code of one of lingua's confidence values."""
    return str(value.language.iso_code_639_1.name.lower())
