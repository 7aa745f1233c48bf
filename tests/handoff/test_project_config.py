"""The project's handoff.yml decides what escalates, how urgent it is and how fast staff must answer; a wrong
file stops start-up with the file, the key and what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bot.handoff_desk import HandoffDesk
from bot.store.models import Message
from handoff.config import HandoffConfig, HandoffConfigError, load_handoff_config
from handoff.priority import assign_priority
from handoff.service import HandoffService
from handoff.triggers import EscalationFacts, Trigger
from tests.handoff.helpers import parse

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo-store"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "handoff.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_file_is_valid_and_matches_the_documented_defaults() -> None:
    config = load_handoff_config(DEMO / "handoff.yml")
    defaults = HandoffConfig()
    assert config.escalation == defaults.escalation
    assert config.priority == defaults.priority
    assert config.sla == defaults.sla
    assert config.region_of("de") == "EU" and config.region_of("NO") == "EU" and config.region_of("US") == "NA"
    assert config.region_of("BR") == "BR"  # outside every region: the country itself


def test_a_project_without_the_file_gets_the_defaults(tmp_path: Path) -> None:
    assert load_handoff_config(tmp_path / "handoff.yml") == HandoffConfig()


@pytest.mark.parametrize(("text", "key", "what"), [
    ("escalation:\n  failed_turns_limit: 0\n", "escalation.failed_turns_limit", "greater than or equal to 1"),
    ("escalation:\n  angry: false\n", "escalation.angry", "unknown key"),
    ("escalation:\n  order_value_currency: EURO\n", "escalation.order_value_currency", "unknown currency 'EURO'"),
    ("sla:\n  targets:\n    P1: {first_response: soon, next_response: 30m, resolution: 4h}\n"
     "    P2: {first_response: 1h, next_response: 2h, resolution: 8h}\n"
     "    P3: {first_response: 4h, next_response: 8h, resolution: 24h}\n"
     "    P4: {first_response: 8h, next_response: 24h, resolution: 3d}\n",
     "sla.targets.P1.first_response", "write it like 15m"),
    ("sla:\n  targets:\n    P1: {first_response: 15m, next_response: 30m, resolution: 4h}\n",
     "sla.targets", "missing ['P2', 'P3', 'P4']"),
    ("priority:\n  rules:\n    - {tier: P1, any_of: [thread]}\n", "priority.rules.0.any_of",
     "unknown trigger(s) ['thread']"),
    ("priority:\n  default_tier: P5\n", "priority.default_tier", "pattern"),
    ("regions:\n  EU: [Germany]\n", "regions", "not two-letter country codes"),
    ("regions:\n  EU: [DE, NO]\n", "regions", '"NO"'),
    ("- just\n- a list\n", "", "expected a mapping"),
    ("escalation: [\n", "", "not valid YAML"),
])
def test_a_wrong_setting_names_the_file_and_the_key(tmp_path: Path, text: str, key: str, what: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(HandoffConfigError) as caught:
        load_handoff_config(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert f"{key}:" in message and what in message, message


def test_thresholds_and_switches_from_the_file_change_what_the_desk_escalates(
        tmp_path: Path, service: HandoffService) -> None:
    config = load_handoff_config(write(tmp_path, (
        "escalation:\n  anger: false\n  order_value_threshold: 30\n  order_value_currency: EUR\n")))
    desk = HandoffDesk(service, responses=None, events=None, languages=["en"], config=config)  # type: ignore[arg-type]
    default = HandoffDesk(service, responses=None, events=None, languages=["en"])  # type: ignore[arg-type]
    message = Message(text="this is ridiculous", payload={})

    def fired(which: HandoffDesk, state: dict[str, object]) -> list[str]:
        return [t["name"] for t in which.triggers(parse("this is ridiculous", "en", "angry"), state, message)]

    order = {"slots": {"verified_order": "ND-1"}, "order_total": 36.71, "order_currency": "EUR"}
    assert fired(default, dict(order)) == ["anger"]
    assert fired(desk, dict(order)) == ["high_value_order"]  # anger off, 36.71 EUR >= 30 EUR
    assert fired(desk, {"slots": {"verified_order": "ND-2"}, "order_total": 30.0, "order_currency": "USD"}) == []


def test_priority_rules_and_sla_targets_from_the_file(tmp_path: Path) -> None:
    config = load_handoff_config(write(tmp_path, (
        "priority:\n  rules:\n    - {tier: P1, any_of: [human_request], description: VIP shop}\n  default_tier: P3\n"
        "sla:\n  targets:\n"
        "    P1: {first_response: 5m, next_response: 10m, resolution: 1h30m}\n"
        "    P2: {first_response: 1h, next_response: 2h, resolution: 8h}\n"
        "    P3: {first_response: 4h, next_response: 8h, resolution: 1d}\n"
        "    P4: {first_response: 8h, next_response: 24h, resolution: 3d}\n")))
    human = [Trigger("human_request", "asked for a person", "P3")]
    assert assign_priority(human, EscalationFacts(), config.priority)[0] == "P1"
    assert assign_priority([], EscalationFacts(), config.priority)[0] == "P3"
    assert config.sla.target("P1").first_response == timedelta(minutes=5)
    assert config.sla.target("P1").resolution == timedelta(hours=1, minutes=30)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200", "NO_COLOR": "1"}


def _project_with(tmp_path: Path, handoff_yml: str) -> Path:
    """The demo project with its own handoff.yml (everything else linked, the trained model too)."""
    project = tmp_path / "project"
    project.mkdir()
    for entry in DEMO.iterdir():
        if entry.name != "handoff.yml":
            (project / entry.name).symlink_to(entry)
    (project / "handoff.yml").write_text(handoff_yml, encoding="utf-8")
    return project


def _nightdesk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=1800)


def test_the_running_bot_escalates_by_the_projects_file(tmp_path: Path) -> None:
    # The demo project with the shipped file: an angry shopper escalates, a 36.71 EUR order does not,
    # and two turns not understood do (the project's tests/handoff.yml and orders.yml). Here the seller
    # changed all three.
    trained = _nightdesk("train", "--project", str(DEMO))
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    regions = yaml.safe_load((DEMO / "handoff.yml").read_text(encoding="utf-8"))["regions"]  # staff.yml uses them
    project = _project_with(tmp_path, yaml.safe_dump({
        "escalation": {"anger": False, "order_value_threshold": 30, "order_value_currency": "EUR",
                       "failed_turns_limit": 3},
        "regions": regions}))
    conversations = tmp_path / "conversations.yml"
    conversations.write_text("""conversations:
  - name: an order of 36.71 EUR is high value above a 30 EUR threshold
    steps:
      - user: "where is my order ND-100105?"
        expect: {kind: ask, ticket: false}
      - user: "chloe.bernard311@example.org"
        expect: {kind: act, ticket: false}
      - user: "thanks"
        expect: {kind: [escalate, after_hours], ticket: true}
  - name: anger no longer escalates
    steps:
      - user: "This is absolutely ridiculous!!! Three weeks and still NOTHING. Worst shop ever, I'm furious"
        expect: {ticket: false}
  - name: three turns not understood escalate, not two
    steps:
      - user: "purple elephants dance on the moon"
        expect: {kind: fallback, ticket: false}
      - user: "quantum banana keyboard symphony"
        expect: {kind: fallback, ticket: false}
      - user: "seven violet submarines hum quietly"
        expect: {kind: [escalate, after_hours], ticket: true}
