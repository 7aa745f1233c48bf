"""domain.yml-style response templates with a variant per locale, rendered in the shopper's language.

Format (the `responses:` section of a Rasa domain): each response is a list of variants; a variant's
locale is `metadata: {locale: de}` (Rasa-compatible) or a top-level `locale: de` key; a variant with no
locale belongs to the fallback locale. `{name}` is replaced by a variable; `{name:spec}` formats it
for the locale: `date` / `date_long` / `date_short` (ISO date or date), `datetime`, `money` ("12.50 EUR",
{"amount", "currency"} or Money), `number`, `country` (ISO code -> localised country name). Dates,
Decimals and Money values are also formatted without a spec. `buttons` (title, payload) are kept, with
their titles substituted (payloads kept verbatim). A missing translation falls back to the fallback locale,
is logged and reported as `RenderedResponse.fallback_used`.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

logger = logging.getLogger(__name__)

_MONEY_RE = re.compile(r"^\s*(-?[\d.,]+)\s+([A-Z]{3})\s*$")


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


@dataclass(frozen=True)
class Variant:
    locale: str
    text: str
    buttons: tuple[dict[str, str], ...] = ()
    image: str | None = None


@dataclass(frozen=True)
class RenderedResponse:
    name: str
    text: str
    locale: str  # the locale the text is in
    requested_locale: str
    fallback_used: bool
    buttons: tuple[dict[str, str], ...] = ()
    image: str | None = None
    missing_variables: tuple[str, ...] = field(default_factory=tuple)


class UnknownResponse(KeyError):
    """The domain has no response with this name."""


def _language(locale: str) -> str:
    return locale.replace("-", "_").split("_")[0].lower()


def _babel_locale(locale: str) -> Locale:
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(_language(locale) or "en")


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).date() if "T" in value else date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _as_money(value: Any) -> Money | None:
    if isinstance(value, Money):
        return value
    if isinstance(value, Mapping) and "amount" in value and "currency" in value:
        try:
            return Money(Decimal(str(value["amount"])), str(value["currency"]))
        except InvalidOperation:
            return None
    if isinstance(value, str) and (m := _MONEY_RE.match(value)):
        try:
            return Money(Decimal(m.group(1).replace(",", "")), m.group(2))
        except InvalidOperation:
            return None
    return None


# In running English text these names take their article ("delivery to the United States"); the responses put
# a country in the middle of a sentence. Other languages' responses name the country after a label instead
# ("Lieferziel Vereinigte Staaten:"), where no article or preposition has to agree with it.
ENGLISH_NAMES_WITH_THE = frozenset({
    "US", "GB", "NL", "PH", "AE", "DO", "BS", "GM", "MV", "CF", "KM", "SC", "SB", "MH", "KY", "VG", "VI", "FO", "FK",
})


def format_value(value: Any, spec: str, locale: str) -> str:
    """One variable formatted for the locale according to the placeholder's spec."""
    loc = _babel_locale(locale)
    if spec in ("date", "date_long", "date_short", "date_medium"):
        d = _as_date(value)
        if d is not None:
            width = {"date": "long", "date_long": "long", "date_short": "short", "date_medium": "medium"}[spec]
            return format_date(d, format=width, locale=loc)
    if spec == "datetime" and isinstance(value, str | datetime):
        dt = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return format_datetime(dt, format="medium", locale=loc)
    if spec == "money" or isinstance(value, Money):
        m = _as_money(value)
        if m is not None:
            return format_currency(m.amount, m.currency, locale=loc)
    if spec == "number" or isinstance(value, Decimal | float) and not isinstance(value, bool):
        try:
            return format_decimal(Decimal(str(value)), locale=loc)
        except InvalidOperation:
            pass
    if spec == "country" and isinstance(value, str):
        name = loc.territories.get(value.upper(), value)
        if loc.language == "en" and value.upper() in ENGLISH_NAMES_WITH_THE:
            return f"the {name}"
        return name
    if not spec and isinstance(value, datetime):
        return format_datetime(value, format="medium", locale=loc)
    if not spec and isinstance(value, date):
        return format_date(value, format="long", locale=loc)
    return "" if value is None else str(value)


