"""Entity extraction: a spaCy EntityRuler built from the training data plus built-in extractors.

Built-ins: order numbers (configurable patterns), parcel tracking numbers with the carrier and
its tracking link, emails, phone numbers (phonenumbers, region from the message language),
country names in the supported languages mapped to ISO 3166 codes (Babel's territory names),
and money amounts with their currency. Synonyms from the training data normalise values.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import phonenumbers
import spacy
from spacy.language import Language as SpacyLanguage

from actions.carriers import tracking_url
from nlu.training_data import TrainingData
from nlu.types import ORIGIN_ROLE, Entity

# Lookarounds on ASCII only: in Japanese or Chinese text a number touches the words around it.
# A pattern with the groups `prefix` and `number` gives PREFIX-NUMBER however the shopper joined them:
# "nd100105", "ND 100105" and "nd-100105" are all ND-100105.
DEFAULT_ORDER_PATTERNS = (r"(?<![A-Za-z0-9-])(?P<prefix>ND)[-\s]?(?P<number>\d{4,8})(?![0-9])",
                          r"(?<![A-Za-z0-9#])#\d{3,8}(?![0-9])")
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")

# Region for phone numbers written without a country code, by message language.
PHONE_REGION = {"en": "US", "de": "DE", "es": "ES", "fr": "FR", "it": "IT", "ja": "JP", "zh": "CN",
                "pt": "BR", "nl": "NL", "ko": "KR"}

# spaCy's Japanese and Korean tokenisers need external dictionaries (SudachiPy, mecab-ko); the
# Chinese blank pipeline splits every CJK character, which is what phrase matching needs.
_SPACY_LANG = {"ja": "zh", "ko": "xx"}


@dataclass(frozen=True)
class Carrier:
    name: str
    pattern: str

    def url(self, number: str) -> str:
        """The carrier's public tracking page for this number (one table for the NLU and the replies)."""
        return tracking_url(self.name, number)


CARRIERS: tuple[Carrier, ...] = (
    Carrier("UPS", r"1Z[0-9A-Z]{16}"),
    Carrier("EMS", r"E[A-Z]\d{9}CN"),
    Carrier("China Post", r"[A-DF-Z][A-Z]\d{9}CN"),
    Carrier("Yanwen", r"(?:[A-Z]{2}\d{9}YP|YW\d{9,12}CN)"),
    Carrier("YunExpress", r"YT\d{16}"),
    Carrier("4PX", r"4PX\d{10,16}(?:CN)?"),
    Carrier("Cainiao", r"(?:LP\d{12,16}|CAINIAO\d{10,16}|CNG\d{9,14})"),
    Carrier("USPS", r"(?:9[1-5]\d{20,24}|[A-Z]{2}\d{9}US|82\d{8})"),
    Carrier("DHL", r"(?:JJD\d{16,20}|JVGL\d{10,20}|GM\d{16,18}|00340\d{15})"),
    Carrier("FedEx", r"(?:96\d{20}|\d{15}|\d{12})"),
)

_CURRENCY_SYMBOLS = {
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR", "us$": "USD", "$": "USD", "usd": "USD",
    "dollar": "USD", "dollars": "USD", "dólares": "USD", "dollari": "USD", "£": "GBP", "gbp": "GBP",
    "pounds": "GBP", "r$": "BRL", "brl": "BRL", "reais": "BRL", "chf": "CHF", "franken": "CHF",
    "円": "JPY", "jpy": "JPY", "yen": "JPY", "元": "CNY", "块": "CNY", "cny": "CNY", "rmb": "CNY",
    "人民币": "CNY", "krw": "KRW", "원": "KRW", "₩": "KRW", "cad": "CAD", "aud": "AUD", "sek": "SEK",
}
_AMOUNT = r"\d{1,3}(?:[.,\u00a0 ]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_CUR = "|".join(sorted((re.escape(k) for k in [*_CURRENCY_SYMBOLS, "¥", "￥"]), key=len, reverse=True))
_MONEY = re.compile(
    rf"(?<![A-Za-z])(?P<pre>{_CUR})\s?(?P<a1>{_AMOUNT})(?![\d])|(?<![A-Za-z0-9.,])(?P<a2>{_AMOUNT})\s?(?P<post>{_CUR})(?![A-Za-z])",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w])")
_CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")

