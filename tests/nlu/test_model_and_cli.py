"""A Rasa project trained and used end to end: artefact, staleness, version check, out-of-scope, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nlu.model import MANIFEST, VOCABULARY, ModelFormatError, NLUConfig, NLUModel, needs_training, train_model

TINY = Path(__file__).resolve().parent / "data" / "tiny-rasa"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rasa") / "tiny-rasa"
    shutil.copytree(TINY, folder)
    return folder


@pytest.fixture(scope="module")
def model_dir(project: Path) -> Path:
    stages: list[str] = []
    out = train_model(project / "data", None, project / "models" / "nlu", progress=lambda s, f: stages.append(s))
    assert "training the intent classifier" in stages and stages[-1] == "done"
    return out


@pytest.fixture(scope="module")
def model(model_dir: Path) -> NLUModel:
    return NLUModel.load(model_dir)


def test_artefact_records_what_it_was_trained_from(model_dir: Path) -> None:
    manifest = json.loads((model_dir / MANIFEST).read_text())
    assert manifest["format_version"] == 1
    assert manifest["encoder"] == "use-multilingual"
    assert manifest["intents"] == ["cancel_order", "faq/ask_payment", "greet", "order_status", "thanks"]
    assert manifest["retrieval_intents"] == ["faq"]
    assert isinstance(manifest["thresholds"]["out_of_scope"], float)  # on a standardised score
    assert set(manifest["thresholds"]["sentiment"]) == {"angry", "urgent", "threat", "human"}
    assert manifest["metrics"]["intent"]["cv_accuracy"] > 0.8
    assert len(manifest["data_fingerprint"]) == 64


def test_understands_known_intents_in_several_languages(model: NLUModel) -> None:
    cases = {"has my order ND-100555 shipped?": "order_status", "wo bleibt mein Paket?": "order_status",
             "please cancel my purchase": "cancel_order", "¿puedo pagar con PayPal?": "faq/ask_payment",
             "谢谢你": "thanks"}
    for text, intent in cases.items():
        result = model.parse(text)
        assert result.intent == intent, (text, result.ranking[:3])
        assert result.ranking[0].name == intent
        assert abs(sum(s.confidence for s in result.ranking) - 1) < 0.01  # the ranking is a distribution
    result = model.parse("has my order ND-100555 shipped?")
    assert result.entity("order_number") is not None and result.entity("order_number").value == "ND-100555"  # type: ignore[union-attr]
    assert set(result.timings_ms) >= {"language", "encode", "intent", "entities", "sentiment", "total"}


def test_rejects_messages_it_was_not_trained_for(model: NLUModel) -> None:
    for text in ("what's the capital of Mongolia?", "write me a poem about cats", "how tall is Mount Everest?"):
        result = model.parse(text)
        assert result.intent is None, (text, result.ranking[:3])
        assert result.ranking  # the ranking is still there for the engine's clarifying questions


def test_an_empty_message_has_no_intent(model: NLUModel) -> None:
    for text in ("", "   "):
        result = model.parse(text, previous_language="de")
        assert (result.intent, result.confidence, result.language) == (None, 0.0, "de")


def test_sentiment_and_language_hint(model: NLUModel) -> None:
    threat = model.parse("This is a scam. I'm filing a chargeback and calling my lawyer!")
    assert threat.sentiment.threat
    assert model.parse("Kann ich bitte mit einem echten Menschen sprechen?").sentiment.asks_human
    assert not model.parse("where is my order?").sentiment.labels
    assert model.parse("ND-100234", previous_language="de").language == "de"


def test_parse_batch_matches_single_parses(model: NLUModel) -> None:
    texts = ["where is my order?", "hola", "recommend a pizza recipe"]
    batch = model.parse_batch(texts)
    assert [r.intent for r in batch] == [model.parse(t).intent for t in texts]


def test_the_intent_is_read_without_the_identifiers(model: NLUModel) -> None:
    first = model.parse("where is my order ND-100234? anna.k@example.com")
    second = model.parse("where is my order ND-999871? zed.x@example.org")
    assert first.intent == "order_status" and first.ranking == second.ranking
    assert [e.value for e in first.entities if e.entity == "order_number"] == ["ND-100234"]  # still extracted


def test_a_model_from_before_masking_reads_text_unmasked(model_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "before-masking"
    shutil.copytree(model_dir, old)
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["config"]["mask_identifiers"]
    (old / MANIFEST).write_text(json.dumps(manifest))
    loaded = NLUModel.load(old)
    assert loaded.config.mask_identifiers is False
    first = loaded.parse("where is my order ND-100234? anna.k@example.com")
    second = loaded.parse("where is my order ND-999871? zed.x@example.org")
    assert first.ranking != second.ranking


def test_the_words_of_the_data_are_kept_and_an_older_model_parses_without_them(model_dir: Path, tmp_path: Path) -> None:
    kept = json.loads((model_dir / VOCABULARY).read_text())
    assert kept["order"] == 6 and kept["cancel"] == 5 and list(kept) == sorted(kept)  # each word with its count
    assert NLUModel.load(model_dir).vocabulary is not None
    listed = tmp_path / "words-without-counts"  # as models kept them before the counts
    shutil.copytree(model_dir, listed)
    (listed / VOCABULARY).write_text(json.dumps(sorted(kept)))
    assert NLUModel.load(listed).parse("wher is my ordr").intent == "order_status"
    old = tmp_path / "before-vocabulary"
    shutil.copytree(model_dir, old)
    (old / VOCABULARY).unlink()
    loaded = NLUModel.load(old)
    assert loaded.vocabulary is None and not loaded._unknown_words("asdfgh")


def test_typing_slips_are_mended_when_the_message_reads_as_nothing(model_dir: Path, tmp_path: Path) -> None:
    model = NLUModel.load(model_dir)
    off = tmp_path / "no-mending"
    shutil.copytree(model_dir, off)
    manifest = json.loads((off / MANIFEST).read_text())
    manifest["config"]["correct_spelling"] = False
    (off / MANIFEST).write_text(json.dumps(manifest))
    unmended = NLUModel.load(off)
    for text, intent in {"wher is my ordr": "order_status", "pleese cancle my purchase": "cancel_order"}.items():
        before = unmended.parse(text)
        assert before.intent is None or before.confidence < 0.5, (text, before.ranking[:3])
        after = model.parse(text)
        assert (after.intent, after.text) == (intent, text) and after.confidence > 0.9 and after.corrected
    # The entities of the mended message are placed on the message as written.
    result = model.parse("wher is my ordr ND-100555")
    assert result.corrected == "where is my order ND-100555"
    found = result.entity("order_number")
    assert found is not None and (found.start, found.end, found.text) == (16, 25, "ND-100555")
    # A long message (an email) is mended whole: an order number past the encoded opening is still found.
    long = "wher is my ordr? " + "I have been waiting for weeks. " * 40 + "It is ND-100555."
    read = model.parse(long)
    assert read.corrected is not None and read.corrected.endswith("It is ND-100555.")
    found = read.entity("order_number")
    assert found is not None and long[found.start:found.end] == "ND-100555"
    # A message without slips says nothing of mending.
    assert model.parse("where is my order ND-100555").corrected is None
    assert [r.corrected for r in model.parse_batch(["wher is my ordr", "hello"])] == ["where is my order", None]
    # A slip in a message that reads as surely without mending: the intent stays, the entities are the mended text's.
    plain = model.parse("where is my order? shipped to australia")
    slipped = model.parse("where is my ordr? shipped to australa")
    assert slipped.intent == plain.intent == "order_status"
    assert slipped.corrected == "where is my order? shipped to australia"
    country = slipped.entity("country")
    assert country is not None and (country.value, country.text) == ("AU", "australa")


def test_the_unknown_word_check_can_be_turned_off(model_dir: Path, tmp_path: Path) -> None:
    off = tmp_path / "off"
    shutil.copytree(model_dir, off)
    manifest = json.loads((off / MANIFEST).read_text())
    manifest["config"]["unknown_words_max"] = 0
    (off / MANIFEST).write_text(json.dumps(manifest))
    assert NLUModel.load(model_dir)._unknown_words("asdfgh")
    assert not NLUModel.load(off)._unknown_words("asdfgh")


def test_retrains_only_when_data_or_config_change(project: Path, model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(project / "data", data)
    out = tmp_path / "model"
    assert needs_training(data, None, out)  # nothing there yet
    shutil.copytree(model_dir, out)
    assert not needs_training(data, None, out)  # same data and config, another folder
    assert not needs_training(data, {"encoder": "use-multilingual"}, out)  # the default spelled out
    assert needs_training(data, NLUConfig(encoder="use-multilingual+sentence-transformers"), out)
    assert needs_training(data, {"classifier": {"C": 1.0}}, out)
    assert needs_training(data, {"mask_identifiers": False}, out)
    (data / "stories.yml").write_text("stories: []\n")  # not NLU data: no retraining
    assert not needs_training(data, None, out)
    nlu = data / "nlu.yml"
    nlu.write_text(nlu.read_text() + "- intent: goodbye\n  examples: |\n    - bye\n    - see you\n")
    assert needs_training(data, None, out)


def test_a_model_of_another_format_version_is_refused(model_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old-model"
    shutil.copytree(model_dir, old)
    manifest = json.loads((old / MANIFEST).read_text())
    manifest["format_version"] = 0
    (old / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="format version 0.*retrain"):
        NLUModel.load(old)
    assert needs_training(TINY / "data", None, old)
    with pytest.raises(ModelFormatError, match="not a trained NLU model"):
        NLUModel.load(tmp_path)


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "nlu.cli", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def test_cli_trains_a_rasa_project_folder_predicts_and_evaluates(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-model"
    first = cli("train", "--data", str(project / "data"), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "trained" in first.stderr
    again = cli("train", "--data", str(project / "data"), "--out", str(out))
    assert again.returncode == 0 and "up to date" in again.stderr
    predicted = cli("predict", "--model", str(out),
                    stdin="where is my order ND-100234?\n\nok\nwhat's the capital of Mongolia?\nwher is my ordr\n")
    assert predicted.returncode == 0, predicted.stderr
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert len(rows) == 4  # the blank line is skipped
    assert rows[3]["intent"] == "order_status" and rows[3]["corrected"] == "where is my order"
    assert "corrected" not in rows[0]
    first_row = rows[0]
    assert set(first_row) == {"text", "language", "intent", "confidence", "ranking", "entities", "sentiment"}
    assert first_row["intent"] == "order_status" and first_row["language"] == "en"
    assert len(first_row["ranking"]) == 5
    assert first_row["entities"][0]["entity"] == "order_number" and first_row["entities"][0]["value"] == "ND-100234"
    assert rows[2]["intent"] is None
    report_path = tmp_path / "report.json"
    evaluated = cli("evaluate", "--model", str(out), "--data", str(project / "test.yml"), "--out", str(report_path))
    assert evaluated.returncode == 0, evaluated.stderr
    assert "out of scope: precision" in evaluated.stdout
    report = json.loads(report_path.read_text())
    assert report["accuracy"] >= 0.75
    assert set(report["per_intent"]) >= {"order_status", "cancel_order", "greet", "out_of_scope"}
    assert {"precision", "recall"} == set(report["out_of_scope"])


def test_cli_reports_bad_data_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "nlu.yml"
    bad.write_text("nlu:\n- intent: greet\n  examples: |\n    - hi\n    hello\n")
    result = cli("train", "--data", str(bad), "--out", str(tmp_path / "m"))
    assert result.returncode == 1
    assert f"{bad}:5" in result.stderr and "must start with '- '" in result.stderr
    missing = cli("predict", "--model", str(tmp_path / "nothing"), stdin="hi\n")
    assert missing.returncode == 1 and "nightdesk nlu train" in missing.stderr


def test_a_message_in_a_language_the_model_does_not_speak_is_named(model: NLUModel) -> None:
    polish = "Dzień dobry, czy mogę zapłacić kartą przy odbiorze paczki?"
    assert model.parse(polish).foreign_language == "pl"
    assert model.parse(polish).language in model.config.languages  # still the closest configured one
    assert model.parse("can I pay by card when the parcel arrives?").foreign_language is None
    model.config.recognise_other_languages = False
    try:
        assert model.parse(polish).foreign_language is None
    finally:
        model.config.recognise_other_languages = True
