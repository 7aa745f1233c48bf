"""The Rasa 3.x importer: what a Rasa user's nlu.yml and data/ folder become, and how bad files are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.training_data import TrainingDataError, load_training_data, parse_annotated

NLU_YML = '''version: "3.1"
nlu:
- intent: order_status
  examples: |
    - where is order [ND-100234](order_number)?
    - ship to [NYC](city:New York) please
    - send it to [Berlin]{"entity": "city", "role": "destination"}
    - from [Paris]{"entity": "city", "value": "Paris", "role": "origin"} to [Rome]{"entity": "city", "role": "destination"}
- intent: greet
  examples:
    - hello
    - text: good morning
      metadata: {sentiment: neutral}
- intent: faq/ask_returns
  examples: |
    - how do returns work?
- synonym: New York
  examples: |
    - the big apple
    - nyc
- regex: zipcode
  examples: |
    - \\d{5}
- lookup: city
  examples: |
    - Berlin
    - Munich
'''


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_every_annotation_form_gives_plain_text_and_entities(tmp_path: Path) -> None:
    data = load_training_data(write(tmp_path, "nlu.yml", NLU_YML))
    by_text = {e.text: e for e in data.examples}
    order = by_text["where is order ND-100234?"]
    assert [(a.entity, a.value, a.start, a.end) for a in order.entities] == [("order_number", "ND-100234", 15, 24)]
    (city,) = by_text["ship to NYC please"].entities
    assert (city.entity, city.value, city.text) == ("city", "New York", "NYC")
    (berlin,) = by_text["send it to Berlin"].entities
    assert (berlin.value, berlin.role) == ("Berlin", "destination")
    trip = by_text["from Paris to Rome"]
    assert [(a.text, a.role) for a in trip.entities] == [("Paris", "origin"), ("Rome", "destination")]
    assert "from Paris to Rome"[trip.entities[1].start : trip.entities[1].end] == "Rome"


def test_synonyms_regex_lookup_and_retrieval_intents(tmp_path: Path) -> None:
    data = load_training_data(write(tmp_path, "nlu.yml", NLU_YML))
    assert data.synonyms["the big apple"] == "New York"
    assert data.synonyms["nyc"] == "New York"  # from the list and from [NYC](city:New York)
    assert data.regexes == {"zipcode": [r"\d{5}"]}
    assert data.lookups == {"city": ["Berlin", "Munich"]}
    assert "faq/ask_returns" in data.intents
    assert data.retrieval_intents == ["faq"]
    assert {e.text for e in data.examples if e.intent == "greet"} == {"hello", "good morning"}


def test_a_rasa_project_folder_merges_files_and_skips_stories_and_rules(tmp_path: Path) -> None:
    write(tmp_path, "data/nlu/orders.yml", NLU_YML)
    write(tmp_path, "data/nlu/more.yml", "nlu:\n- intent: greet\n  examples: |\n    - hey there\n"
          "- lookup: city\n  examples: |\n    - Hamburg\n")
    write(tmp_path, "data/stories.yml", "version: '3.1'\nstories:\n- story: s\n  steps:\n  - intent: greet\n")
    write(tmp_path, "data/rules.yml", "rules:\n- rule: r\n  steps:\n  - intent: greet\n  - action: utter_greet\n")
    write(tmp_path, "data/domain.yml", "intents: [greet]\nresponses:\n  utter_greet:\n  - text: Hi!\n"
          "  - text: Hallo!\n    metadata: {language: de}\n")
    data = load_training_data(tmp_path / "data")
    assert {e.text for e in data.examples if e.intent == "greet"} == {"hello", "good morning", "hey there"}
    assert sorted(data.lookups["city"]) == ["Berlin", "Hamburg", "Munich"]
    assert [v["text"] for v in data.responses["utter_greet"]] == ["Hi!", "Hallo!"]
    assert len(data.files) == 5
    # The fingerprint depends on content, not on how it is split into files.
    single = load_training_data([tmp_path / "data/nlu/orders.yml", tmp_path / "data/nlu/more.yml"])
    assert single.fingerprint() == data.fingerprint()


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ("nlu:\n- intent: greet\n  examples: |\n    - hi\n    hello without dash\n", 5, "must start with '- '"),
        ("nlu:\n- intent: greet\n", 2, "has no `examples:`"),
        ("nlu:\n- intent: greet\n  examples: |\n    - [ND-1](order_number\n", 4, "unclosed entity annotation"),
        ('nlu:\n- intent: greet\n  examples: |\n    - ok\n    - [x]{"entity": oops}\n', 5, "not valid JSON"),
        ("nlu:\n- intent: greet\n  examples: |\n    - [x]()\n", 4, "has no entity name"),
        ("nlu:\n- regex: zip\n  examples: |\n    - ok\n    - ([0-9]\n", 5, "is invalid"),
        ("nlu:\n- examples: |\n    - hi\n", 2, "exactly one of"),
        ("nlu:\n- intent: greet\n  examples: |\n    - hi\n  bad: [unclosed\n", 6, "invalid YAML"),
        ("nlu: just text\n", 1, "must be a list"),
    ],
)
def test_malformed_data_names_file_line_and_problem(tmp_path: Path, content: str, line: int, problem: str) -> None:
    path = write(tmp_path, "broken.yml", content)
    with pytest.raises(TrainingDataError) as info:
        load_training_data(tmp_path)
    assert info.value.path == str(path)
    assert info.value.line == line
    assert problem in str(info.value)
    assert f"broken.yml:{line}" in str(info.value)


def test_missing_path_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="no such file or folder"):
        load_training_data(tmp_path / "nope")


def test_plain_brackets_without_annotation_stay_text() -> None:
    text, entities = parse_annotated("size [M] please")
    assert text == "size [M] please"
    assert entities == []
