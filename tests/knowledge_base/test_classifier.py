"""The article classifier: a softmax over the articles and an off-topic class, fitted at every index build,
that gives the calibrated confidence a learnt view of the question next to the nearest-neighbour scores."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from bot.config import Settings
from bot.runtime import search_settings
from knowledge_base.index import KIND_QUESTION
from knowledge_base.search import FEATURES, KBSearcher, SearchSettings, _question_families, fit_classifier
from knowledge_base.service import KnowledgeBase
from tests.knowledge_base.conftest import article, demo_kb_searcher
from tests.knowledge_base.test_incremental import ARTICLES

# An article the demo KB does not have, published by the tests.
GIFT_WRAP = article(
    "gift-wrap", "en", "Gift wrapping",
    "Every order can be gift wrapped for USD 4: tick *Gift wrap* at checkout and add a card message.",
    ["Can you gift wrap my order?", "Do you offer gift wrapping?", "Can I add a gift message?",
     "Is gift packaging available?", "Can the parcel be wrapped as a present?", "How much does gift wrapping cost?"])


@pytest.fixture(scope="module")
def plain_searcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KBSearcher]:
    """The demo KB searched as before the classifier: nearest neighbours and BM25 only."""
    yield from demo_kb_searcher(tmp_path_factory.mktemp("demo-kb-plain") / "kb.db", SearchSettings(classifier=False))


def test_the_classifier_answers_paraphrases_nearest_neighbours_were_unsure_of(
    demo_searcher: KBSearcher, plain_searcher: KBSearcher
) -> None:
    loaded = demo_searcher._loaded
    assert loaded is not None and loaded.classifier is not None
    assert loaded.calibration.stats["classifier"] == 1.0
    assert plain_searcher._loaded is not None and plain_searcher._loaded.classifier is None
    gained = []
    for text, expected in [("is it possible to get my money back for an item?", "returns-refunds"),
                           ("what are my options for paying?", "payment-methods"),
                           ("where's my parcel right now?", "order-tracking")]:
        with_it, without = demo_searcher.search(text, "en"), plain_searcher.search(text, "en")
        assert with_it.best is not None and with_it.best.article_id == expected, text
        assert with_it.confidence > without.confidence, text
        gained.append(with_it.confident and (not without.confident or without.best is None
                                             or without.best.article_id != expected))
    assert any(gained), "the classifier made none of these paraphrases a confident answer"
    # Still no answer to what no article covers, in any language.
    for text, locale in [("what will the weather be in Paris tomorrow?", "en"),
                         ("Wer hat die Fußball-WM 2014 gewonnen?", "de"), ("おすすめのレストランを教えて", "ja")]:
        assert not demo_searcher.search(text, locale).confident, text


def test_the_classifier_probability_is_a_feature_of_every_candidate(demo_searcher: KBSearcher) -> None:
    result = demo_searcher.search("how can I send something back?", "en")
    loaded = demo_searcher._loaded
    assert loaded is not None and loaded.classifier is not None and result.best is not None
    probs = loaded.classifier.probs(demo_searcher.encoder.encode(["how can I send something back?"]))[0]
    assert probs.shape == (len(loaded.index.article_ids) + 1,) and abs(float(probs.sum()) - 1.0) < 1e-4
    assert loaded.index.article_ids[int(np.argmax(probs[:-1]))] == "returns-refunds"
    coef = dict(zip(FEATURES, loaded.calibration.coef, strict=True))
    assert coef["classifier"] > 0, "a higher classifier probability must raise the confidence"


def test_translations_of_a_question_share_a_cross_validation_fold(demo_searcher: KBSearcher) -> None:
    index = demo_searcher.index
    assert index is not None
    rows = np.flatnonzero(index.alive & (index.entry_kind == KIND_QUESTION))
    families = dict(zip(rows.tolist(), _question_families(index, rows), strict=True))

    def row_of(article_id: str, locale: str, text: str) -> int:
        doc = index.by_key[(article_id, locale)]
        start = int(index.doc_rows[doc][0])
        return start + index.doc_vectors[doc].texts.index(text)

    en = row_of("invoices-vat", "en", "How do I get an invoice for my order?")
    de = row_of("invoices-vat", "de", "Wie bekomme ich eine Rechnung für meine Bestellung?")
    assert families[de] == families[en], "the German translation of the question is in its family"
    other = row_of("returns-refunds", "en", "How do I return an item?")
    assert families[other] != families[en]
    assert len(set(families.values())) > len(rows) / 10, "families are small groups, not a few giant ones"


async def test_a_published_article_is_a_class_of_the_refitted_classifier(kb: KnowledgeBase) -> None:
    await kb.import_articles(ARTICLES, author="tests")
    searcher = KBSearcher(kb)
    await searcher.refresh()
    assert searcher._loaded is not None and searcher._loaded.classifier is not None
    before = searcher._loaded.classifier.coef.shape[0]
    await kb.import_articles([GIFT_WRAP], author="tests")
    await searcher.refresh()
    loaded = searcher._loaded
    assert loaded.classifier is not None and loaded.classifier.coef.shape[0] == before + 1
    pos = loaded.index.article_ids.index("gift-wrap")
    probs = loaded.classifier.probs(searcher.encoder.encode(["could you wrap it as a present for my mum?"]))[0]
    assert int(np.argmax(probs[:-1])) == pos


async def test_no_classifier_above_the_article_limit(kb: KnowledgeBase) -> None:
    await kb.import_articles(ARTICLES, author="tests")
    searcher = KBSearcher(kb, settings=SearchSettings(classifier_max_articles=2))
    await searcher.refresh()
    assert searcher._loaded is not None and searcher._loaded.classifier is None
    assert fit_classifier(searcher._loaded.index, searcher.encoder, searcher.settings) is None
    result = searcher.search("how long does shipping take?", "en")
    assert result.best is not None and result.best.article_id == "shipping"


def test_operators_switch_the_classifier_and_the_target_precision_in_settings() -> None:
    assert search_settings(Settings()).classifier is True
    assert search_settings(Settings(kb_classifier=False)).classifier is False
    assert search_settings(Settings(kb_target_precision=0.99)).target_precision == 0.99


def test_a_small_publish_keeps_the_calibration_and_the_classifier_learns_the_new_article(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    for searcher in demo_kb_searcher(tmp_path_factory.mktemp("demo-kb-publish") / "kb.db"):
        loaded = searcher._loaded
        assert loaded is not None and loaded.classifier is not None
        calibration, n_classes = loaded.calibration, loaded.classifier.coef.shape[0]
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(searcher.kb.import_articles([GIFT_WRAP], author="tests"))
            assert loop.run_until_complete(searcher.refresh())
        finally:
            loop.close()
        loaded = searcher._loaded
        assert loaded.calibration is calibration, "one new article among 125 docs does not refit the confidence"
        assert loaded.classifier is not None and loaded.classifier.coef.shape[0] == n_classes + 1
        result = searcher.search("could you wrap it as a present for my mum?", "en")
        assert result.best is not None and result.best.article_id == "gift-wrap"


@pytest.fixture(scope="module")
def vector_only_searcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KBSearcher]:
    """The demo KB with a classifier on the question's vector alone (no word features)."""
    yield from demo_kb_searcher(tmp_path_factory.mktemp("demo-kb-no-words") / "kb.db",
                                SearchSettings(classifier_words=0.0))