# Everyday names for countries that Babel's official names miss.
_COUNTRY_ALIASES = {
    "usa": "US", "u.s.a.": "US", "america": "US", "the states": "US", "uk": "GB", "britain": "GB",
    "great britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB", "holland": "NL",
    "amerika": "US", "estados unidos": "US", "eeuu": "US", "ee.uu.": "US", "états-unis": "US",
    "etats-unis": "US", "stati uniti": "US", "eua": "US", "inglaterra": "GB", "angleterre": "GB",
    "großbritannien": "GB", "grossbritannien": "GB", "schweiz": "CH", "suisse": "CH", "svizzera": "CH",
    "アメリカ": "US", "米国": "US", "イギリス": "GB", "英国": "GB", "美国": "US", "中國": "CN",
    "台湾": "TW", "香港": "HK", "澳门": "MO", "澳門": "MO", "マカオ": "MO", "韓国": "KR", "韩国": "KR",
    "hong kong": "HK", "hongkong": "HK", "macau": "MO",
    "macao": "MO", "korea": "KR", "south korea": "KR", "czech republic": "CZ", "turkey": "TR", "türkei": "TR",
    "turquía": "TR", "turquie": "TR", "russia": "RU", "uae": "AE", "emirates": "AE",
}
# Country names that are also everyday words or first names in a supported language.
_COUNTRY_STOPLIST = {"chad", "jordan", "jersey", "georgia", "guinea"}
# Entities the built-in extractors find and normalise better than phrases from the training data.
_CHINESE_REGIONS = {"HK", "MO", "TW"}


def _adjacent(a: Entity, b: Entity, text: str) -> bool:
    """Two mentions with only spaces or a comma between them."""
    first, second = (a, b) if a.start < b.start else (b, a)
    return not text[first.end:second.start].strip(" ,，、")


# A country things come from ("do you ship from China?", "made in Germany", "中国から"), not one they go to: it gets
# the role ORIGIN_ROLE, and a destination is not taken from it (it was "Sorry, we don't ship to China").
_ORIGIN_BEFORE = re.compile(
    r"(?:(?<!\w)(?:from|made in|produced in|aus|hergestellt in|desde|hecho en|fabricad[oa] en|depuis|fabriqué en"
    r"|fabriqués en|dalla|dal|prodotto in|fabricado na|fabricado no)\s+(?:the\s+|der\s+|la\s+|le\s+|el\s+)?|从|產自|产自)$",
    re.IGNORECASE)
_ORIGIN_AFTER = re.compile(r"\s*(?:から|製|产|產)")
BUILTIN_ENTITIES = {"order_number", "tracking_number", "email", "phone", "country", "money"}
_DHL_EXPRESS = re.compile(r"(?<![A-Za-z0-9-])\d{10}(?![A-Za-z0-9-])")

_URL = re.compile(r"(?:https?://|www\.)\S+")
# A run of 7+ digits with the separators people type in phone numbers (the extractor validates real ones).
_DIGIT_RUN = re.compile(r"(?<![\w])\+?\d[\d ()./-]{5,}\d(?![\w])")
_LETTER = re.compile(r"[^\W\d_]")


class IdentifierMask:
    """Removes order numbers, tracking numbers, emails, URLs and phone-like digit runs from a message.

    The intent encoders then read what a message asks, not the digits of the order it names: in the demo
    shop "Wo bleibt meine Erstattung für Bestellung ND-100152? paul@example.org" read as order_status (0.55)
    and the same question without the identifiers as refund_status (0.87). Training examples are masked the
    same way. A message that is nothing but identifiers is left as it is (there is nothing else to read).
    """

    def __init__(self, order_patterns: Sequence[str] = DEFAULT_ORDER_PATTERNS) -> None:
        parts = [
            *(f"(?i:{_NAMED_GROUP.sub('(?:', p)})" for p in order_patterns),  # one regex: no repeated names
            _standalone("|".join(c.pattern for c in CARRIERS)),
            _EMAIL.pattern,
            f"(?i:{_URL.pattern})",
            _DIGIT_RUN.pattern,
        ]
        self._pattern = re.compile("|".join(f"(?:{p})" for p in parts))

    def finds(self, text: str) -> bool:
        """Whether the text names an identifier at all."""
        return self._pattern.search(text) is not None

    def __call__(self, text: str) -> str:
        masked = self._pattern.sub("", text)
        return masked if masked != text and _LETTER.search(masked) else text


def _order_value(match: re.Match[str]) -> str:
    groups = match.groupdict()
    if groups.get("prefix") and groups.get("number"):
        return f"{groups['prefix'].upper()}-{groups['number']}"
    return match.group(0).upper()


def _standalone(pattern: str) -> str:
    """A tracking-number pattern that must not be part of a longer code."""
    return rf"(?<![A-Za-z0-9-])(?:{pattern})(?![A-Za-z0-9-])"


