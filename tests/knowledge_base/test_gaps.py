"""What the bot could not answer: grouped by meaning across languages, turned into articles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from knowledge_base.gaps import GapMiner
from knowledge_base.search import KBSearcher
from knowledge_base.service import KnowledgeBase
from tests.knowledge_base.test_incremental import ARTICLES

GIFT_WRAP = [
    ("Can you gift wrap my order?", "en"),
    ("Do you offer gift wrapping?", "en"),
    ("Könnt ihr das als Geschenk verpacken?", "de"),
    ("¿Pueden envolver el pedido para regalo?", "es"),
    ("ギフト包装はできますか？", "ja"),
]
ASSEMBLY = [
    ("Do you assemble the furniture at my home?", "en"),
    ("Bietet ihr einen Aufbauservice für Möbel an?", "de"),
    ("Proposez-vous le montage des meubles à domicile ?", "fr"),
]


async def _log(kb: KnowledgeBase) -> None:
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    for i, (text, lang) in enumerate(GIFT_WRAP + ASSEMBLY):
        await kb.log_unanswered(text, reason="fallback" if i % 2 else "low_confidence", language=lang,
                                channel="widget", conversation_id=f"c{i}", at=start + timedelta(hours=i))


async def test_the_same_question_in_different_languages_is_one_group(kb: KnowledgeBase) -> None:
    await _log(kb)
    groups = await GapMiner(kb).groups()
    by_text = {text: g for g in groups for text in g.examples}
    gift = by_text["Can you gift wrap my order?"]
    assert gift.count == len(GIFT_WRAP)
    assert set(gift.languages) == {"en", "de", "es", "ja"} and gift.languages["en"] == 2
    assert gift.first_seen.replace(tzinfo=UTC) == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    assert gift.reasons == {"low_confidence": 3, "fallback": 2}
    assembly = by_text["Do you assemble the furniture at my home?"]
    assert assembly is not gift and assembly.count == len(ASSEMBLY)
    assert groups[0] is gift  # biggest group first


async def test_new_article_from_a_group_answers_those_questions_once_published(kb: KnowledgeBase) -> None:
    await kb.import_articles(ARTICLES, author="seller")
    await _log(kb)
    miner = GapMiner(kb)
    [gift] = [g for g in await miner.groups() if "Can you gift wrap my order?" in g.examples]
    draft = await miner.new_article_from_group(gift.question_ids, article_id="gift-wrap", title="Gift wrapping",
                                               author="ana")
    assert set(draft.questions) == {t for t, _ in GIFT_WRAP}
    # Handled questions leave the review list.
    assert all("gift" not in " ".join(g.examples).lower() for g in await miner.groups())

    await kb.save_draft("gift-wrap", "en", title="Gift wrapping",
                        body="We gift wrap any order for USD 4.90; choose it at checkout.",
                        questions=draft.questions, author="ana")
    await kb.publish_draft("gift-wrap", "en", author="ana")
    searcher = KBSearcher(kb)
    await searcher.refresh()
    result = searcher.search("Geschenkverpackung möglich?", "de")
    assert result.best is not None and result.best.article_id == "gift-wrap"
    assert result.fallback_used and result.served_locale == "en"


async def test_add_group_as_example_questions_of_an_existing_article(kb: KnowledgeBase) -> None:
    await kb.import_articles(ARTICLES, author="seller")
    await _log(kb)
    miner = GapMiner(kb)
    [assembly] = [g for g in await miner.groups() if "Do you assemble the furniture at my home?" in g.examples]
    await miner.add_to_article(assembly.question_ids, article_id="shipping", author="ana", publish=True)
    current = await kb.get_published("shipping", "en")
    assert current is not None and current.version == 2
    assert "Bietet ihr einen Aufbauservice für Möbel an?" in current.questions
    assert "how long does shipping take?" in current.questions
    assert "+- Do you assemble the furniture at my home?" in current.diff