def test_the_classifier_reads_the_words_of_the_question_too(
    demo_searcher: KBSearcher, vector_only_searcher: KBSearcher
) -> None:
    """The classifier reads the question's words next to its vector: payment brands named in the articles
    point at the payment article, and words it never saw add nothing. (What the words buy overall is measured
    on the development query sets: bench/results/kb_retrieval_dev*.json.)"""
    from knowledge_base.index import tokenize

    loaded, plain = demo_searcher._loaded, vector_only_searcher._loaded
    assert loaded is not None and loaded.classifier is not None and loaded.classifier.lexicon is not None
    assert plain is not None and plain.classifier is not None
    assert plain.classifier.lexicon is None and plain.classifier.word_coef is None
    pos = loaded.index.article_ids.index("payment-methods")
    vector_alone = []
    for text in ["is Klarna an option at checkout", "UnionPay accepted?", "do you do Apple Pay", "iDEAL possible?"]:
        vector = demo_searcher.encoder.encode([text])
        with_words = loaded.classifier.probs(vector, [tokenize(text)])[0]
        assert int(np.argmax(with_words[:-1])) == pos, text
        vector_alone.append(int(np.argmax(plain.classifier.probs(vector)[0][:-1])) == pos)
    assert not all(vector_alone), "the vector alone placed every one of these: the test shows nothing"
    # Words it never saw add nothing.
    vector = demo_searcher.encoder.encode(["zzyzx qwv"])
    assert np.allclose(loaded.classifier.probs(vector, [tokenize("zzyzx qwv")]), loaded.classifier.probs(vector))