@lru_cache(maxsize=16)
def _country_names(languages: tuple[str, ...]) -> dict[str, str]:
    from babel import Locale

    names: dict[str, str] = {}
    for lang in languages:
        try:
            territories = Locale.parse(lang).territories
        except Exception:  # noqa: BLE001 - an unknown locale just contributes no names
            continue
        for code, name in territories.items():
            if len(code) == 2 and code.isalpha() and code not in {"ZZ", "EU", "EZ", "UN", "QO"}:
                names.setdefault(name.lower(), code)
    names.update(_COUNTRY_ALIASES)
    for word in _COUNTRY_STOPLIST:
        names.pop(word, None)
    return names


def country_names(languages: Sequence[str]) -> list[str]:
    """The country names the extractor finds (lower-cased), in English and `languages`."""
    return list(_country_names(tuple(dict.fromkeys(["en", *languages]))))


def _parse_amount(raw: str) -> Decimal | None:
    raw = raw.replace("\u00a0", " ").replace(" ", "")
    last_sep = max(raw.rfind("."), raw.rfind(","))
    if last_sep >= 0 and len(raw) - last_sep - 1 in (1, 2):
        whole, frac = raw[:last_sep], raw[last_sep + 1 :]
    else:
        whole, frac = raw, ""
    whole = whole.replace(".", "").replace(",", "")
    try:
        return Decimal(f"{whole}.{frac}" if frac else whole)
    except InvalidOperation:
        return None


