"""Agent replies and shopper messages translated through LibreTranslate or DeepL (local fakes of their
documented APIs on loopback), with clear failures that leave the original text in place."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from handoff.translate import (
    DeepLTranslator,
    LibreTranslateTranslator,
    NoTranslator,
    TranslationUnavailable,
    translate_or_original,
)
from tests.fakes.translators import FakeDeepL, FakeLibreTranslate


@pytest.fixture
def libre() -> Iterator[FakeLibreTranslate]:
    server = FakeLibreTranslate(api_key="lt-secret").start()
    yield server
    server.stop()


@pytest.fixture
def deepl() -> Iterator[FakeDeepL]:
    server = FakeDeepL(api_key="dl-secret:fx").start()
    yield server
    server.stop()


async def test_no_translator_keeps_the_text() -> None:
    result = await NoTranslator().translate("Hallo", "en")
    assert (result.text, result.provider) == ("Hallo", "none")


async def test_libretranslate_translates_and_detects_the_shopper_language(libre: FakeLibreTranslate) -> None:
    translator = LibreTranslateTranslator(libre.url, api_key="lt-secret")
    result = await translator.translate("Wo ist mein Paket? Ich habe vor zwei Wochen bestellt.", "en")
    assert result.text == "Where is my parcel? I ordered two weeks ago."
    assert (result.source_lang, result.provider) == ("de", "libretranslate")
    assert libre.requests[-1]["body"] == {"q": "Wo ist mein Paket? Ich habe vor zwei Wochen bestellt.",
                                          "source": "auto", "target": "en", "format": "text",
                                          "api_key": "lt-secret"}
    reply = await translator.translate("Your parcel is on its way and arrives tomorrow.", "de", source="en")
    assert reply.text == "Ihr Paket ist unterwegs und kommt morgen an."
    await translator.aclose()


async def test_libretranslate_wrong_key_says_to_check_the_key(libre: FakeLibreTranslate) -> None:
    translator = LibreTranslateTranslator(libre.url, api_key="wrong")
    with pytest.raises(TranslationUnavailable, match="check the translator API key"):
        await translator.translate("Hallo", "en")
    await translator.aclose()


async def test_libretranslate_slow_server_times_out_and_the_original_is_kept(libre: FakeLibreTranslate) -> None:
    libre.delay = 1.5
    translator = LibreTranslateTranslator(libre.url, api_key="lt-secret", timeout=0.3)
    translation, problem = await translate_or_original(translator, "Je veux un remboursement.", "en", "fr")
    assert translation.text == "Je veux un remboursement."
    assert problem is not None and "timeout" in problem
    await translator.aclose()


async def test_deepl_sends_the_auth_header_and_reads_the_translations(deepl: FakeDeepL) -> None:
    translator = DeepLTranslator("dl-secret:fx", url=deepl.url)
    result = await translator.translate("Je veux un remboursement.", "en")
    assert (result.text, result.source_lang, result.provider) == ("I want a refund.", "fr", "deepl")
    sent = deepl.requests[-1]
    assert sent["path"] == "/v2/translate"
    assert sent["headers"]["authorization"] == "DeepL-Auth-Key dl-secret:fx"
    assert sent["body"] == {"text": ["Je veux un remboursement."], "target_lang": "EN-US"}
    reply = await translator.translate("Your refund is being processed.", "fr", source="en")
    assert reply.text == "Votre remboursement est en cours."
    await translator.aclose()


async def test_deepl_bad_key_and_timeout(deepl: FakeDeepL) -> None:
    wrong = DeepLTranslator("nope:fx", url=deepl.url)
    with pytest.raises(TranslationUnavailable, match="DeepL refused the auth key"):
        await wrong.translate("Hallo", "en")
    await wrong.aclose()
    deepl.delay = 1.5
    slow = DeepLTranslator("dl-secret:fx", url=deepl.url, timeout=0.3)
    with pytest.raises(TranslationUnavailable, match="within the timeout"):
        await slow.translate("Hallo", "en")
    await slow.aclose()


async def test_unreachable_server_is_reported() -> None:
    translator = LibreTranslateTranslator("http://127.0.0.1:9", timeout=1.0)
    with pytest.raises(TranslationUnavailable, match="cannot reach"):
        await translator.translate("Hallo", "en")
    await translator.aclose()


def test_free_deepl_keys_use_the_free_endpoint() -> None:
    assert DeepLTranslator("abc:fx").url == "https://api-free.deepl.com/v2/translate"
    assert DeepLTranslator("abc").url == "https://api.deepl.com/v2/translate"
