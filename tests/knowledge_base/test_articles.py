"""Articles as Markdown files: a seller can keep the KB in git, and a broken file says where it is broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_base.articles import ArticleFormatError, load_folder, parse_article, write_folder
from tests.knowledge_base.conftest import DEMO_KB

GOOD = """---
id: gift-cards
title: Gift cards
locale: en
tags: [gifts]
questions:
  - Do you sell gift cards?
  - How long is a gift card valid?
---

Gift cards are valid for **3 years**.
"""


def test_demo_store_kb_has_every_required_article_with_six_questions_and_translations() -> None:
    articles = load_folder(DEMO_KB)
    by_key = {(a.id, a.locale): a for a in articles}
    required = """shipping-times shipping-options shipping-address customs-duties order-tracking returns-refunds
    refund-timeline cancellation-policy payment-methods payment-problems invoices-vat contact-us account-create
    account-edit account-delete password-reset newsletter how-to-order reviews warranty size-guide product-care""".split()
    for aid in required:
        assert (aid, "en") in by_key, aid
    for aid in ["shipping-times", "shipping-options", "customs-duties", "returns-refunds", "refund-timeline",
                "invoices-vat"]:
        for locale in ["de", "es", "fr", "ja"]:
            assert (aid, locale) in by_key, (aid, locale)
    assert all(len(a.questions) >= 6 for a in articles)


def test_export_then_import_gives_back_the_same_articles(tmp_path: Path) -> None:
    original = load_folder(DEMO_KB)
    write_folder(original, tmp_path)
    again = load_folder(tmp_path)
    strip = [(a.id, a.locale, a.title, a.body, a.questions, a.tags) for a in original]
    assert strip == [(a.id, a.locale, a.title, a.body, a.questions, a.tags) for a in again]


def test_locale_folders_are_accepted_too(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "gift-cards.md").write_text(GOOD, encoding="utf-8")
    [only] = load_folder(tmp_path)
    assert (only.id, only.locale, only.questions[1]) == ("gift-cards", "en", "How long is a gift card valid?")
    assert "3 years" in only.body


def test_missing_title_names_file_and_line(tmp_path: Path) -> None:
    broken = GOOD.replace("title: Gift cards\n", "")
    path = tmp_path / "gift-cards.en.md"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ArticleFormatError) as err:
        load_folder(tmp_path)
    [problem] = err.value.problems
    assert problem.path == str(path)
    assert "missing required key 'title'" in problem.message
    assert str(path) in str(err.value)


def test_invalid_yaml_points_at_the_broken_line() -> None:
    broken = GOOD.replace("  - How long is a gift card valid?", "  - How long: is: [valid")
    with pytest.raises(ArticleFormatError) as err:
        parse_article(broken, "kb/gift-cards.en.md")
    [problem] = err.value.problems
    assert problem.line == 8  # the line of the broken list item in the file
    assert "invalid YAML" in problem.message


def test_questions_must_be_a_list_and_unknown_keys_are_reported_at_their_line() -> None:
    broken = GOOD.replace("tags: [gifts]", "tags: [gifts]\nauthor: me").replace(
        "questions:\n  - Do you sell gift cards?\n  - How long is a gift card valid?", "questions: Do you sell gift cards?"
    )
    with pytest.raises(ArticleFormatError) as err:
        parse_article(broken, "x.md")
    messages = {(p.line, p.message.split(";")[0]) for p in err.value.problems}
    assert (6, "unknown key 'author'") in messages
    assert any(line == 7 and "'questions' must be a list" in msg for line, msg in messages)


def test_file_name_and_front_matter_must_agree(tmp_path: Path) -> None:
    (tmp_path / "gift-cards.de.md").write_text(GOOD, encoding="utf-8")
    with pytest.raises(ArticleFormatError) as err:
        load_folder(tmp_path)
    assert "file name says 'gift-cards', 'de'" in err.value.problems[0].message


def test_missing_front_matter_and_empty_body_are_errors() -> None:
    with pytest.raises(ArticleFormatError) as err:
        parse_article("just text", "a.md")
    assert err.value.problems[0].line == 1
    with pytest.raises(ArticleFormatError) as err:
        parse_article(GOOD.split("Gift cards are")[0], "a.md")
    assert "no answer text" in err.value.problems[0].message
