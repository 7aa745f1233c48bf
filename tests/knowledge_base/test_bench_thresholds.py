"""The retrieval bench's diagnosis: the best each target allows if the threshold were chosen on the query set."""

from __future__ import annotations

from typing import Any

from bench.kb_retrieval import best_thresholds


def _row(expect: str | None, top1: str, confidence: float, threshold: float = 0.5,
         ambiguous: bool = False) -> dict[str, Any]:
    return {"expect": expect, "top1": top1, "confidence": confidence, "ambiguous": ambiguous,
            "confident": confidence >= threshold and not ambiguous}


def test_a_confident_unanswerable_question_caps_what_any_threshold_answers() -> None:
    rows = [_row("a", "a", c) for c in (0.99, 0.97, 0.95, 0.9, 0.8, 0.7, 0.6, 0.55)]
    rows += [_row(None, "a", 0.85)] + [_row(None, "b", c) for c in (0.1, 0.2, 0.3)]
    found = best_thresholds(rows, {"confident_precision": 0.97, "answerable_confident": 0.85,
                                   "unanswerable_answered": 0.0})
    # Only a threshold above the unanswerable question's 0.85 keeps it out: 4 of the 8 answered.
    assert found["none_unanswerable"]["threshold"] == 0.9
    assert found["none_unanswerable"]["answerable_confident"] == 0.5
    assert found["meets_targets_at_some_threshold"] is False
    # With the one wrong answer the measured run gives (1 of 4 unanswerable), precision 8/9 misses 97%.
    assert found["measured_unanswerable"]["answerable_confident"] == 0.5


def test_targets_met_at_a_threshold_the_calibration_did_not_pick() -> None:
    rows = [_row("a", "a", c, threshold=0.9) for c in (0.99, 0.97, 0.95, 0.9, 0.8, 0.7, 0.6, 0.55)]
    rows += [_row(None, "b", c, threshold=0.9) for c in (0.1, 0.2, 0.3, 0.4)]
    rows.append(_row("a", "b", 0.52, threshold=0.9))  # the wrong article, below every right answer
    found = best_thresholds(rows)
    best = found["target_unanswerable"]
    # The calibrated 0.9 answers 4 of 9; 0.55 would answer 8 of 9, all right, and no unanswerable question.
    assert best == {"threshold": 0.55, "answerable_confident": 8 / 9, "confident_precision": 1.0,
                    "unanswerable_answered": 0.0}
    assert found["meets_targets_at_some_threshold"] is True


def test_an_ambiguous_search_is_not_counted_as_answered() -> None:
    rows = [_row("a", "a", 0.9, ambiguous=True), _row("a", "a", 0.8), _row(None, "b", 0.1)]
    found = best_thresholds(rows)
    assert found["target_unanswerable"]["answerable_confident"] == 0.5
