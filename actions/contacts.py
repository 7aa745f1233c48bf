"""Normalising the contacts shoppers type (emails, phone numbers) so they compare equal to the store's."""

from __future__ import annotations

import phonenumbers


def normalize_email(raw: str | None) -> str | None:
    """Lower-cased, trimmed email; None when it is not an address at all."""
    if not raw:
        return None
    value = raw.strip().strip("<>").strip().lower()
    if value.startswith("mailto:"):
        value = value[7:]
    if "@" not in value or value.startswith("@") or value.endswith("@"):
        return None
    return value


def normalize_phone(raw: str | None, region: str | None = None) -> str | None:
    """E.164 form of a phone number; `region` (ISO country) resolves numbers typed without +CC."""
    if not raw:
        return None
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else (region or "US").upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
