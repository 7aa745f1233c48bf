"""Responses come in the shopper's language with local dates and money; gaps fall back and are reported."""

from __future__ import annotations

import logging

import pytest

from actions.responses import ResponseCatalog, UnknownResponse
from tests.conftest import DEMO_PROJECT

REQUIRED = ["utter_greet", "utter_goodbye", "utter_thanks", "utter_fallback", "utter_ask_order_number",
            "utter_ask_email_or_phone", "utter_ownership_failed", "utter_rate_limited", "utter_clarify",
            "utter_handoff", "utter_after_hours", "utter_store_unavailable", "utter_media_unsupported",
            "utter_ask_csat", "utter_csat_thanks", "utter_bot_challenge", "utter_confirm_cancel"]


@pytest.fixture(scope="module")
def catalog() -> ResponseCatalog:
    return ResponseCatalog.from_domain(DEMO_PROJECT / "domain.yml")


def test_demo_domain_speaks_every_configured_language_everywhere(catalog: ResponseCatalog) -> None:
    assert set(REQUIRED) <= set(catalog.names)
    assert catalog.missing_translations(["en", "de", "es", "fr", "ja", "zh", "it", "pt", "nl"]) == {}
    assert catalog.missing_translations(["ko"]) == {name: ["ko"] for name in catalog.names}


def test_dates_and_money_follow_the_shoppers_locale(catalog: ResponseCatalog) -> None:
    variables = {"order_number": "ND-100101", "amount": "1234.50 EUR", "refund_date": "2026-11-03"}
    def plain(s: str) -> str:
        return s.replace("\u202f", " ").replace("\xa0", " ")

    de = catalog.render("utter_refund_status_processed", "de-DE", variables)
    assert de.locale == "de" and not de.fallback_used
    assert "1.234,50 €" in plain(de.text) and "3. November 2026" in de.text
    fr = catalog.render("utter_refund_status_processed", "fr", variables)
    assert "1 234,50 €" in plain(fr.text) and "3 novembre 2026" in fr.text
    en = catalog.render("utter_refund_status_processed", "en-US", variables)
    assert "€1,234.50" in en.text and "November 3, 2026" in en.text
    gb = catalog.render("utter_refund_status_processed", "en-GB", variables)
    assert "3 November 2026" in gb.text
    zh = catalog.render("utter_refund_status_processed", "zh", variables)
    assert "2026年11月3日" in zh.text


def test_missing_translation_falls_back_and_is_reported(
    catalog: ResponseCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="actions.responses"):
        rendered = catalog.render("utter_rate_limited", "ko", {"minutes": 12})
    assert rendered.fallback_used and rendered.locale == "en" and rendered.requested_locale == "ko"
    assert "try again in 12 minutes" in rendered.text
    assert "utter_rate_limited has no ko translation" in caplog.text
    italian = catalog.render("utter_rate_limited", "it", {"minutes": 12})
    assert not italian.fallback_used and "Riprova tra 12 minuti" in italian.text
    # A project whose fallback is German falls back to German.
    german_first = ResponseCatalog.from_domain(DEMO_PROJECT / "domain.yml", fallback_locale="de")
    assert german_first.render("utter_goodbye", "ko").text.startswith("Auf Wiedersehen")


def test_buttons_are_kept_and_dynamic_choices_come_first(catalog: ResponseCatalog) -> None:
    csat = catalog.render("utter_ask_csat", "ja")
    assert [b["title"] for b in csat.buttons] == ["1", "2", "3", "4", "5"]
    assert csat.buttons[4]["payload"] == '/csat{"score":5}'
    clarify = catalog.render("utter_clarify", "es", extra_buttons=[
        {"title": "Plazos de envío", "payload": "/faq/shipping_time"},
        {"title": "Devoluciones", "payload": "/faq/returns"}])
    assert [b["title"] for b in clarify.buttons] == ["Plazos de envío", "Devoluciones", "Otra cosa"]


def test_variant_locale_key_and_missing_values(caplog: pytest.LogCaptureFixture) -> None:
    catalog = ResponseCatalog.from_dict({
        "utter_eta": [{"text": "Arrives {eta:date_short} to {country:country}"},
                      {"locale": "pt_BR", "text": "Chega em {eta:date_short} para {country:country}"}],
    })
    assert catalog.render("utter_eta", "pt-BR", {"eta": "2026-12-24", "country": "DE"}).text == (
        "Chega em 24/12/2026 para Alemanha")
    assert catalog.render("utter_eta", "pt", {"eta": "2026-12-24", "country": "DE"}).locale == "pt_BR"
    with caplog.at_level(logging.WARNING, logger="actions.responses"):
        rendered = catalog.render("utter_eta", "en", {"country": "JP"})
    assert rendered.missing_variables == ("eta",) and "Japan" in rendered.text
    assert "no value for eta" in caplog.text
    with pytest.raises(UnknownResponse):
        catalog.render("utter_nope", "en")
