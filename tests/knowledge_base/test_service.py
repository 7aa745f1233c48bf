"""Versions, drafts, rollback, translations and import/export, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_base.articles import ArticleFormatError, load_folder
from knowledge_base.service import KBError, KnowledgeBase
from tests.knowledge_base.conftest import DEMO_KB, article

RETURNS_V1 = "Returns are accepted within **30 days** of delivery."
RETURNS_V2 = "Returns are accepted within **60 days** of delivery."


async def test_import_of_the_demo_store_and_export_round_trip(kb: KnowledgeBase, tmp_path: Path) -> None:
    report = await kb.import_folder(DEMO_KB, author="seller")
    assert len(report.created) == len(load_folder(DEMO_KB))
    assert report.kb_version == 1
    # Importing the same files again changes nothing and does not bump the version.
    again = await kb.import_folder(DEMO_KB, author="seller")
    assert again.kb_version is None and not again.created and not again.updated
    assert await kb.kb_version() == 1
    await kb.export_folder(tmp_path)
    exported = {(a.id, a.locale): a for a in load_folder(tmp_path)}
    for source in load_folder(DEMO_KB):
        copy = exported[(source.id, source.locale)]
        assert (copy.title, copy.body, copy.questions, copy.tags) == (
            source.title, source.body, source.questions, source.tags
        )


async def test_a_malformed_file_imports_nothing(kb: KnowledgeBase, tmp_path: Path) -> None:
    for a in load_folder(DEMO_KB)[:5]:
        (tmp_path / a.file_name()).write_text(a.to_markdown(), encoding="utf-8")
    (tmp_path / "zz-broken.en.md").write_text("---\nid: zz-broken\nlocale: en\n---\nbody\n", encoding="utf-8")
    with pytest.raises(ArticleFormatError) as err:
        await kb.import_folder(tmp_path, author="seller")
    assert "zz-broken.en.md:2" in str(err.value)
    assert "missing required key 'title'" in str(err.value)
    assert await kb.published_keys() == {}
    assert await kb.kb_version() == 0


async def test_drafts_are_not_served_until_published_and_every_publish_is_a_version(kb: KnowledgeBase) -> None:
    await kb.publish_article(article("returns", "en", "Returns", RETURNS_V1, ["can I return it?"]), author="ana")
    await kb.save_draft("returns", "en", title="Returns", body=RETURNS_V2, questions=["can I return it?"],
                        author="ben")
    served = await kb.get_published("returns", "en")
    assert served is not None and served.version == 1 and "30 days" in served.body

    v2 = await kb.publish_draft("returns", "en", author="ben")
    assert (v2.version, v2.author) == (2, "ben")
    assert "-Returns are accepted within **30 days**" in v2.diff
    assert "+Returns are accepted within **60 days**" in v2.diff
    assert await kb.get_draft("returns", "en") is None
    assert [h.version for h in await kb.history("returns", "en")] == [2, 1]
    diff = await kb.diff("returns", "en", 1, 2)
    assert "60 days" in diff and "30 days" in diff

    v3 = await kb.rollback("returns", "en", 1, author="ana")
    assert v3.version == 3 and v3.note == "rollback to v1"
    current = await kb.get_published("returns", "en")
    assert current is not None and current.version == 3 and "30 days" in current.body
    # History keeps everything: the 60-day version is still there to roll forward to.
    assert [h.version for h in await kb.history("returns", "en")] == [3, 2, 1]


async def test_publishing_an_unchanged_draft_or_an_empty_answer_is_refused(kb: KnowledgeBase) -> None:
    await kb.publish_article(article("returns", "en", "Returns", RETURNS_V1, []), author="ana")
    await kb.save_draft("returns", "en", title="Returns", body=RETURNS_V1, author="ana")
    with pytest.raises(KBError, match="same as the published"):
        await kb.publish_draft("returns", "en", author="ana")
    with pytest.raises(KBError, match="answer text is empty"):
        await kb.save_draft("returns", "en", title="Returns", body="  ", author="ana")
    with pytest.raises(KBError, match="no draft"):
        await kb.publish_draft("returns", "de", author="ana")


async def test_translation_is_outdated_after_the_source_changes(kb: KnowledgeBase) -> None:
    await kb.import_articles(
        [
            article("returns", "en", "Returns", RETURNS_V1, ["can I return it?"]),
            article("returns", "de", "Rückgabe", "Rückgabe innerhalb von **30 Tagen**.", ["Rückgabe?"]),
        ],
        author="seller",
    )
    states = await kb.translations("returns")
    assert states["en"].state == "source" and states["de"].state == "current"

    await kb.publish_article(article("returns", "en", "Returns", RETURNS_V2, ["can I return it?"]), author="ana")
    [summary] = await kb.list_articles(locales=["de", "fr"])
    assert summary.translations["de"].state == "outdated"
    assert summary.translations["fr"].state == "missing"

    await kb.save_draft("returns", "de", title="Rückgabe", body="Rückgabe innerhalb von **60 Tagen**.",
                        questions=["Rückgabe?"], author="jo")
    assert (await kb.translations("returns"))["de"].has_draft
    await kb.publish_draft("returns", "de", author="jo")
    assert (await kb.translations("returns"))["de"].state == "current"


async def test_archived_articles_are_not_served(kb: KnowledgeBase) -> None:
    await kb.publish_article(article("returns", "en", "Returns", RETURNS_V1, []), author="ana")
    await kb.archive("returns")
    assert await kb.published_keys() == {}
    await kb.archive("returns", archived=False)
    assert await kb.published_keys() == {("returns", "en"): 1}


async def test_unanswered_questions_are_logged_and_resolved(kb: KnowledgeBase) -> None:
    first = await kb.log_unanswered("do you gift wrap?", reason="fallback", language="en", channel="widget",
                                    conversation_id="c1")
    await kb.log_unanswered("¿envuelven para regalo?", reason="low_confidence", language="es", channel="whatsapp",
                            conversation_id="c2")
    with pytest.raises(KBError, match="reason"):
        await kb.log_unanswered("x", reason="bored")
    open_items = await kb.unanswered()
    assert [(q.text, q.reason, q.channel) for q in open_items] == [
        ("do you gift wrap?", "fallback", "widget"),
        ("¿envuelven para regalo?", "low_confidence", "whatsapp"),
    ]
    assert await kb.resolve_unanswered([first], "gift-wrap") == 1
    assert [q.language for q in await kb.unanswered()] == ["es"]
