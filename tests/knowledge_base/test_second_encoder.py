"""The optional second KB encoder (MiniLM) for English questions: better English matching, its own confidence
fit, other languages untouched, and publishes re-encode only what changed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.config import Settings
from bot.runtime import search_settings
from knowledge_base.search import KBSearcher, SearchSettings
from tests.knowledge_base.conftest import article, demo_kb_searcher
from tests.knowledge_base.test_incremental import ARTICLES

SECOND = SearchSettings(second_encoder="sentence-transformers")


@pytest.fixture(scope="module")
def second_searcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KBSearcher]:
    yield from demo_kb_searcher(tmp_path_factory.mktemp("demo-kb-second") / "kb.db", SECOND)


def test_english_paraphrases_the_multilingual_encoder_is_unsure_of_are_found(
    demo_searcher: KBSearcher, second_searcher: KBSearcher
) -> None:
    for text, expected in [("which cards can I use at checkout?", "payment-methods"),
                           ("what do I do with stuff I no longer want?", "returns-refunds")]:
        alone, both = demo_searcher.search(text, "en"), second_searcher.search(text, "en")
        assert alone.best is not None and both.best is not None
        assert both.best.article_id == expected
        # The multilingual encoder hardly tells these English paraphrases from other articles' questions.
        assert alone.confidence < 0.3
        assert both.confidence > alone.confidence + 0.1, (text, alone.confidence, both.confidence)

    both = second_searcher.search("what are my options for paying?", "en")
    assert both.best is not None and both.best.article_id == "payment-methods" and both.confident

    off_topic = second_searcher.search("what will the weather be in Paris tomorrow?", "en")
    assert not off_topic.confident


def test_english_gets_its_own_confidence_fit_and_other_languages_are_untouched(
    demo_searcher: KBSearcher, second_searcher: KBSearcher
) -> None:
    loaded = second_searcher._loaded
    assert loaded is not None and loaded.second is not None and loaded.second_calibration is not None
    assert loaded.second_calibration.stats["fitted"] == 1.0
    assert loaded.second_calibration.threshold != loaded.calibration.threshold
    english = second_searcher.search("how long until the refund shows on my card?", "en")
    assert english.threshold == loaded.second_calibration.threshold
    for text, locale in [("Muss ich beim Empfang des Pakets noch Zoll oder Steuern zahlen?", "de"),
                         ("買った商品を返品したいのですが、どうすればいいですか", "ja")]:
        with_second, without = second_searcher.search(text, locale), demo_searcher.search(text, locale)
        assert with_second.threshold == loaded.calibration.threshold == demo_searcher.threshold
        assert [(c.article_id, c.confidence) for c in with_second.candidates] == [
            (c.article_id, c.confidence) for c in without.candidates]


class _Counting:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.texts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, texts: list[str]) -> Any:
        self.texts += len(texts)
        return self.inner.encode(texts)


async def test_a_publish_re_encodes_only_the_changed_english_article(kb: Any) -> None:
    articles = [*ARTICLES, article("shipping", "de", "Lieferzeiten", "Pakete brauchen 7 bis 12 Werktage.",
                                   ["Wie lange dauert die Lieferung?", "Wann kommt mein Paket an?"])]
    await kb.import_articles(articles, author="seller")
    searcher = KBSearcher(kb, settings=SECOND)
    counting = _Counting(searcher.second_encoder)
    searcher.second_encoder = counting  # type: ignore[assignment]
    await searcher.refresh()
    first = counting.texts
    assert first == _english_entries(searcher) > 0  # titles, questions and answer chunks of the English docs

    changed = article("returns", "en", "Returns", "You can return items within **60 days** of delivery.",
                      ["how do I return an item?", "what is your return policy?", "can I send something back?"])
    await kb.publish_article(changed, author="ana")
    assert await searcher.refresh()
    index = searcher.index
    assert index is not None
    start, end = index.doc_rows[index.by_key[("returns", "en")]]
    assert counting.texts - first == end - start  # only the returns article, not the shipping one
    # Three articles are too few to fit a confidence on: English is searched as every other language is.
    assert searcher._loaded is not None and searcher._loaded.second is None
    after = searcher.search("what is the deadline to send back a product?", "en")
    assert after.best is not None and after.best.version == 2 and "60 days" in after.best.answer


def _english_entries(searcher: KBSearcher) -> int:
    index = searcher.index
    assert index is not None
    return sum(int(end - start) for (start, end), lang in zip(index.doc_rows, index.doc_lang, strict=True)
               if lang == "en")


def test_the_setting_reaches_the_search_and_unknown_encoders_are_refused() -> None:
    assert search_settings(Settings(kb_second_encoder="sentence-transformers")).second_encoder == "sentence-transformers"
    assert search_settings(Settings()).second_encoder is None
    with pytest.raises(ValueError, match="kb_second_encoder"):
        Settings(kb_second_encoder="word2vec")
