"""`nightdesk kb` on the configured database with no server: a seller keeps the KB in git, imports and
exports it, and a broken file is reported by name and line with nothing imported."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bot.cli import app
from bot.config import load_settings
from knowledge_base.service import KnowledgeBase, PublishedArticle
from tests.knowledge_base.conftest import DEMO_KB


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the demo project's kb/ folder, as a seller would have it in git."""
    shutil.copytree(DEMO_KB, tmp_path / "shop" / "kb")
    return tmp_path / "shop"


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


def nightdesk(var_dir: Path, *args: str) -> Result:
    env = {"NIGHTDESK_VAR_DIR": str(var_dir), "DATABASE_URL": "", "NIGHTDESK_DATABASE_URL": "",
           "REDIS_URL": "", "NIGHTDESK_REDIS_URL": "", "COLUMNS": "200"}
    return CliRunner().invoke(app, list(args), env=env)


def history(var_dir: Path, article_id: str, locale: str) -> list[PublishedArticle]:
    """What `nightdesk run` would see: the versions in the database the CLI wrote to."""
    from bot.store.db import Database

    async def read() -> list[PublishedArticle]:
        settings = load_settings(var_dir=var_dir, database_url="")
        db = Database(settings.effective_database_url)
        try:
            return await KnowledgeBase(db.sessions).history(article_id, locale)
        finally:
            await db.dispose()

    return asyncio.run(read())


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.md"))}


def test_import_then_export_of_the_demo_kb_leaves_the_files_identical(project: Path, var_dir: Path) -> None:
    before = files(project / "kb")
    imported = nightdesk(var_dir, "kb", "import", "--project", str(project), "--author", "seller")
    assert imported.exit_code == 0, imported.output
    assert f"{len(before)} created, 0 updated, 0 unchanged" in imported.output

    exported = nightdesk(var_dir, "kb", "export", "--project", str(project))
    assert exported.exit_code == 0, exported.output
    assert f"0 written, {len(before)} unchanged" in exported.output
    assert files(project / "kb") == before  # no git diff

    # Exported into an empty folder, the files import back as the same versions.
    fresh = project.parent / "fresh" / "kb"
    assert nightdesk(var_dir, "kb", "export", "--project", str(fresh)).exit_code == 0
    assert len(files(fresh)) == len(before)
    again = nightdesk(var_dir, "kb", "import", "--project", str(fresh))
    assert again.exit_code == 0, again.output
    assert f"0 created, 0 updated, {len(before)} unchanged" in again.output
    assert "nothing to publish" in again.output


def test_a_malformed_file_reports_file_and_line_and_imports_nothing(project: Path, var_dir: Path) -> None:
    assert nightdesk(var_dir, "kb", "import", "-p", str(project)).exit_code == 0
    # Good changes next to one broken file: none of them may be imported.
    changed = project / "kb" / "returns-refunds.en.md"
    changed.write_text(changed.read_text(encoding="utf-8").replace("30 days", "45 days"), encoding="utf-8")
    new = project / "kb" / "gift-wrapping.en.md"
    new.write_text("---\nid: gift-wrapping\ntitle: Do you gift wrap?\nlocale: en\n---\n\nYes, for 3 EUR.\n",
                   encoding="utf-8")
    broken = project / "kb" / "shipping-times.de.md"
    text = broken.read_text(encoding="utf-8")
    assert text.splitlines()[4].startswith("tags:")
    broken.write_text(text.replace("\ntags:", "\ntag:", 1), encoding="utf-8")

    result = nightdesk(var_dir, "kb", "import", "--project", str(project))
    assert result.exit_code == 1
    assert f"{broken}:5: unknown key 'tag'; allowed: id, title, locale, tags, questions" in result.output
    assert "nothing was imported" in result.output
    assert history(var_dir, "gift-wrapping", "en") == []
    assert [v.version for v in history(var_dir, "returns-refunds", "en")] == [1]


def test_a_changed_file_becomes_a_new_version_by_its_author(project: Path, var_dir: Path) -> None:
    assert nightdesk(var_dir, "kb", "import", "-p", str(project), "--author", "seller").exit_code == 0
    changed = project / "kb" / "shipping-times.de.md"
    changed.write_text(changed.read_text(encoding="utf-8") + "\nExpress: 3 Werktage.\n", encoding="utf-8")

    # The kb folder itself works as --project too.
    result = nightdesk(var_dir, "kb", "import", "-p", str(project / "kb"), "--author", "olga")
    assert result.exit_code == 0, result.output
    assert "updated  shipping-times (de)" in result.output
    assert "0 created, 1 updated" in result.output
    versions = history(var_dir, "shipping-times", "de")
    assert [(v.version, v.author) for v in versions] == [(2, "olga"), (1, "seller")]
    assert "+Express: 3 Werktage." in versions[0].diff
    assert [v.version for v in history(var_dir, "shipping-times", "en")] == [1]

    listed = nightdesk(var_dir, "kb", "list")
    assert listed.exit_code == 0, listed.output
    assert "shipping-times" in listed.output and "v2" in listed.output


