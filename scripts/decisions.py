"""What the engine decides for each message of the demo shop's test material, read alone, to see what a change moves.

    python scripts/decisions.py --out /tmp/before.jsonl            # on the code before the change
    python scripts/decisions.py --out /tmp/after.jsonl             # on the code after it
    python scripts/decisions.py --compare /tmp/before.jsonl /tmp/after.jsonl

Every message of the KB query sets (bench/data/kb_*.yml) and every shopper turn of the demo's conversation tests
(examples/demo-store/tests/*.yml), plus the lines of `--texts` files, is sent as the first message of a fresh
conversation on the demo shop (`--channel email` as mail). One JSON line each: the message, the decision's kind,
rule, intent, article, action, the articles answered beside it, and the start of the replies. A routing rule that is
right for the messages it was written for can move others: the comparison lists every message whose kind, rule,
article, action or extra articles changed. The demo model must be trained (`nightdesk train --project
examples/demo-store`) with the code being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bot import conversation_tests as ct  # noqa: E402

COMPARED = ("kind", "rule", "article", "action", "also")


def corpus(extra: list[Path]) -> list[str]:
    """The messages, each once, in a stable order."""
    texts: list[str] = []
    for path in sorted((ROOT / "bench" / "data").glob("kb_*.yml")):
        texts += [str(q["q"]) for q in yaml.safe_load(path.read_text(encoding="utf-8"))["queries"]]
    for path in sorted((ROOT / "examples" / "demo-store" / "tests").glob("*.yml")):
        for conversation in ct.load_conversations(path):
            texts += [step.user for step in conversation.steps if step.payload is None]
    for path in extra:
        texts += [line.strip().replace("\\n", "\n") for line in path.read_text(encoding="utf-8").splitlines()
                  if line.strip() and line.strip() != "---"]
    return list(dict.fromkeys(t for t in texts if not t.startswith("/")))


def record(texts: list[str], channel: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def observe(text: str, trace: dict[str, Any], replies: list[str]) -> None:
        d = trace.get("decision", {})
        also = d.get("also_answered")
        rows.append({"text": text, "kind": d.get("kind"), "rule": d.get("rule"), "intent": d.get("intent"),
                     "article": d.get("article_id"), "action": d.get("action"),
                     "also": [a.get("article_id") for a in also] if isinstance(also, list) else [],
                     "reply": " | ".join(r[:100] for r in replies)})

    conversations = [ct.Conversation(f"m{i}", [ct.Step(text, {})], channel) for i, text in enumerate(texts)]
    with tempfile.TemporaryDirectory() as tmp:
        settings = ct.load_settings(project=ROOT / "examples" / "demo-store", var_dir=Path(tmp), database_url="")
        asyncio.run(ct.run_conversations(settings, conversations, observe=observe))
    return rows


def compare(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """A few lines for each message whose decision differs (messages in only one of the files are left out)."""
    old = {r["text"]: r for r in before}
    lines: list[str] = []
    for new in after:
        was = old.get(new["text"])
        if was is None or all(was.get(k) == new.get(k) for k in COMPARED):
            continue
        lines += [repr(new["text"][:120]),
                  "   before: " + " ".join(f"{k}={was.get(k)}" for k in COMPARED) + " | " + was["reply"][:100],
                  "   after:  " + " ".join(f"{k}={new.get(k)}" for k in COMPARED) + " | " + new["reply"][:100]]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the decisions here (JSON lines)")
    parser.add_argument("--channel", default="api", choices=ct.CHANNELS)
    parser.add_argument("--texts", type=Path, action="append", default=[],
                        help="more messages, one a line (\\n for a line break; '---' lines are skipped)")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"),
                        help="list the messages whose decision differs between two runs")
    args = parser.parse_args()
    if args.compare:
        before, after = ([json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()] for p in args.compare)
        lines = compare(before, after)
        print("\n".join(lines))
        print(f"{len(lines) // 3} of {len(after)} decisions differ")
        return 0
    if args.out is None:
        parser.error("give --out FILE, or --compare BEFORE AFTER")
    rows = record(corpus(args.texts), args.channel)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} decisions written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
