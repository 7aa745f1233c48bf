"""The intent classifier's out-of-scope scores: each one selectable, rejecting what lies far from every intent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nlu.classifier import OOD_SCORES, ClassifierSettings, IntentClassifier


def _clustered(rng: np.random.Generator, centres: np.ndarray, per_intent: int) -> tuple[np.ndarray, list[str]]:
    rows, labels = [], []
    for i, centre in enumerate(centres):
        rows.append(centre + 0.25 * rng.standard_normal((per_intent, centres.shape[1])))
        labels += [f"intent_{i}"] * per_intent
    x = np.vstack(rows)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


@pytest.mark.parametrize("ood_score", OOD_SCORES)
def test_each_in_scope_score_keeps_known_intents_and_rejects_unseen_topics(ood_score: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((8, 32))
    x, labels = _clustered(rng, centres, 30)
    clf = IntentClassifier(ClassifierSettings(ood_score=ood_score))
    clf.fit(x, labels)
    known, known_labels = _clustered(rng, centres, 5)
    unseen, _ = _clustered(rng, rng.standard_normal((4, 32)), 5)  # topics no intent was trained on
    accepted = [p.intent for p in clf.predict(known)]
    assert np.mean([a == gold for a, gold in zip(accepted, known_labels, strict=True)]) >= 0.9
    assert np.mean([p.intent is None for p in clf.predict(unseen)]) >= 0.8
    # The trained classifier is a folder: loaded again, it scores and decides the same.
    clf.save(tmp_path)
    again = IntentClassifier.load(tmp_path)
    both = np.vstack([known, unseen])
    before, after = clf.predict(both), again.predict(both)
    assert [p.intent for p in before] == [p.intent for p in after]
    scores_before, scores_after = [p.in_scope_score for p in before], [p.in_scope_score for p in after]
    assert np.allclose(scores_before, scores_after, atol=0.01)  # the training vectors are stored as float16


def test_an_unknown_in_scope_score_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="energy\\+neighbours"):
        IntentClassifier(ClassifierSettings(ood_score="softmax"))