class EntityExtractor:
    """`extract(text, language) -> list[Entity]`, non-overlapping, in text order."""

    def __init__(
        self,
        data: TrainingData | None = None,
        languages: Sequence[str] = ("en",),
        order_patterns: Sequence[str] = DEFAULT_ORDER_PATTERNS,
    ) -> None:
        self.languages = tuple(languages)
        self.synonyms = dict(data.synonyms) if data else {}
        self._order = [re.compile(p, re.IGNORECASE) for p in order_patterns]
        self._tracking = [(c, re.compile(_standalone(c.pattern))) for c in CARRIERS]
        self._regexes = [
            (name, re.compile(p)) for name, patterns in (data.regexes.items() if data else []) for p in patterns
        ]
        self._patterns = self._ruler_patterns(data) if data else []
        names = _country_names(tuple(dict.fromkeys(["en", *self.languages])))
        latin = sorted((n for n in names if not _CJK.search(n)), key=len, reverse=True)
        cjk = sorted((n for n in names if _CJK.search(n)), key=len, reverse=True)
        self._countries = names
        self._country_latin = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, latin)) + r")(?!\w)", re.IGNORECASE)
        self._country_cjk = re.compile("|".join(map(re.escape, cjk))) if cjk else None
        self._pipelines: dict[str, SpacyLanguage] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _ruler_patterns(data: TrainingData) -> list[dict[str, Any]]:
        seen: set[tuple[str, str]] = set()
        patterns: list[dict[str, Any]] = []

        def add(label: str, phrase: str, value: str) -> None:
            key = (label, phrase.lower())
            if phrase.strip() and key not in seen:
                seen.add(key)
                patterns.append({"label": label, "pattern": phrase, "id": value})

        for example in data.examples:
            for ent in example.entities:
                if ent.entity not in BUILTIN_ENTITIES or ent.value != ent.text:
                    add(ent.entity, ent.text, ent.value)
        # A synonym whose canonical value is a known entity value teaches more ways to say it.
        value_label = {ent.value.lower(): ent.entity for e in data.examples for ent in e.entities}
        for variant, canonical in data.synonyms.items():
            label = value_label.get(canonical.lower())
            if label:
                add(label, variant, canonical)
        for name, items in data.lookups.items():
            for item in items:
                add(name, item, item)
        return patterns

    def _pipeline(self, language: str) -> SpacyLanguage:
        with self._lock:
            nlp = self._pipelines.get(language)
            if nlp is None:
                try:
                    nlp = spacy.blank(_SPACY_LANG.get(language, language))
                except (ImportError, KeyError):
                    nlp = spacy.blank("xx")
                # Patterns go in after the pipeline exists: nlp.initialize() would wipe them.
                ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER", "overwrite_ents": True})
                ruler.add_patterns(self._patterns)  # type: ignore[attr-defined]
                self._pipelines[language] = nlp
            return nlp

    def normalise(self, value: str) -> str:
        return self.synonyms.get(value.lower(), value)

    def extract(self, text: str, language: str = "en") -> list[Entity]:
        found: list[Entity] = []
        # Most specific first: a later candidate that overlaps an earlier one is dropped.
        # A number written with "+" or a trunk "0" that is a valid phone number is a phone, even where its
        # digits also fit a carrier's pattern (a Japanese mobile is twelve digits, like a FedEx number).
        phones = self._extract_phones(text, language)
        found += [p for p in phones if p.text.lstrip().startswith(("+", "0", "("))]
        found += self._extract_tracking(text)
        found += self._extract_orders(text)
        found += self._extract_emails(text)
        found += self._extract_regexes(text)
        found += self._extract_ruler(text, language)
        found += self._extract_money(text, language)
        found += phones
        found += self._extract_countries(text)
        kept: list[Entity] = []
        for ent in found:
            if all(ent.end <= k.start or ent.start >= k.end for k in kept):
                kept.append(ent)
        return sorted(kept, key=lambda e: e.start)

    def _extract_tracking(self, text: str) -> list[Entity]:
        out = []
        for carrier, pattern in self._tracking:
            for m in pattern.finditer(text):
                number = m.group(0)
                out.append(Entity("tracking_number", number, number, m.start(), m.end(), "builtin",
                                  extra={"carrier": carrier.name, "tracking_url": carrier.url(number)}))
        # DHL Express numbers are ten bare digits: only believable when the shopper names DHL.
        if "dhl" in text.lower():
            dhl = next(c for c in CARRIERS if c.name == "DHL")
            for m in _DHL_EXPRESS.finditer(text):
                out.insert(0, Entity("tracking_number", m.group(0), m.group(0), m.start(), m.end(), "builtin",
                                     extra={"carrier": "DHL", "tracking_url": dhl.url(m.group(0))}))
        return out

    def _extract_orders(self, text: str) -> list[Entity]:
        return [Entity("order_number", _order_value(m), m.group(0), m.start(), m.end(), "builtin")
                for p in self._order for m in p.finditer(text)]

    def _extract_emails(self, text: str) -> list[Entity]:
        return [Entity("email", m.group(0).lower(), m.group(0), m.start(), m.end(), "builtin")
                for m in _EMAIL.finditer(text)]

    def _extract_regexes(self, text: str) -> list[Entity]:
        return [Entity(name, self.normalise(m.group(0)), m.group(0), m.start(), m.end(), "regex")
                for name, p in self._regexes for m in p.finditer(text) if m.group(0)]

    def _extract_ruler(self, text: str, language: str) -> list[Entity]:
        if not self._patterns:
            return []
        doc = self._pipeline(language)(text)
        return [Entity(span.label_, self.normalise(span.ent_id_ or span.text), span.text, span.start_char,
                       span.end_char, "entity_ruler") for span in doc.ents]

    def _extract_money(self, text: str, language: str) -> list[Entity]:
        out = []
        for m in _MONEY.finditer(text):
            symbol = (m.group("pre") or m.group("post")).lower()
            amount = _parse_amount(m.group("a1") or m.group("a2"))
            if amount is None:
                continue
            currency = _CURRENCY_SYMBOLS.get(symbol)
            if symbol in ("¥", "￥"):
                currency = "CNY" if language == "zh" else "JPY"
            if symbol == "$" and language == "pt":
                currency = "USD"
            out.append(Entity("money", float(amount), m.group(0), m.start(), m.end(), "builtin",
                              extra={"currency": currency, "amount": str(amount)}))
        return out

    def _extract_phones(self, text: str, language: str) -> list[Entity]:
        region = PHONE_REGION.get(language, "US")
        out = []
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            out.append(Entity("phone", e164, match.raw_string, match.start, match.end, "builtin",
                              extra={"region": phonenumbers.region_code_for_number(match.number)}))
        return out

    def _extract_countries(self, text: str) -> list[Entity]:
        out = []
        for pattern in (self._country_latin, self._country_cjk):
            if pattern is None:
                continue
            for m in pattern.finditer(text):
                code = self._countries.get(m.group(0).lower())
                if code:
                    origin = _ORIGIN_BEFORE.search(text, 0, m.start()) or _ORIGIN_AFTER.match(text, m.end())
                    out.append(Entity("country", code, m.group(0), m.start(), m.end(), "builtin",
                                      role=ORIGIN_ROLE if origin else None))
        # "中国香港" / "Hong Kong, China": the region is meant, with its own customs and carriers, not China.
        regions = [e for e in out if e.value in _CHINESE_REGIONS]
        return [e for e in out if not (e.value == "CN" and any(
            _adjacent(e, r, text) for r in regions))]
