"""An existing Rasa project runs on Nightdesk: its retrieval intents answer with their responses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "nlu" / "data" / "tiny-rasa"

RESPONSES = """version: "3.1"
responses:
  utter_faq/ask_payment:
  - text: We take cards, PayPal and Klarna.
"""
CONVERSATION = """conversations:
  - name: a retrieval intent is answered with its response from data/responses.yml
    steps:
      - user: "do you accept PayPal?"
        expect: {kind: answer, intent: faq/ask_payment, reply_contains: "PayPal and Klarna"}
  - name: the greeting response of domain.yml
    steps:
      - user: "hello"
        expect: {kind: smalltalk, intent: greet}
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def test_a_rasa_project_trains_and_answers_its_retrieval_intents(tmp_path: Path) -> None:
    project = tmp_path / "rasa-shop"
    shutil.copytree(TINY, project)
    (project / "data" / "responses.yml").write_text(RESPONSES, encoding="utf-8")
    (tmp_path / "conversations.yml").write_text(CONVERSATION, encoding="utf-8")

    trained = _cli("train", "--project", str(project))
    assert trained.returncode == 0, trained.stdout + trained.stderr

    missing = _cli("test", str(tmp_path / "conversations.yml"), "--project", str(project))
    assert missing.returncode == 2 and "seller.yml is missing" in missing.stdout + missing.stderr
    assert "Traceback" not in missing.stdout + missing.stderr

    (project / "store").mkdir()
    shutil.copy(ROOT / "examples" / "demo-store" / "store" / "seller.yml", project / "store" / "seller.yml")
    run = _cli("test", str(tmp_path / "conversations.yml"), "--project", str(project))
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "2 passed, 0 failed" in output
