"""The demo store's scripted conversations pass through the real engine, as `nightdesk test` runs them.

Runs the CLI in a subprocess (one thread per process, like `make test`), training the NLU model first
when its data changed. known_failures.yml holds conversations where the bot still misbehaves, with the
expectations a correct bot meets: they run too, and must still fail (one that passes belongs back in
conversations.yml or orders.yml).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bot.conversation_tests import ConversationFileError, check, load_conversations
from bot.engine import _new_session

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "examples" / "demo-store"
TESTS = PROJECT / "tests"
KNOWN_FAILURES = TESTS / "known_failures.yml"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               COLUMNS="200", NO_COLOR="1")
    return env


def _conversation_files() -> list[Path]:
    return sorted(p for p in TESTS.glob("*.yml") if p != KNOWN_FAILURES)


def _count(files: list[Path]) -> int:
    return sum(len(yaml.safe_load(p.read_text(encoding="utf-8"))["conversations"]) for p in files)


def _run(files: list[Path]) -> tuple[subprocess.CompletedProcess[str], str]:
    run = subprocess.run([sys.executable, "-m", "bot.cli", "test", *map(str, files), "--project", str(PROJECT)],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800)
    return run, run.stdout + run.stderr


@pytest.fixture(scope="module")
def trained_model() -> None:
    # `train` is a no-op when the model matches the data and config; otherwise it retrains.
    trained = subprocess.run([sys.executable, "-m", "bot.cli", "train", "--project", str(PROJECT)],
                             cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800)
    assert trained.returncode == 0, f"training failed:\n{trained.stdout[-3000:]}\n{trained.stderr[-3000:]}"


@pytest.mark.usefixtures("trained_model")
def test_demo_store_conversations_pass() -> None:
    files = _conversation_files()
    assert any(p.name == "conversations.yml" for p in files)
    run, output = _run(files)
    failures = "\n".join(line for line in output.splitlines() if line.startswith(("FAIL", "     ")))
    summary = re.search(r"(\d+) passed, (\d+) failed", output)
    assert summary is not None, f"no summary line in the output:\n{output[-3000:]}"
    passed, failed = int(summary.group(1)), int(summary.group(2))
    assert failed == 0, f"{failed} conversation(s) failed:\n{failures}"
    assert run.returncode == 0, output[-3000:]
    total = _count(files)
    assert total >= 60  # the issue asks for at least 60 scripted conversations
    assert passed == total, f"{passed} of the {total} conversations in {[p.name for p in files]} ran"


@pytest.mark.usefixtures("trained_model")
def test_known_failures_still_fail() -> None:
    run, output = _run([KNOWN_FAILURES])
    summary = re.search(r"(\d+) passed, (\d+) failed", output)
    assert summary is not None, f"no summary line in the output:\n{output[-3000:]}"
    now_passing = [line[5:] for line in output.splitlines() if line.startswith("PASS ")]
    assert not now_passing, f"these known failures pass now; move them back into conversations.yml: {now_passing}"
    assert int(summary.group(2)) == _count([KNOWN_FAILURES]) and run.returncode == 1, output[-3000:]


@pytest.mark.usefixtures("trained_model")
def test_a_wrong_expectation_fails_the_run(tmp_path: Path) -> None:
    # Guards the test above: a conversation whose expectation the bot does not meet must fail the run.
    wrong = tmp_path / "wrong.yml"
    wrong.write_text(
        "conversations:\n"
        "  - name: a greeting is not a KB answer\n"
        "    steps:\n"
        "      - user: hello\n"
        "        expect: {kind: answer, article: shipping-times}\n",
        encoding="utf-8",
    )
    run = subprocess.run([sys.executable, "-m", "bot.cli", "test", str(wrong), "--project", str(PROJECT)],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-3000:]
    assert "0 passed, 1 failed" in output
    assert "FAIL a greeting is not a KB answer" in output
    assert "kind: expected 'answer', got 'smalltalk'" in output


def test_slot_expectations_compare_the_conversations_slots() -> None:
    trace = {"decision": {"kind": "ask"}, "slots": {"return_reason": "the vase arrived broken"}}
    assert check({"slots": {"return_reason": "the vase arrived broken", "email": None}}, trace, []) == []
    assert check({"slots": {"return_reason": "too small"}}, trace, []) == [
        "slot return_reason: expected 'too small', got 'the vase arrived broken'"]
    assert check({"slots": ["return_reason"]}, trace, []) == [
        "slots: expected a mapping of slot names to values, got ['return_reason']"]


def test_button_expectations_compare_the_replies_buttons() -> None:
    trace = {"decision": {"kind": "answer"}}
    assert check({"buttons": "/intent:cancel_order"}, trace, [], ["/intent:cancel_order"]) == []
    assert check({"buttons": ["/intent:cancel_order"]}, trace, [], []) == [
        "buttons: expected ['/intent:cancel_order'], got []"]
    assert check({"buttons": []}, trace, [], ["/affirm"]) == ["buttons: expected [], got ['/affirm']"]
    assert check({"buttons": []}, trace, [], []) == []


def test_a_step_can_wait_and_a_wrong_wait_is_named(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("conversations:\n- name: later\n  steps:\n  - user: hi\n  - user: yes\n    after: 1h30m\n")
    assert [s.after for s in load_conversations(good)[0].steps] == [None, timedelta(hours=1, minutes=30)]
    bad = tmp_path / "bad.yml"
    bad.write_text("conversations:\n- name: later\n  steps:\n  - user: hi\n  - user: yes\n    after: tomorrow\n")
    with pytest.raises(ConversationFileError, match=r"'later' step 2: after: 'tomorrow' is not a duration"):
        load_conversations(bad)


def test_a_new_session_forgets_the_open_question_but_not_the_proven_order() -> None:
    state = {"awaiting": "confirm", "pending_action": "action_cancel_order", "failed_turns": 1, "offered_more": True,
             "csat_pending": True, "ticket_id": 7, "proven_contacts": ["a@example.com"],
             "slots": {"order_number": "ND-100116", "verified_order": "ND-100116", "confirmed": True,
                       "email": "a@example.com", "new_address": "x"}}
    assert _new_session(state) == {"ticket_id": 7, "proven_contacts": ["a@example.com"],
                                   "slots": {"order_number": "ND-100116", "verified_order": "ND-100116",
                                             "email": "a@example.com"}}
