"""scripts/decisions.py: the corpus it reads and how it compares two runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "decisions.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("decisions_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(text: str, kind: str, article: str | None = None) -> dict[str, object]:
    return {"text": text, "kind": kind, "rule": "r", "intent": None, "article": article, "action": None, "also": [],
            "reply": "..."}


def test_only_changed_decisions_are_listed() -> None:
    script = _script()
    before = [_row("where is my order?", "ask"), _row("can I pay with Klarna?", "answer", "payment-methods"),
              _row("gone", "fallback")]
    after = [_row("where is my order?", "ask"), _row("can I pay with Klarna?", "answer", "how-to-order"),
             _row("new message", "answer", "warranty")]
    lines = script.compare(before, after)
    assert lines[0] == repr("can I pay with Klarna?")
    assert "article=payment-methods" in lines[1] and "article=how-to-order" in lines[2]
    assert len(lines) == 3  # unchanged, removed and new messages are not listed


def test_the_corpus_holds_the_query_sets_and_the_conversation_turns_once(tmp_path: Path) -> None:
    script = _script()
    extra = tmp_path / "more.txt"
    extra.write_text("Hello there\n---\nline one\\nline two\nwhere is my order?\n", encoding="utf-8")
    texts = script.corpus([extra])
    assert "my lamp flickers and died after 4 months" in texts  # bench/data/kb_dev_queries.yml
    assert "Kann ich auf Rechnung bezahlen?" in texts  # examples/demo-store/tests/regressions.yml
    assert "line one\nline two" in texts and "---" not in texts
    assert len(texts) == len(set(texts)) and not any(t.startswith("/") for t in texts)
