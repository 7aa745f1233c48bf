"""Entities a shopper types: order and tracking numbers (with the carrier), emails, phones, countries, money."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions.carriers import tracking_url
from nlu.entities import EntityExtractor, IdentifierMask
from nlu.training_data import load_training_data
from nlu.types import Entity, ParseResult, Sentiment

LANGS = ("en", "de", "es", "fr", "it", "ja", "zh", "pt", "nl")


@pytest.fixture(scope="module")
def extractor() -> EntityExtractor:
    return EntityExtractor(languages=LANGS)


def only(entities: list[Entity], name: str) -> list[Entity]:
    return [e for e in entities if e.entity == name]


@pytest.mark.parametrize(
    ("number", "carrier", "url_part"),
    [
        ("1Z999AA10123456784", "UPS", "ups.com"),
        ("9400111899223344556677", "USPS", "usps.com"),
        ("EA123456789US", "USPS", "usps.com"),
        ("123456789012", "FedEx", "fedex.com"),
        ("9612345678901234567890", "FedEx", "fedex.com"),
        ("JJD000390007827566231", "DHL", "dhl.com"),
        ("GM2951173225174494", "DHL", "dhl.com"),
        ("LZ123456789CN", "China Post", "chinapost"),
        ("RR123456789CN", "China Post", "chinapost"),
        ("EE123456789CN", "EMS", "ems.com.cn"),
        ("LP00123456789012", "Cainiao", "cainiao"),
        ("4PX3001234567890CN", "4PX", "4px.com"),
        ("UG123456789YP", "Yanwen", "yw56"),
        ("YT1234567890123456", "YunExpress", "yuntrack"),
    ],
)
def test_tracking_numbers_name_their_carrier(extractor: EntityExtractor, number: str, carrier: str, url_part: str) -> None:
    text = f"my tracking number is {number}, where is it?"
    (tracking,) = only(extractor.extract(text), "tracking_number")
    assert tracking.value == number
    assert text[tracking.start : tracking.end] == number
    assert tracking.extra["carrier"] == carrier
    assert url_part in tracking.extra["tracking_url"] and number in tracking.extra["tracking_url"]
    # The link the NLU finds is the one the replies give (one table: the China Post links used to differ).
    assert tracking.extra["tracking_url"] == tracking_url(carrier, number)


def test_ten_digit_dhl_express_only_when_dhl_is_named(extractor: EntityExtractor) -> None:
    (dhl,) = only(extractor.extract("DHL says 1234567890 is delayed"), "tracking_number")
    assert dhl.extra["carrier"] == "DHL"
    assert only(extractor.extract("call 1234567890"), "tracking_number") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [("where is ND-100234?", "ND-100234"), ("order nd-100871 please", "ND-100871"),
     ("Bestellung #1043 ist nicht da", "#1043"), ("注文ND-101552はどこ", "ND-101552"),
     # Typed without the dash, or with a space: the same order, written the way the store knows it.
     ("Hi! where's my order nd100105?", "ND-100105"), ("Bestellung ND 100105", "ND-100105"),
     ("注文nd100105はどこ", "ND-100105")],
)
def test_order_numbers(extractor: EntityExtractor, text: str, value: str) -> None:
    assert [e.value for e in only(extractor.extract(text), "order_number")] == [value]


@pytest.mark.parametrize("text", ["I ordered 2nd 1000 units", "and100105", "brand 100105 lamp"])
def test_letters_run_into_digits_are_no_order_number(extractor: EntityExtractor, text: str) -> None:
    assert only(extractor.extract(text), "order_number") == []


def test_a_seller_pattern_with_prefix_and_number_groups_is_written_prefix_dash_number() -> None:
    shop = EntityExtractor(languages=("en",), order_patterns=[r"\b(?P<prefix>SO)[-\s]?(?P<number>\d{6})\b",
                                                              r"\b(?P<prefix>RT)(?P<number>\d{4})\b"])
    found = only(shop.extract("is so 123456 shipped? and RT1234?"), "order_number")
    assert [e.value for e in found] == ["SO-123456", "RT-1234"]
    assert IdentifierMask([r"\b(?P<prefix>SO)-?(?P<number>\d{6})\b", r"\b(?P<prefix>RT)(?P<number>\d{4})\b"])(
        "is SO123456 shipped?") == "is  shipped?"


def test_order_number_patterns_are_configurable() -> None:
    shop = EntityExtractor(languages=("en",), order_patterns=[r"\bSO\d{6}\b"])
    assert [e.value for e in only(shop.extract("is SO123456 shipped? not ND-100234"), "order_number")] == ["SO123456"]


def test_emails_are_lower_cased(extractor: EntityExtractor) -> None:
    (email,) = only(extractor.extract("send it to Anna.Meyer+shop@Example.COM thanks"), "email")
    assert email.value == "anna.meyer+shop@example.com"


@pytest.mark.parametrize(
    ("text", "lang", "e164"),
    [("ruf mich an: 030 1234567", "de", "+49301234567"), ("call me at (415) 555-2671", "en", "+14155552671"),
     ("mi número es +34 612 34 56 78", "es", "+34612345678"), ("電話は090-1234-5678です", "ja", "+819012345678")],
)
def test_phone_numbers_use_the_language_region(extractor: EntityExtractor, text: str, lang: str, e164: str) -> None:
    assert [e.value for e in only(extractor.extract(text, lang), "phone")] == [e164]


@pytest.mark.parametrize(
    ("text", "lang", "code"),
    [("How long to ship to Germany?", "en", "DE"), ("Versand nach Deutschland", "de", "DE"),
     ("envío a Alemania", "es", "DE"), ("livraison en Allemagne", "fr", "DE"), ("ドイツまで何日？", "ja", "DE"),
     ("寄到德国要多久", "zh", "DE"), ("spedizione in Giappone", "it", "JP"), ("entrega no Brasil", "pt", "BR"),
     ("do you ship to the USA?", "en", "US"), ("verzending naar België", "nl", "BE"),
     ("envío a Estados Unidos", "es", "US"), ("發送到日本", "zh", "JP"), ("Can you ship to Hong Kong?", "en", "HK"),
     ("shipping to Turkey?", "en", "TR"), ("发货到中国香港要多久？", "zh", "HK"), ("ship to Hong Kong, China", "en", "HK"),
     ("寄到中国澳门", "zh", "MO")],
)
def test_countries_in_many_languages_become_iso_codes(extractor: EntityExtractor, text: str, lang: str, code: str) -> None:
    assert [e.value for e in only(extractor.extract(text, lang), "country")] == [code]


@pytest.mark.parametrize(
    ("text", "lang", "roles"),
    [("Do you ship from China?", "en", [("CN", "origin")]), ("is the lamp made in Germany", "en", [("DE", "origin")]),
     ("Versendet ihr aus China nach Österreich?", "de", [("CN", "origin"), ("AT", None)]),
     ("¿envían desde China a México?", "es", [("CN", "origin"), ("MX", None)]),
     ("中国から日本まで何日かかりますか", "ja", [("CN", "origin"), ("JP", None)]),
     ("从中国寄到德国要多久", "zh", [("CN", "origin"), ("DE", None)]),
     ("how long to Germany from the USA?", "en", [("DE", None), ("US", "origin")])],
)
def test_a_country_things_come_from_is_the_origin(extractor: EntityExtractor, text: str, lang: str,
                                                   roles: list[tuple[str, str | None]]) -> None:
    # "Do you ship from China?" was answered "Sorry, we don't ship to China".
    found = only(extractor.extract(text, lang), "country")
    assert [(e.value, e.role) for e in found] == roles
    parse = ParseResult(text=text, language=lang, language_confidence=1.0, intent=None, confidence=0.0, ranking=[],
                        entities=found, sentiment=Sentiment({}, ()))
    destination = parse.entity("country")
    assert (destination.value if destination else None) == next((c for c, r in roles if r is None), None)


@pytest.mark.parametrize(
    ("text", "lang", "amount", "currency"),
    [("I paid $45.50", "en", 45.5, "USD"), ("es kostete 1.234,50 €", "de", 1234.5, "EUR"),
     ("cuesta 25,99 EUR", "es", 25.99, "EUR"), ("¥3000払いました", "ja", 3000.0, "JPY"),
     ("我付了200元", "zh", 200.0, "CNY"), ("paguei R$ 89,90", "pt", 89.9, "BRL"), ("£12 refund", "en", 12.0, "GBP")],
)
def test_money_with_currency(extractor: EntityExtractor, text: str, lang: str, amount: float, currency: str) -> None:
    (money,) = only(extractor.extract(text, lang), "money")
    assert money.value == pytest.approx(amount)
    assert money.extra["currency"] == currency


def test_training_data_teaches_entities_and_synonyms_normalise(tmp_path: Path) -> None:
    (tmp_path / "nlu.yml").write_text(
        "nlu:\n- intent: buy\n  examples: |\n    - I want the [red](color) one\n    - in [navy](color:blue) please\n"
        "    - size [XL](size)\n- synonym: blue\n  examples: |\n    - dark blue\n    - azul\n"
        "- lookup: material\n  examples: |\n    - merino wool\n    - cotton\n"
        "- regex: sku\n  examples: |\n    - SKU-\\d{4}\n- intent: other\n  examples: |\n    - hi\n",
        encoding="utf-8",
    )
    extractor = EntityExtractor(load_training_data(tmp_path), languages=("en", "es", "zh"))
    found = {(e.entity, e.value) for e in extractor.extract("a DARK BLUE shirt in Merino Wool, size XL, SKU-1234")}
    assert found == {("color", "blue"), ("material", "merino wool"), ("size", "XL"), ("sku", "SKU-1234")}
    assert {(e.entity, e.value) for e in extractor.extract("la quiero en azul", "es")} == {("color", "blue")}
    assert {(e.entity, e.value) for e in extractor.extract("I like navy")} == {("color", "blue")}
    # The Chinese pipeline splits characters, so phrase patterns still match inside CJK text.
    assert ("material", "cotton") in {(e.entity, e.value) for e in extractor.extract("我要cotton的", "zh")}


def test_overlaps_keep_the_most_specific_entity(extractor: EntityExtractor) -> None:
    entities = extractor.extract("order ND-100234, tracking 123456789012, phone +1 415 555 2671")
    assert [(e.entity, e.text) for e in entities] == [
        ("order_number", "ND-100234"), ("tracking_number", "123456789012"), ("phone", "+1 415 555 2671")]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Wo bleibt meine Erstattung für Bestellung ND-100152? paul.mueller902@example.org",
         "Wo bleibt meine Erstattung für Bestellung ? "),
        ("did you refund order #1046?", "did you refund order ?"),
        ("注文ND-100256の返金状況", "注文の返金状況"),
        ("tracking 1Z999AA10123456784 says nothing", "tracking  says nothing"),
        ("mi número es +34 612 345 678, llamadme", "mi número es , llamadme"),
        ("see https://shop.example/orders/7?x=1 please", "see  please"),
    ],
)
def test_identifiers_are_masked_for_reading_the_intent(text: str, masked: str) -> None:
    assert IdentifierMask()(text) == masked


@pytest.mark.parametrize("text", ["ND-100152", "ND-100152, paul@example.org", "where is my order?", "order 12345"])
def test_a_message_of_identifiers_only_or_without_any_is_left_as_it_is(text: str) -> None:
    assert IdentifierMask()(text) == text


def test_the_mask_follows_the_configured_order_patterns() -> None:
    mask = IdentifierMask([r"SO-\d{6}"])
    assert mask("status of so-123456 please") == "status of  please"
    assert mask("status of ND-100152 please") == "status of ND-100152 please"