""", encoding="utf-8")
    ran = _nightdesk("test", str(conversations), "--project", str(project))
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "3 passed, 0 failed" in ran.stdout


def test_a_wrong_file_stops_start_up_naming_file_and_key(tmp_path: Path) -> None:
    project = _project_with(tmp_path, "escalation:\n  repeat_contact_days: 0\n")
    conversations = tmp_path / "conversations.yml"
    conversations.write_text("conversations:\n  - name: hello\n    steps:\n      - user: hi\n        expect: {}\n",
                             encoding="utf-8")
    ran = _nightdesk("test", str(conversations), "--project", str(project))
    assert ran.returncode != 0
    output = ran.stdout + ran.stderr
    assert f"{project / 'handoff.yml'}: invalid setting(s)" in output, output[-3000:]
    assert "escalation.repeat_contact_days: Input should be greater than or equal to 1" in output, output[-3000:]


def test_nightdesk_run_with_a_wrong_file_says_so_in_one_message(tmp_path: Path) -> None:
    project = _project_with(tmp_path, "sla:\n  targets:\n    P1: {first_response: soon}\n")
    # Its own var dir: a regression would start the server's embedded Redis there, not in the repository.
    ran = subprocess.run([sys.executable, "-m", "bot.cli", "run", "--project", str(project), "--no-train"], cwd=ROOT,
                         env={**_env(), "NIGHTDESK_VAR_DIR": str(tmp_path / "var"), "NIGHTDESK_PORT": "1"},
                         capture_output=True, text=True, timeout=600)
    output = ran.stdout + ran.stderr
    assert ran.returncode == 2, output[-3000:]
    assert "Nightdesk cannot start:" in output and "sla.targets.P1" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
