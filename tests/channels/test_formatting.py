"""KB answers are Markdown: WhatsApp gets its own marks, email an HTML part and a plain part without marks."""

from __future__ import annotations

from pathlib import Path

from bot.channels.formatting import markdown_to_html, markdown_to_plain, markdown_to_whatsapp

KB = Path(__file__).resolve().parents[2] / "examples" / "demo-store" / "kb"
TABLE = """Delivery times:

| Destination | Standard | Express |
|---|---|---|
| USA | 8–12 days | 3–5 days |
| Japan | 5–8 days | 2–4 days |

Remote areas take longer."""


def _article(name: str) -> str:
    return (KB / name).read_text(encoding="utf-8").split("---", 2)[2].strip()


def test_whatsapp_marks_links_and_headings() -> None:
    text = ("You can return items within **30 days**. Open *Account → Orders*, see [our policy](https://shop.test/r)."
            "\n## Costs\nfree")
    assert markdown_to_whatsapp(text) == (
        "You can return items within *30 days*. Open _Account → Orders_, see our policy (https://shop.test/r).\n"
        "*Costs*\nfree")


def test_a_table_becomes_one_line_per_row() -> None:
    assert markdown_to_whatsapp(TABLE) == (
        "Delivery times:\n\n• *USA*: Standard 8–12 days · Express 3–5 days\n"
        "• *Japan*: Standard 5–8 days · Express 2–4 days\n\nRemote areas take longer.")
    assert markdown_to_plain(TABLE) == (
        "Delivery times:\n\n- USA: Standard 8–12 days; Express 3–5 days\n"
        "- Japan: Standard 5–8 days; Express 2–4 days\n\nRemote areas take longer.")


def test_text_without_markdown_is_unchanged() -> None:
    plain = "Order ND-100105 is on its way with DHL: 2396489020. 3 * 4 = 12, a_b_c, 5*"
    assert markdown_to_whatsapp(plain) == plain
    assert markdown_to_plain(plain) == plain


def test_every_demo_article_loses_its_double_asterisks_and_table_pipes() -> None:
    for path in sorted(KB.glob("*.md")):
        body = _article(path.name)
        for shown in (markdown_to_whatsapp(body), markdown_to_plain(body)):
            assert "**" not in shown, path.name
            assert "|---" not in shown and "| ---" not in shown, path.name


def test_html_renders_the_marks_and_escapes_html_typed_in_the_text() -> None:
    html = markdown_to_html(TABLE + "\n\n**bold** <script>alert(1)</script> [x](javascript:alert(1))")
    assert "<table>" in html and "<td>USA</td>" in html and "<strong>bold</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
