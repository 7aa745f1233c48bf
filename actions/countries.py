"""Destination countries as shoppers write them ("Deutschland", "日本", "uk") resolved to ISO codes."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from babel import Locale

_LANGUAGES = ("en", "de", "es", "fr", "it", "nl", "pt", "ja", "zh", "ko", "pl", "sv")
_EXTRA = {"uk": "GB", "england": "GB", "britain": "GB", "great britain": "GB", "usa": "US",
          "america": "US", "u.s.": "US", "u.s.a.": "US", "holland": "NL", "美国": "US", "英国": "GB"}


def _key(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(c for c in folded if not unicodedata.combining(c)).replace("the ", "", 1)


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    names: dict[str, str] = {}
    for language in _LANGUAGES:
        for code, name in Locale.parse(language).territories.items():
            if len(code) == 2 and code.isalpha():
                names.setdefault(_key(name), code)
    names.update({_key(k): v for k, v in _EXTRA.items()})
    return names


def resolve_country(text: str | None) -> str | None:
    """ISO 3166-1 alpha-2 code for a country code or name in any of the supported languages."""
    if not text:
        return None
    stripped = text.strip()
    if len(stripped) == 2 and stripped.isalpha() and stripped.upper() in Locale.parse("en").territories:
        return stripped.upper()
    return _names().get(_key(stripped))
