"""`nightdesk run --demo` brings the demo KB up to date with the project's files on every start, without
undoing what content owners did in the editor."""

from __future__ import annotations

from pathlib import Path

from bot.demo import DEMO_KB_AUTHOR, import_demo_kb
from knowledge_base.articles import write_folder
from knowledge_base.service import KnowledgeBase
from tests.knowledge_base.conftest import article


def _files(folder: Path, note: str = "") -> None:
    write_folder([
        article("edited", "en", "Delivery times", f"Delivery takes 7-12 business days.{note}", ["how long is delivery?"]),
        article("archived", "en", "Gift cards", f"Gift cards from USD 25.{note}", ["do you sell gift cards?"]),
        article("plain", "en", "Returns", f"Returns within 30 days.{note}", ["how do I return an item?"]),
    ], folder)


async def test_a_restart_imports_new_and_changed_demo_files_but_keeps_editor_work(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    _files(tmp_path)
    first = await import_demo_kb(kb, tmp_path)
    assert sorted(first.created) == [("archived", "en"), ("edited", "en"), ("plain", "en")]

    # A content owner edits one article in the editor and archives another.
    await kb.publish_article(article("edited", "en", "Delivery times", "Our own wording: 7-12 days.",
                                     ["how long is delivery?"]), author="editor")
    await kb.archive("archived")
    assert (await import_demo_kb(kb, tmp_path)).kb_version is None, "an unchanged folder changes nothing"

    # The project's files change (a pull of the repository) and a translation is added.
    _files(tmp_path, note=" Updated.")
    write_folder([article("plain", "de", "Rücksendungen", "Rücksendung innerhalb von 30 Tagen.",
                          ["Wie schicke ich etwas zurück?"])], tmp_path)
    again = await import_demo_kb(kb, tmp_path)
    assert sorted(again.created) == [("plain", "de")]
    assert sorted(again.updated) == [("plain", "en")]

    served = {(p.article_id, p.locale): p for p in await kb.published_articles()}
    assert served[("plain", "en")].body.endswith("Updated.") and served[("plain", "en")].author == DEMO_KB_AUTHOR
    assert served[("edited", "en")].body == "Our own wording: 7-12 days."
    assert served[("edited", "en")].author == "editor"
    assert "archived" not in {aid for aid, _ in served}, "an archived article stays archived"
    authors, archived = await kb.latest_authors()
    assert archived == {"archived"} and authors[("archived", "en")] == DEMO_KB_AUTHOR
