"""Publishing changes the bot's answers without a restart, re-encoding only what changed."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from knowledge_base.search import KBSearcher, SearchSettings
from knowledge_base.service import KnowledgeBase
from nlu.encoders import load_encoder
from tests.knowledge_base.conftest import article

ARTICLES = [
    article("returns", "en", "Returns", "You can return items within **30 days** of delivery.",
            ["how do I return an item?", "what is your return policy?", "can I send something back?"]),
    article("shipping", "en", "Delivery times", "Delivery takes **7-12 business days** to the EU.",
            ["how long does shipping take?", "when will my parcel arrive?", "delivery time to Germany?"]),
    article("payment", "en", "Payment methods", "We accept Visa, Mastercard and PayPal.",
            ["how can I pay?", "do you take PayPal?", "which cards do you accept?"]),
]


async def test_publish_changes_the_answer_and_reencodes_only_that_article(kb: KnowledgeBase) -> None:
    await kb.import_articles(ARTICLES, author="seller")
    searcher = KBSearcher(kb)
    await searcher.refresh()
    before = searcher.search("what is the deadline to send back a product?", "en")
    assert before.best is not None and before.best.article_id == "returns" and before.best.version == 1
    assert "30 days" in before.best.answer
    assert not await searcher.refresh()  # nothing new: the index stays as it is

    await kb.publish_article(
        article("returns", "en", "Returns", "You can return items within **60 days** of delivery.",
                ["how do I return an item?", "what is your return policy?", "can I send something back?"]),
        author="ana",
    )
    old_index = searcher.index
    assert await searcher.refresh()
    assert searcher.index is not old_index
    assert searcher.index is not None and searcher.index.encoded_docs == 1
    after = searcher.search("what is the deadline to send back a product?", "en")
    assert after.best is not None and after.best.version == 2 and "60 days" in after.best.answer
    assert after.kb_version == await kb.kb_version()


class _GatedEncoder:
    """The real encoder, except that encoding documents (a batch) waits until the test opens the gate."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, texts: list[str]) -> Any:
        if len(texts) > 1:
            self.entered.set()
            assert self.gate.wait(60), "the test never opened the gate"
        return self.inner.encode(texts)


async def test_search_keeps_answering_while_a_publish_is_being_indexed(kb: KnowledgeBase) -> None:
    await kb.import_articles(ARTICLES, author="seller")
    encoder = _GatedEncoder(load_encoder())
    searcher = KBSearcher(kb, encoder=encoder)
    await searcher.refresh()
    served = searcher.version
    await kb.publish_article(
        article("warranty", "en", "Warranty", "Lamps have a **2-year warranty** against defects.",
                ["is there a warranty?", "my lamp broke, is it covered?", "how long is the guarantee?"]),
        author="ana",
    )
    encoder.gate.clear()
    encoder.entered.clear()
    refresh = asyncio.create_task(searcher.refresh())
    # The new index is being built (held inside its encoding): searches go on, from the index being served.
    assert await asyncio.to_thread(encoder.entered.wait, 60), "the refresh never started encoding"
    for _ in range(3):
        result = searcher.search("which cards can I pay with?", "en")
        assert result.best is not None and result.best.article_id == "payment"
        assert result.kb_version == served
        await asyncio.sleep(0.01)
    assert not refresh.done()
    encoder.gate.set()
    assert await refresh
    assert searcher.version > served
    new = searcher.search("my lamp stopped working, is that under guarantee?", "en")
    assert new.best is not None and new.best.article_id == "warranty" and new.kb_version == searcher.version


async def test_archiving_removes_an_article_from_answers(kb: KnowledgeBase) -> None:
    await kb.import_articles(ARTICLES, author="seller")
    searcher = KBSearcher(kb)
    await searcher.refresh()
    await kb.archive("payment")
    await searcher.refresh()
    result = searcher.search("do you take PayPal?", "en")
    assert all(c.article_id != "payment" for c in result.candidates)


async def test_large_index_kind_hnsw_takes_publishes_incrementally(kb: KnowledgeBase) -> None:
    # A low HNSW threshold puts this small KB on the graph index that big knowledge bases use.
    many = ARTICLES + [
        article(f"care-{i}", "en", f"Care of item {i}", f"Wipe item {i} (SKU ND-{40000 + i}) with a dry cloth.",
                [f"how do I clean item {i}?", f"care instructions for item {i}"])
        for i in range(30)
    ]
    await kb.import_articles(many, author="seller")
    searcher = KBSearcher(kb, settings=SearchSettings(hnsw_min_entries=20))
    await searcher.refresh()
    assert searcher.index is not None and searcher.index.kind_label == "hnsw"
    await kb.publish_article(
        article("payment", "en", "Payment methods", "We accept Visa, Mastercard, PayPal and **Klarna**.",
                ["how can I pay?", "do you take PayPal?", "which cards do you accept?"]),
        author="ana",
    )
    await searcher.refresh()
    index = searcher.index
    assert index.encoded_docs == 1
    # The replaced version's 5 entries (3 questions, title, one answer chunk) are masked, not searched.
    assert int((~index.alive).sum()) == 5
    result = searcher.search("do you take PayPal?", "en")
    assert result.best is not None and result.best.version == 2 and "Klarna" in result.best.answer
    sku = searcher.search("ND-40017", "en")
    assert sku.best is not None and sku.best.article_id == "care-17"


async def test_two_articles_answering_the_same_question_ask_which_one(kb: KnowledgeBase) -> None:
    questions = ["how long does shipping take?", "when will my parcel arrive?", "delivery time?"]
    await kb.import_articles(
        [
            article("shipping-eu", "en", "Delivery times", "Delivery takes 7-12 business days.", questions),
            article("shipping-eu-copy", "en", "Delivery times", "Delivery takes 7-12 business days.", questions),
            *ARTICLES[:1],
        ],
        author="seller",
    )
    searcher = KBSearcher(kb)
    await searcher.refresh()
    result = searcher.search("how long does shipping take?", "en")
    assert {c.article_id for c in result.candidates[:2]} == {"shipping-eu", "shipping-eu-copy"}
    assert result.ambiguous and not result.confident
    assert result.margin < searcher.settings.clarify_margin
