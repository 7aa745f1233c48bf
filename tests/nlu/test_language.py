"""Language identification on the messages shoppers actually send, short ones included."""

from __future__ import annotations

import pytest

from nlu.language import LanguageIdentifier

LANGS = ("en", "de", "es", "fr", "it", "ja", "zh", "pt", "nl", "ko")


@pytest.fixture(scope="module")
def identify() -> LanguageIdentifier:
    return LanguageIdentifier(LANGS, fallback="en")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Wo ist meine Bestellung? Ich warte seit zwei Wochen.", "de"),
        ("¿Cuánto tarda el envío a Alemania?", "es"),
        ("Je voudrais annuler ma commande, s'il vous plaît", "fr"),
        ("注文した商品はまだ届きませんか", "ja"),
        ("我的订单在哪里", "zh"),
        ("주문이 언제 도착하나요", "ko"),
        ("Quero mudar o endereço de entrega", "pt"),
        ("Vorrei restituire un articolo", "it"),
        ("Waar is mijn bestelling?", "nl"),
        ("gracias!", "es"),
        ("Danke!", "de"),
        ("merci", "fr"),
        ("obrigado", "pt"),
        ("wo ist ND-100105", "de"),
        ("Wo bleibt #100105?", "de"),
        ("dónde está ND-100105", "es"),
        ("where is ND-100105?", "en"),
    ],
)
def test_sentences_and_one_word_thanks(identify: LanguageIdentifier, text: str, lang: str) -> None:
    detected, confidence = identify.detect(text)
    assert detected == lang
    assert confidence > 0


@pytest.mark.parametrize("text", ["ok", "ND-100234", "#1234", "1Z999AA10123456784", "👍", "??"])
def test_messages_without_language_keep_the_conversation_language(identify: LanguageIdentifier, text: str) -> None:
    assert identify.detect(text, previous="de") == ("de", 0.0)
    assert identify.detect(text, previous="ja") == ("ja", 0.0)
    assert identify.detect(text) == ("en", 0.0)  # no hint: the fallback


def test_previous_language_wins_a_close_call(identify: LanguageIdentifier) -> None:
    # "super danke" could be German or Dutch-ish; a German conversation stays German.
    assert identify.detect("super danke", previous="de")[0] == "de"


@pytest.mark.parametrize("previous", ["es", "it", None])
def test_inverted_marks_are_spanish(identify: LanguageIdentifier, previous: str | None) -> None:
    # Alone, "y a Italia" reads as Italian (the country's name is most of it); the "¿" is Spanish only.
    assert identify.detect("¿y a Italia?", previous=previous)[0] == "es"
    assert identify.detect("¡Italia!", previous=previous)[0] == "es"
    # An English sentence quoting a Spanish greeting stays English.
    quoted = "I said ¡Hola! to the courier but he left my parcel outside the door"
    assert identify.detect(quoted, previous=previous)[0] == "en"


def test_clear_switch_of_language_is_followed(identify: LanguageIdentifier) -> None:
    assert identify.detect("Actually, can we continue in English? Where is my parcel?", previous="de")[0] == "en"


def test_only_configured_languages_are_answered() -> None:
    identify = LanguageIdentifier(("en", "de"), fallback="en")
    lang, _ = identify.detect("¿Cuánto tarda el envío a Alemania?")
    assert lang in {"en", "de"}
    with pytest.raises(ValueError, match="ISO 639-1"):
        LanguageIdentifier(("english",))


# Messages in languages the shop has not configured: written apart from the ones the thresholds were chosen on.
FOREIGN = [
    ("Czy mogę zapłacić przy odbiorze? Nie mam karty kredytowej", "pl"),
    ("Ürün kırık geldi, paramı geri istiyorum lütfen", "tr"),
    ("Dobrý den, chtěla bych změnit adresu doručení", "cs"),
    ("Hei, voinko vaihtaa toimitusosoitteen tilaukseeni?", "fi"),
    ("Hej, kan jag ändra leveransadressen på min beställning?", "sv"),
    ("Bună ziua, aș dori să anulez comanda de ieri", "ro"),
    ("Здравствуйте! Можно вернуть ковёр, если он не подошёл?", "ru"),
    ("مرحبا، متى سيصل طلبي؟", "ar"),
    ("Γεια σας, πότε θα φτάσει η παραγγελία μου;", "el"),
    ("שלום, מתי תגיע ההזמנה שלי?", "he"),
    ("สวัสดีค่ะ พัสดุของฉันจะมาถึงเมื่อไหร่", "th"),
    # Short ones that no configured language reads surely (German at 0.32 gave a German fallback).
    ("Gdzie jest moja paczka?", "pl"),
    ("Unde este coletul meu?", "ro"),
]
NATIVE = [
    "how long does a parcel take to reach Brazil?",
    "will the refund go back to PayPal?",
    "cancel my order, I changed my mind",
    "do I owe duty on a 20000 yen order to Osaka",
    "¿Enviáis con DHL Express a Canarias?",
    "Kann ich meine Lieferadresse noch ändern?",
    "Est-ce que je peux payer en plusieurs fois ?",
    "Posso pagare con PayPal?",
    "Waar blijft mijn pakketje? Het duurt nu al twee weken",
    "Vocês entregam em Portugal?",
    "ok",
    "ND-100234",
    "thanks a lot, have a nice day!",
    # Short and read unsurely, but the shop's own.
    "where is my parcel",
    "hola que tal",
    "quanto costa",
    "wo ist mein paket",
]


@pytest.mark.parametrize(("text", "lang"), FOREIGN)
def test_a_language_the_shop_does_not_speak_is_named(identify: LanguageIdentifier, text: str, lang: str) -> None:
    detected, confidence = identify.detect(text)
    assert detected in LANGS  # `detect` still answers with a configured language
    assert identify.foreign(text, confidence) == lang


@pytest.mark.parametrize("text", NATIVE)
def test_messages_in_configured_languages_are_not_foreign(identify: LanguageIdentifier, text: str) -> None:
    _, confidence = identify.detect(text)
    assert identify.foreign(text, confidence) is None


def test_a_default_language_the_shop_left_out_is_foreign() -> None:
    identify = LanguageIdentifier(("en", "de"), fallback="en")
    text = "Hola, quiero devolver la alfombra porque no me gusta el color"
    _, confidence = identify.detect(text)
    assert identify.foreign(text, confidence) == "es"
    # A script the shop's languages share is never foreign by script alone.
    assert LanguageIdentifier(("en", "ru")).foreign("Где мой заказ?") is None

