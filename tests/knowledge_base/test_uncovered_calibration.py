"""The confidence is calibrated on questions the KB does not cover: each example question searched again with
its whole article hidden stands for a shopper's question near the shop's business that no article answers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import numpy as np
import pytest

from knowledge_base.index import KIND_QUESTION
from knowledge_base.search import KBSearcher, SearchSettings, _stable_sample, calibration_data, fit_classifier
from tests.knowledge_base.conftest import DEMO_KB, demo_kb_searcher

# Near the demo shop's business, answered by no article (each has a close but wrong one: lamps have a warranty,
# refunds have a timeline, duvets have a size guide). None is in the benchmark query sets.
NEAR_MISSES = [("does the floor lamp come with an extension cable", "en"),
               ("can you refund me the price difference from last week's promotion", "en"),
               ("Wird die Lampe mit Glühbirne geliefert?", "de"),
               ("¿el edredón es de plumas de verdad?", "es"),
               ("est-ce que le colis est emballé sans plastique ?", "fr")]


@pytest.fixture(scope="module")
def uncalibrated_for_gaps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KBSearcher]:
    """The demo KB with the confidence fitted as before: no hidden-article searches."""
    yield from demo_kb_searcher(tmp_path_factory.mktemp("demo-kb-no-uncovered") / "kb.db",
                                SearchSettings(uncovered_share=0.0, target_precision=0.98))


def test_hidden_article_searches_are_wrong_answers_with_their_share_of_the_weight(
    demo_searcher: KBSearcher,
) -> None:
    index, settings = demo_searcher.index, demo_searcher.settings
    assert index is not None and settings.uncovered_share > 0
    data = calibration_data(index, demo_searcher.encoder, settings,
                            classifier=fit_classifier(index, demo_searcher.encoder, settings))
    assert 0 < data.n_uncovered <= settings.max_uncovered_questions
    part = slice(data.n_answerable, data.n_answerable + data.n_uncovered)
    assert not data.labels[part].any(), "with its article hidden, no search can be right"
    share = data.weights[part].sum() / data.weights.sum()
    assert share == pytest.approx(settings.uncovered_share, rel=1e-6)
    # The top article left is never the hidden one: its whole article, in every language, was out of reach.
    assert data.labels[: data.n_answerable].mean() > 0.9
    stats = demo_searcher.calibration.stats if demo_searcher.calibration else {}
    assert 0.0 <= stats["uncovered_above_threshold"] < 0.5


def test_near_misses_get_less_confidence_than_without_the_hidden_article_searches(
    demo_searcher: KBSearcher, uncalibrated_for_gaps: KBSearcher
) -> None:
    now = np.array([demo_searcher.search(q, lang).confidence for q, lang in NEAR_MISSES])
    before = np.array([uncalibrated_for_gaps.search(q, lang).confidence for q, lang in NEAR_MISSES])
    # (Those the old fit already gave almost nothing stay near nothing.)
    assert (now <= np.maximum(before, 0.05)).all() and now.mean() < before.mean() - 0.05, (now, before)
    assert not any(demo_searcher.search(q, lang).confident for q, lang in NEAR_MISSES[:2])


def test_the_hidden_article_sample_depends_on_each_question_alone(demo_searcher: KBSearcher) -> None:
    index = demo_searcher.index
    assert index is not None
    rows = np.flatnonzero(index.alive & (index.entry_kind == KIND_QUESTION))
    picked = set(_stable_sample(index, rows, 300, "hidden 7").tolist())
    for gone in list(picked)[:5]:
        again = set(_stable_sample(index, rows[rows != gone], 300, "hidden 7").tolist())
        # One question fewer: the others picked stay picked (one more takes the free place).
        assert picked - {gone} <= again and len(again - picked) == 1


@pytest.fixture(scope="module")
def with_more_return_questions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KBSearcher]:
    """The demo KB with four more example questions on one article, fitted from scratch."""
    folder = tmp_path_factory.mktemp("kb-edited") / "kb"
    shutil.copytree(DEMO_KB, folder)
    article = folder / "returns-refunds.en.md"
    text = article.read_text(encoding="utf-8")
    extra = ["Can I return a gift?", "What if I return only part of my order?", "Do you take back opened items?",
             "Can I return something bought on sale?"]
    article.write_text(text.replace("questions:\n", "questions:\n" + "".join(f"- {q}\n" for q in extra), 1),
                       encoding="utf-8")
    yield from demo_kb_searcher(folder.parent / "kb.db", kb=folder)


def test_an_edit_to_one_article_barely_moves_the_threshold(
    demo_searcher: KBSearcher, with_more_return_questions: KBSearcher,
) -> None:
    # Four questions added to the returns article moved the threshold from 0.520 to 0.553 when the hidden-article
    # searches were a random draw over all questions and the folds were dealt by position: "how much would that
    # cost me?" (shipping-options 0.54) lost its answer. Both now follow each question's own text.
    edited, demo = with_more_return_questions.index, demo_searcher.index
    assert edited is not None and demo is not None and edited.alive.sum() == demo.alive.sum() + 4
    assert abs(with_more_return_questions.threshold - demo_searcher.threshold) < 0.01