class ResponseCatalog:
    """All responses of a domain, rendered per locale."""

    def __init__(self, responses: Mapping[str, list[Variant]], fallback_locale: str = "en") -> None:
        self.fallback_locale = fallback_locale
        self._responses: dict[str, dict[str, list[Variant]]] = {}
        for name, variants in responses.items():
            by_locale: dict[str, list[Variant]] = {}
            for v in variants:
                by_locale.setdefault(v.locale.replace("-", "_"), []).append(v)
            self._responses[name] = by_locale

    @classmethod
    def from_domain(cls, path: str | Path, fallback_locale: str = "en") -> ResponseCatalog:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return cls.from_dict(data.get("responses") or {}, fallback_locale)

    @classmethod
    def from_dict(cls, responses: Mapping[str, Any], fallback_locale: str = "en") -> ResponseCatalog:
        parsed: dict[str, list[Variant]] = {}
        for name, variants in responses.items():
            if not isinstance(variants, list) or not variants:
                raise ValueError(f"response {name!r}: expected a list of variants")
            items = []
            for raw in variants:
                if not isinstance(raw, Mapping) or "text" not in raw:
                    raise ValueError(f"response {name!r}: every variant needs a 'text'")
                locale = raw.get("locale") or (raw.get("metadata") or {}).get("locale") or fallback_locale
                buttons = tuple({"title": str(b["title"]), "payload": str(b["payload"])}
                                for b in raw.get("buttons") or [])
                items.append(Variant(locale=str(locale), text=str(raw["text"]), buttons=buttons,
                                     image=raw.get("image")))
            parsed[name] = items
        return cls(parsed, fallback_locale)

    def __contains__(self, name: object) -> bool:
        return name in self._responses

    @property
    def names(self) -> list[str]:
        return sorted(self._responses)

    def locales(self, name: str) -> set[str]:
        return set(self._responses.get(name, {}))

    def missing_translations(self, locales: list[str]) -> dict[str, list[str]]:
        """For each response, the wanted locales that have no variant of their own."""
        missing: dict[str, list[str]] = {}
        for name, by_locale in self._responses.items():
            have = {_language(loc) for loc in by_locale} | set(by_locale)
            lacking = [loc for loc in locales if loc.replace("-", "_") not in have and _language(loc) not in have]
            if lacking:
                missing[name] = lacking
        return missing

    def _pick(self, name: str, locale: str) -> tuple[Variant, bool]:
        by_locale = self._responses.get(name)
        if by_locale is None:
            raise UnknownResponse(name)
        wanted = locale.replace("-", "_")
        for candidate in (wanted, _language(wanted)):
            if candidate in by_locale:
                return by_locale[candidate][0], False
        # A regional variant (pt_BR) serves its language (pt) when no exact match exists.
        for loc, variants in by_locale.items():
            if _language(loc) == _language(wanted):
                return variants[0], False
        for candidate in (self.fallback_locale, _language(self.fallback_locale)):
            if candidate in by_locale:
                return by_locale[candidate][0], True
        return next(iter(by_locale.values()))[0], True

    def render(
        self,
        name: str,
        locale: str,
        variables: Mapping[str, Any] | None = None,
        extra_buttons: list[dict[str, str]] | None = None,
    ) -> RenderedResponse:
        """The response in `locale` (or the fallback, reported), variables substituted and formatted."""
        variant, fallback = self._pick(name, locale)
        if fallback:
            logger.warning("response %s has no %s translation; sent in %s", name, locale, variant.locale)
        missing: list[str] = []
        variables = variables or {}
        # Regional conventions (de_AT, en_GB, pt_BR) apply when the text is in the shopper's language.
        fmt_locale = locale if _language(locale) == _language(variant.locale) else variant.locale
        text = self._substitute(variant.text, variables, fmt_locale, missing)
        buttons = tuple({"title": self._substitute(b["title"], variables, fmt_locale, missing),
                         "payload": b["payload"]}  # machine-readable, e.g. /csat{"score":1}: kept verbatim
                        for b in variant.buttons)
        if extra_buttons:
            # Dynamic choices (clarifying questions) come before the template's own fixed buttons.
            buttons = tuple({"title": b["title"], "payload": b["payload"]} for b in extra_buttons) + buttons
        if missing:
            logger.warning("response %s: no value for %s", name, ", ".join(sorted(set(missing))))
        return RenderedResponse(name=name, text=text, locale=variant.locale, requested_locale=locale,
                                fallback_used=fallback, buttons=buttons, image=variant.image,
                                missing_variables=tuple(sorted(set(missing))))

    @staticmethod
    def _substitute(template: str, variables: Mapping[str, Any], locale: str, missing: list[str]) -> str:
        out: list[str] = []
        for literal, field_name, spec, _conv in string.Formatter().parse(template):
            out.append(literal)
            if field_name is None:
                continue
            if field_name not in variables or variables[field_name] is None:
                missing.append(field_name)
                out.append("{" + field_name + (":" + spec if spec else "") + "}")
                continue
            out.append(format_value(variables[field_name], spec or "", locale))
        return "".join(out)