def test_check_validates_the_files_without_a_database(project: Path, var_dir: Path) -> None:
    ok = nightdesk(var_dir, "kb", "check", "-p", str(project))
    assert ok.exit_code == 0, ok.output
    assert "all valid" in ok.output
    (project / "kb" / "returns-refunds.fr.md").write_text("no front matter\n", encoding="utf-8")
    bad = nightdesk(var_dir, "kb", "check", "-p", str(project))
    assert bad.exit_code == 1
    assert f"{project / 'kb' / 'returns-refunds.fr.md'}:1: the file must start with a '---' line" in bad.output
    assert not var_dir.exists()


def test_a_missing_kb_folder_says_what_to_pass(tmp_path: Path, var_dir: Path) -> None:
    result = nightdesk(var_dir, "kb", "import", "-p", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "does not exist" in result.output and "--project" in result.output


GIFT_WRAP = """---
id: gift-wrapping
title: Do you offer gift wrapping?
locale: en
questions:
- Can you gift wrap my order?
- Is gift wrapping available?
- Can I send the parcel as a present with a card?
---

Yes: choose **gift wrapping** at checkout (3 EUR) and add a message for the card.
"""
NEWSLETTER = """---
id: newsletter
title: How do I unsubscribe from the newsletter?
locale: en
questions:
- How do I stop your emails?
- Unsubscribe me from the newsletter.
---

Click **unsubscribe** at the bottom of any newsletter email.
"""


def test_search_answers_like_the_bot_and_an_archived_article_is_no_longer_found(tmp_path: Path,
                                                                                 var_dir: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "gift-wrapping.en.md").write_text(GIFT_WRAP, encoding="utf-8")
    (kb / "newsletter.en.md").write_text(NEWSLETTER, encoding="utf-8")
    assert nightdesk(var_dir, "kb", "import", "-p", str(kb)).exit_code == 0

    found = nightdesk(var_dir, "kb", "search", "Can you gift wrap my order?", "--lang", "en")
    assert found.exit_code == 0, found.output
    assert "gift-wrapping v1 (en)" in found.output
    assert "choose gift wrapping at checkout" in found.output.replace("**", "")
    assert "threshold" in found.output and "runner-ups" in found.output

    archived = nightdesk(var_dir, "kb", "archive", "gift-wrapping")
    assert archived.exit_code == 0, archived.output
    after = nightdesk(var_dir, "kb", "search", "Can you gift wrap my order?", "--lang", "en")
    assert after.exit_code == 0, after.output
    assert "gift-wrapping" not in after.output
    assert "newsletter" in after.output
    listed = nightdesk(var_dir, "kb", "list", "--archived")
    assert "gift-wrapping" in listed.output and "archived" in listed.output
    assert nightdesk(var_dir, "kb", "archive", "no-such-article").exit_code == 1


def test_export_writes_an_article_back_into_the_file_it_came_from(tmp_path: Path, var_dir: Path) -> None:
    kb = tmp_path / "kb"
    (kb / "de").mkdir(parents=True)
    (kb / "de" / "newsletter.md").write_text(NEWSLETTER.replace("locale: en", "locale: de"), encoding="utf-8")
    (kb / "newsletter.en.md").write_text(NEWSLETTER, encoding="utf-8")
    assert nightdesk(var_dir, "kb", "import", "-p", str(kb)).exit_code == 0
    edited = (kb / "de" / "newsletter.md").read_text(encoding="utf-8").replace("Click", "Klicke")
    (kb / "de" / "newsletter.md").write_text(edited, encoding="utf-8")
    assert nightdesk(var_dir, "kb", "import", "-p", str(kb)).exit_code == 0
    (kb / "de" / "newsletter.md").write_text(NEWSLETTER.replace("locale: en", "locale: de"), encoding="utf-8")

    result = nightdesk(var_dir, "kb", "export", "-p", str(kb))
    assert result.exit_code == 0, result.output
    assert "1 written, 1 unchanged" in result.output
    assert "Klicke" in (kb / "de" / "newsletter.md").read_text(encoding="utf-8")
    assert sorted(str(p.relative_to(kb)) for p in kb.rglob("*.md")) == ["de/newsletter.md", "newsletter.en.md"]
    assert nightdesk(var_dir, "kb", "check", "-p", str(kb)).exit_code == 0


def test_export_of_an_empty_knowledge_base_says_which_database_it_read(tmp_path: Path, var_dir: Path) -> None:
    result = nightdesk(var_dir, "kb", "export", "-p", str(tmp_path / "shop"))
    assert result.exit_code == 0
    assert "is empty: nothing to export" in result.output
    assert str(var_dir) in result.output.replace("\n", "")
