"""Canned responses for agents, with variables such as {{order.tracking_url}} or {{customer.name}}
filled from the ticket's context; an unknown variable is an error that names it, never a blank."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")


class UnknownVariable(KeyError):
    def __init__(self, name: str, available: Iterable[str]) -> None:
        self.name = name
        self.available = sorted(available)
        super().__init__(name)

    def __str__(self) -> str:
        choices = ", ".join("{{" + a + "}}" for a in self.available) or "none"
        return f"the canned response uses {{{{{self.name}}}}}, which this conversation does not have; available: {choices}"


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    current: Any = values
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif not isinstance(current, Mapping) and hasattr(current, part) and not part.startswith("_"):
            current = getattr(current, part)
        else:
            raise KeyError(path)
    if current is None:
        raise KeyError(path)
    return current


def available_variables(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every dotted name a template may use with these values (for the error message and the editor)."""
    names: list[str] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            names.extend(available_variables(value, name + "."))
        elif value is not None:
            names.append(name)
    return names


def _same_order(a: str, b: str) -> bool:
    return a.strip().lstrip("#").strip().upper() == b.strip().lstrip("#").strip().upper()


def canned_values(customer: Mapping[str, Any], order_number: str | None,
                  orders: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The variables of a ticket: `customer.*`, and `order.*` from the store's order (its number as the
    store writes it, `tracking_url` the carrier's page for its latest shipment). The order is the ticket's;
    without one, the customer's only order."""
    known = [o for o in orders if o.get("number")]
    if order_number:
        order = next((o for o in known if _same_order(str(o["number"]), order_number)), {"number": order_number})
    else:
        order = known[0] if len(known) == 1 else {}
    fields = {"number": order.get("number"), "tracking_url": order.get("tracking_url"),
              "status": order.get("status"), "carrier": order.get("carrier")}
    return {"customer": {k: v for k, v in customer.items() if v}, "order": {k: v for k, v in fields.items() if v}}


def variables_in(template: str) -> list[str]:
    return [m.group(1) for m in _VARIABLE.finditer(template)]


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill every {{dotted.name}}; raises UnknownVariable for the first one the values do not have."""

    def fill(match: re.Match[str]) -> str:
        try:
            return str(_lookup(values, match.group(1)))
        except KeyError:
            raise UnknownVariable(match.group(1), available_variables(values)) from None

    return _VARIABLE.sub(fill, template)


@dataclass(frozen=True)
class CannedResponse:
    key: str
    locale: str
    title: str
    body: str

    def render(self, values: Mapping[str, Any]) -> str:
        return render(self.body, values)


class CannedResponses:
    """The seller's canned responses by key and locale, falling back to the default locale."""

    def __init__(self, responses: Iterable[CannedResponse], default_locale: str = "en") -> None:
        self.default_locale = default_locale
        self._by_key: dict[str, dict[str, CannedResponse]] = {}
        for response in responses:
            self._by_key.setdefault(response.key, {})[response.locale] = response

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Mapping[str, str]]], default_locale: str = "en"
                  ) -> CannedResponses:
        """`{"tracking": {"en": {"title": "...", "body": "..."}, "de": {...}}}` (as in the project's YAML)."""
        return cls((CannedResponse(key, locale, str(item.get("title", key)), str(item["body"]))
                    for key, locales in data.items() for locale, item in locales.items()), default_locale)

    def keys(self) -> list[str]:
        return sorted(self._by_key)

    def get(self, key: str, locale: str) -> CannedResponse:
        variants = self._by_key.get(key)
        if not variants:
            raise KeyError(f"no canned response {key!r}; known: {', '.join(self.keys()) or 'none'}")
        lang = locale.split("-")[0]
        return variants.get(lang) or variants.get(self.default_locale) or next(iter(variants.values()))

    def for_locale(self, locale: str) -> list[CannedResponse]:
        return [self.get(key, locale) for key in self.keys()]
