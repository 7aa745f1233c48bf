"""Knowledge-base answers are Markdown; each channel shows it its own way.

- WhatsApp: its own marks (`*bold*`, `_italic_`), links as "text (url)", tables as one line per row.
- Email: an HTML part rendered from the Markdown (raw HTML in the text is escaped, never passed on) and a
  plain-text part without the marks.
- The widget renders the same subset in the browser (widget.js `renderRich`), building DOM nodes.
- The agent console shows the bot's messages as `markdown_to_html` renders them (the ticket API's `html`).
- The REST channel and the converse API pass the Markdown on as it is: integrators render it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from markdown_it import MarkdownIt

_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+|/[^)\s]*)\)")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![*\w])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![*\w])")

_html = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable("table")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _tables(text: str, row: Callable[[str, list[tuple[str, str]]], str]) -> str:
    """Each Markdown table as one line per row: `row(first cell, [(column header, cell), ...])`."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        if _TABLE_ROW.match(lines[i]) and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1]):
            headers = _cells(lines[i])
            i += 2
            while i < len(lines) and _TABLE_ROW.match(lines[i]):
                cells = _cells(lines[i])
                out.append(row(cells[0], [(h, c) for h, c in zip(headers[1:], cells[1:], strict=False) if c]))
                i += 1
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def markdown_to_whatsapp(text: str) -> str:
    """"**30 days**" -> "*30 days*", "*Account*" -> "_Account_", "[label](url)" -> "label (url)"."""
    text = _tables(text, lambda first, rest: f"• **{first}**: " + " · ".join(f"{h} {c}" for h, c in rest))
    text = _LINK.sub(r"\1 (\2)", text)
    text = _HEADING.sub(r"**\1**", text)
    text = _ITALIC.sub(r"_\1_", text)
    return _BOLD.sub(lambda m: f"*{m.group(1) or m.group(2)}*", text)


def markdown_to_plain(text: str) -> str:
    """The text without Markdown's marks, for mail clients that show only the plain part."""
    text = _tables(text, lambda first, rest: f"- {first}: " + "; ".join(f"{h} {c}" for h, c in rest))
    text = _LINK.sub(r"\1 (\2)", text)
    text = _HEADING.sub(r"\1", text)
    text = _BOLD.sub(lambda m: m.group(1) or m.group(2), text)
    return _ITALIC.sub(r"\1", text)


def markdown_to_html(text: str) -> str:
    """HTML for the mail's HTML part; HTML typed into the text comes out escaped, as text."""
    return _html.render(text)
