"""Search the knowledge base: dense + BM25 scores fused per article, calibrated into one confidence.

`KBSearcher.search(query, locale)` returns ranked candidates, each citing article id and version,
in the shopper's locale when a translation exists, else in the fallback locale (and says so).
The confidence is a logistic model fitted, at every index build, on leave-one-out searches of the
articles' own example questions plus packaged out-of-domain questions, with an article classifier's
probabilities among its features (fitted at every build too); the threshold is the lowest
one that keeps the precision of confident answers on that data at the target. The fit weighs every
article the same and the out-of-domain questions as a fixed share, and no feature says which
translations exist, so adding translations does not move the threshold by changing the mix.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from knowledge_base.index import KIND_CHUNK, KIND_NAMES, KIND_QUESTION, KIND_TITLE, KBIndex, is_code, tokenize
from knowledge_base.service import KnowledgeBase
from nlu.encoders import Encoder, load_encoder
from nlu.segments import lookup_text

log = logging.getLogger(__name__)

OUT_OF_DOMAIN_FILE = Path(__file__).with_name("data") / "out_of_domain.yml"
# `*_margin`: how far the article is ahead of the best other candidate on that signal alone (negative when
# behind); `agreement`: share of the question, answer and keyword signals whose own best article it is.
# Nothing here depends on which translations exist, so the calibration does not either.
# `off_topic`: similarity to the nearest packaged out-of-domain question (small talk, other services, ...).
# `classifier`: the article classifier's probability of the article (`classifier_margin` its lead, and
# `classifier_off_topic` the probability of its off-topic class); all 0 when the KB has no classifier.
FEATURES = ("fused", "margin", "question", "answer", "title", "bm25", "vote", "question_margin", "answer_margin",
            "agreement", "off_topic", "classifier", "classifier_margin", "classifier_off_topic")
# Weights of the ranking score; chosen on leave-one-out accuracy over the demo articles' own questions.
W_QUESTION, W_ANSWER, W_TITLE, W_BM25 = 0.68, 0.16, 0.1, 0.06
BM25_HALF = 6.0
CROSS_LINGUAL_BONUS = 0.06
# Share of the question match taken from the article's second-best example question: a match that a second
# phrasing supports is worth more than one lucky neighbour.
Q_SECOND = 0.25
VOTE_NEIGHBOURS = 10
W_CODE = 0.25
W_CLASSIFIER = 0.1


@dataclass(frozen=True)
class SearchSettings:
    """Tunables; `threshold=None` means use the calibrated one."""

    threshold: float | None = None
    target_precision: float = 0.95
    min_threshold: float = 0.35
    max_threshold: float = 0.95
    clarify_margin: float = 0.04
    k_entries: int = 48
    max_candidates: int = 12
    max_calibration_questions: int = 2500
    hnsw_min_entries: int = 20_000
    # Refit the confidence when more than this share of article/locale docs changed since the last fit.
    recalibrate_share: float = 0.02
    # Calibration searches each example question with itself hidden, its translations hidden (if set) and
    # this many of its closest siblings in the article hidden.
    calibration_leave_translations_out: bool = False
    calibration_siblings_out: int = 0
    # The share of shoppers' questions that no article answers, as the calibration weighs them.
    off_topic_share: float = 0.2
    # Of those, the share asked near the shop's business (a product fact, a service the shop may not offer):
    # the calibration simulates them by searching example questions with their whole article hidden, so
    # that a close but wrong article (a lamp's bulb answered with the lamp warranty) is not trusted.
    # At most `max_uncovered_questions` such searches (0 turns them off).
    uncovered_share: float = 0.1
    max_uncovered_questions: int = 800
    # The article classifier (a softmax over the articles and an off-topic class, fitted on the example
    # questions and titles at every build) gives the confidence a learnt view of the question; it is left
    # out above this many articles, where fitting it would take longer than the rest of the build.
    classifier: bool = True
    classifier_max_articles: int = 500
    classifier_c: float = 10.0
    # Weight of the classifier's word features (tf-idf of the question's words) next to its vector; 0: none.
    classifier_words: float = 2.0
    # A second encoder for the languages it knows well: where the question and an entry are both in one of
    # `second_languages`, their similarity is the mean of both encoders' (`second_weight` on the second).
    # The packaged MiniLM tells English paraphrases apart far better than the multilingual encoder alone.
    second_encoder: str | None = None
    second_languages: tuple[str, ...] = ("en",)
    second_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be between 0 and 1 (exclusive)")
        if not 0.5 <= self.target_precision < 1.0:
            raise ValueError("target_precision must be in [0.5, 1)")
        if not 0.0 < self.second_weight < 1.0:
            raise ValueError("second_weight must be between 0 and 1 (exclusive)")


@dataclass(frozen=True)
class Candidate:
    """One article that may answer the question, cited by id and version."""

    article_id: str
    version: int
    title: str
    locale: str
    answer: str
    score: float
    confidence: float
    fallback_used: bool
    matched: str
    matched_kind: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "article_id": self.article_id,
            "version": self.version,
            "title": self.title,
            "locale": self.locale,
            "answer": self.answer,
            "score": round(self.score, 4),
            "confidence": round(self.confidence, 4),
            "fallback_used": self.fallback_used,
            "matched": self.matched,
            "matched_kind": self.matched_kind,
        }


@dataclass(frozen=True)
class SearchResult:
    """Ranked candidates plus what the policy needs: confident?, margin to the runner-up, locale."""

    query: str
    locale: str | None
    candidates: list[Candidate]
    confident: bool
    threshold: float
    margin: float
    served_locale: str | None
    fallback_used: bool
    kb_version: int
    ambiguous: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The article classifier's probability that no article is about the question (its off-topic class, fitted on
    # the packaged off-topic questions: small talk, product facts, stock, services the shop may not offer); None
    # without a classifier.
    off_topic: float | None = None

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def confidence(self) -> float:
        return self.candidates[0].confidence if self.candidates else 0.0

    def to_trace(self) -> dict[str, Any]:
        """The KB part of the decision trace."""
        best = self.best
        note = None
        if best is not None and self.fallback_used:
            note = (
                f"no '{self.locale}' translation of '{best.article_id}'; "
                f"answered in the fallback locale '{best.locale}'"
            )
        return {
            "query": self.query,
            "requested_locale": self.locale,
            "served_locale": self.served_locale,
            "fallback_used": self.fallback_used,
            "fallback_note": note,
            "kb_version": self.kb_version,
            "confident": self.confident,
            "confidence": round(self.confidence, 4),
            "threshold": round(self.threshold, 4),
            "margin": round(self.margin, 4),
            "ambiguous": self.ambiguous,
            "off_topic": round(self.off_topic, 4) if self.off_topic is not None else None,
            "article_id": best.article_id if best else None,
            "article_version": best.version if best else None,
            "candidates": [
                {k: v for k, v in c.to_dict().items() if k != "answer"} for c in self.candidates
            ],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


@dataclass(frozen=True)
class Calibration:
    """Logistic model from FEATURES to P(top answer is right), and the threshold chosen on it."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    stats: dict[str, float]

    def confidence(self, features: np.ndarray) -> np.ndarray:
        z = ((features - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "threshold": self.threshold,
            "stats": self.stats,
        }

    @classmethod
    def default(cls) -> Calibration:
        """Used when the knowledge base is too small to fit on: a sigmoid on the fused score alone."""
        n = len(FEATURES)
        coef = [0.0] * n
        coef[0] = 12.0
        return cls(
            mean=tuple([0.6] + [0.0] * (n - 1)),
            scale=tuple([1.0] * n),
            coef=tuple(coef),
            intercept=0.0,
            threshold=0.6,
            stats={"fitted": 0.0},
        )


@dataclass
class _Scored:
    articles: np.ndarray  # int (m,) article positions, best first
    features: np.ndarray  # (m, len(FEATURES))
    best_row: np.ndarray  # (m,) row of the best-matching entry


@dataclass(frozen=True)
class _Second:
    """The second encoder's vectors of the entries in its languages (`has` marks them; other rows are 0)."""

    encoder: Encoder
    languages: tuple[str, ...]
    weight: float
    vectors: np.ndarray
    has: np.ndarray
    # Vectors per article version, reused by the next build like the index reuses its own.
    by_key: dict[tuple[str, str, int], np.ndarray]

    def query_vector(self, text: str, locale: str | None) -> np.ndarray | None:
        if not locale or _base_language(locale) not in self.languages:
            return None
        return self.encoder.encode([text])[0]


def _base_language(locale: str) -> str:
    return locale.replace("_", "-").split("-")[0]


def _second_vectors(index: KBIndex, encoder: Encoder, settings: SearchSettings,
                    previous: _Second | None) -> _Second:
    languages = tuple(settings.second_languages)
    vectors = np.zeros((len(index.entry_doc), encoder.dim), dtype=np.float32)
    has = np.zeros(len(index.entry_doc), dtype=bool)
    known = previous.by_key if previous is not None and previous.encoder is encoder else {}
    by_key: dict[tuple[str, str, int], np.ndarray] = {}
    todo: list[int] = []
    for doc, dv in enumerate(index.doc_vectors):
        if index.doc_lang[doc] not in languages:
            continue
        start, end = (int(v) for v in index.doc_rows[doc])
        has[start:end] = True
        if dv.key in known:
            by_key[dv.key] = vectors[start:end] = known[dv.key]
        else:
            todo.append(doc)
    texts = [t for doc in todo for t in index.doc_vectors[doc].texts]
    encoded = encoder.encode(texts) if texts else np.zeros((0, encoder.dim), np.float32)
    at = 0
    for doc in todo:
        start, end = (int(v) for v in index.doc_rows[doc])
        vectors[start:end] = encoded[at : at + end - start]
        by_key[index.doc_vectors[doc].key] = encoded[at : at + end - start]
        at += end - start
    return _Second(encoder, languages, settings.second_weight, vectors, has, by_key)


def _score(index: KBIndex, qvec: np.ndarray, tokens: list[str], exclude_rows: np.ndarray | None = None,
           k_entries: int = 48, max_candidates: int = 12, locale: str | None = None,
           exclude_doc: int = -1, off_topic: np.ndarray | None = None,
           second: tuple[_Second, np.ndarray] | None = None, classifier: np.ndarray | None = None) -> _Scored:
    """Per-article features for the most promising articles (dense neighbours, BM25 and classifier hits).

    `second`: the second encoder's entries and this question's vector under it (question in its languages);
    `classifier`: the article classifier's probabilities for this question (articles, then off-topic)."""
    empty = _Scored(np.zeros(0, np.int64), np.zeros((0, len(FEATURES)), np.float32), np.zeros(0, np.int64))
    n_live = int(index.alive.sum())
    if n_live == 0:
        return empty
    extra = index.faiss_index.ntotal - n_live
    excluded = exclude_rows if exclude_rows is not None else np.zeros(0, np.int64)
    skip = set(excluded.tolist())
    k = min(index.faiss_index.ntotal, k_entries + len(skip) + min(extra, 64))
    sims_top, ids = index.faiss_index.search(qvec[None, :].astype(np.float32), k)
    seen: dict[int, None] = {}
    # Share of the nearest entries that belong to each article: agreement among neighbours.
    votes: dict[int, float] = {}
    voted = 0
    for sim, row in zip(sims_top[0], ids[0], strict=True):
        if row < 0 or row in skip or not index.alive[row] or index.entry_doc[row] == exclude_doc:
            continue
        pos = int(index.doc_article[index.entry_doc[row]])
        if voted < VOTE_NEIGHBOURS:
            votes[pos] = votes.get(pos, 0.0) + max(float(sim), 0.0)
            voted += 1
        seen.setdefault(pos, None)
        if len(seen) >= max_candidates and voted >= VOTE_NEIGHBOURS:
            break
    # An exact SKU / order / tax number is decisive whatever the embedding says.
    code_articles = {
        int(index.doc_article[d]) for t in tokens if is_code(t) for d in index.codes.get(t, ())
    }
    for pos in code_articles:
        seen.setdefault(pos, None)
    bm25_docs = index.bm25_scores(tokens)
    bm25_article = np.zeros(len(index.article_ids), dtype=np.float32)
    if bm25_docs.any():
        bm25_article = np.maximum.reduceat(bm25_docs, index.article_start)
        top = np.argpartition(-bm25_article, min(5, len(bm25_article) - 1))[:5]
        for pos in top[np.argsort(-bm25_article[top])]:
            if bm25_article[pos] > 0:
                seen.setdefault(int(pos), None)
    if classifier is not None:
        for pos in np.argsort(-classifier[:-1])[:2]:
            seen.setdefault(int(pos), None)
    cands = np.fromiter(seen.keys(), dtype=np.int64, count=len(seen))
    if len(cands) == 0:
        return empty
    bm_max = float(bm25_article.max()) or 1.0
    lang = _base_language(locale) if locale else ""
    vote_total = sum(votes.values()) or 1.0
    feats = np.zeros((len(cands), len(FEATURES)), dtype=np.float32)
    best_rows = np.zeros(len(cands), dtype=np.int64)
    for j, pos in enumerate(cands):
        rows = np.concatenate([np.arange(*index.doc_rows[d]) for d in index.article_docs[pos]])
        if len(excluded):
            rows = rows[~np.isin(rows, excluded)]
        if exclude_doc >= 0:
            rows = rows[index.entry_doc[rows] != exclude_doc]
        own = np.zeros(len(rows), dtype=bool)
        if lang:
            row_lang = index.doc_lang[index.entry_doc[rows]]
            own = row_lang == lang
            if own.any():
                # An article in the shopper's language is matched in that language and its source only: the
                # other translations add nothing the source does not say, only more chances of a chance match.
                keep = own | (row_lang == index.source_lang)
                rows, own = rows[keep], own[keep]
        sims = index.vectors[rows] @ qvec
        if second is not None:
            both = second[0].has[rows]
            if both.any():
                w = second[0].weight
                sims[both] = (1 - w) * sims[both] + w * (second[0].vectors[rows[both]] @ second[1])
        # The encoder scores same-language pairs higher than translations of the same question; without
        # this, a German question prefers any German article to the right English one. Applied as a discount
        # on same-language entries so a language with no docs is unaffected.
        sims = sims - CROSS_LINGUAL_BONUS * own
        kinds = index.entry_kind[rows]
        q_sims = sims[kinds == KIND_QUESTION]
        s_q = float(q_sims.max(initial=-1.0))
        if len(q_sims) > 1:
            top2 = np.partition(q_sims, len(q_sims) - 2)[-2:]
            s_q = float((1 - Q_SECOND) * top2[1] + Q_SECOND * top2[0])
        s_t = float(sims[kinds == KIND_TITLE].max(initial=-1.0))
        s_c = float(sims[kinds == KIND_CHUNK].max(initial=-1.0))
        if s_q < -0.5:  # an article without example questions is matched on its title instead
            s_q = s_t
        bm = float(bm25_article[pos])
        bm_sat = bm / (bm + BM25_HALF)
        fused = W_QUESTION * s_q + W_ANSWER * s_c + W_TITLE * s_t + W_BM25 * (bm / bm_max) * bm_sat * 2
        if int(pos) in code_articles:
            fused += W_CODE
        if classifier is not None:
            fused += W_CLASSIFIER * float(classifier[pos])
        feats[j, :7] = (fused, 0.0, s_q, s_c, s_t, bm_sat, votes.get(int(pos), 0.0) / vote_total)
        best_rows[j] = rows[int(np.argmax(sims))] if len(rows) else -1
    order = np.argsort(-feats[:, 0], kind="stable")
    cands, feats, best_rows = cands[order], feats[order], best_rows[order]
    for col, out in ((0, 1), (2, 7), (3, 8)):
        feats[:, out] = _lead(feats[:, col])
    if off_topic is not None and len(off_topic):
        feats[:, 10] = float((off_topic @ qvec).max())
    if classifier is not None:
        feats[:, 11] = classifier[cands]
        feats[:, 12] = _lead(feats[:, 11])
        feats[:, 13] = classifier[-1]
    feats[:, 9] = sum(
        ((feats[:, col] >= feats[:, col].max()) & (feats[:, col] > 0)).astype(np.float32) for col in (2, 3, 5)
    ) / 3.0
    return _Scored(cands, feats, best_rows)


def _lead(values: np.ndarray) -> np.ndarray:
    """Each value minus the best of the others (the value itself when it is alone)."""
    if len(values) < 2:
        return values.copy()
    top2 = np.sort(values)[-2:]
    best_other = np.where(values >= top2[1], top2[0], top2[1])
    return values - best_other


@dataclass(frozen=True)
class _Lexicon:
    """The classifier's word features: tf-idf of tokenize()'s tokens, L2-normalised, times `weight`."""

    vocab: dict[str, int]
    idf: np.ndarray
    weight: float

    @classmethod
    def fit(cls, token_lists: list[list[str]], weight: float) -> _Lexicon:
        df = Counter(t for tokens in token_lists for t in set(tokens))
        words = sorted(df)
        n = len(token_lists)
        idf = np.asarray([np.log((1 + n) / (1 + df[w])) + 1.0 for w in words], dtype=np.float32)
        return cls({w: i for i, w in enumerate(words)}, idf, weight)

    def row(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The vocabulary ids of one text's known words and their weights (both empty when it has none)."""
        counts = Counter(self.vocab[t] for t in tokens if t in self.vocab)
        ids = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        v = np.fromiter(counts.values(), dtype=np.float32, count=len(counts)) * self.idf[ids]
        if len(v):
            v *= self.weight / float(np.linalg.norm(v))
        return ids, v

    def matrix(self, token_lists: list[list[str]]) -> Any:
        from scipy.sparse import csr_matrix

        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for i, tokens in enumerate(token_lists):
            ids, v = self.row(tokens)
            rows.extend([i] * len(ids))
            cols.extend(ids.tolist())
            vals.extend(v.tolist())
        return csr_matrix((vals, (rows, cols)), shape=(len(token_lists), len(self.vocab)), dtype=np.float32)


@dataclass(frozen=True)
class _Classifier:
    """A softmax over the articles (by position) plus a last, off-topic class, on the question's vector and,
    with a lexicon, its words: a brand, a payment method or a carrier named in the examples counts even
    where the multilingual encoder blurs it."""

    coef: np.ndarray  # (n_articles + 1, dim)
    intercept: np.ndarray  # (n_articles + 1,)
    lexicon: _Lexicon | None = None
    word_coef: np.ndarray | None = None  # (n_articles + 1, len(lexicon.vocab))

    def probs(self, vectors: np.ndarray, tokens: list[list[str]] | None = None) -> np.ndarray:
        z = np.atleast_2d(vectors) @ self.coef.T + self.intercept
        if self.lexicon is not None and self.word_coef is not None and tokens is not None:
            for i, text_tokens in enumerate(tokens):  # a few columns per text, no sparse matrix
                ids, v = self.lexicon.row(text_tokens)
                z[i] += self.word_coef[:, ids] @ v
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class _ClassifierFit:
    """The classifier fitted on everything, and out-of-fold probabilities for the calibration: each example
    question's (by entry row) and each out-of-domain question's (by position) from a fit that did not see
    it or its translations (`_question_families`), or (off-topic) its group."""

    model: _Classifier
    rows: dict[int, np.ndarray]
    off_topic: np.ndarray


def _fit_softmax(X: np.ndarray, y: np.ndarray, n_classes: int, c: float, lexicon: _Lexicon | None = None,
                 tokens: list[list[str]] | None = None) -> _Classifier:
    from scipy.sparse import csr_matrix, hstack
    from sklearn.linear_model import LogisticRegression

    dim = X.shape[1]
    features: Any = X
    if lexicon is not None and tokens is not None:
        features = hstack([csr_matrix(X), lexicon.matrix(tokens)]).tocsr()
    model = LogisticRegression(C=c, max_iter=1000)
    model.fit(features, y)
    coef = np.zeros((n_classes, features.shape[1]), dtype=np.float32)
    intercept = np.full(n_classes, -30.0, dtype=np.float32)  # a class with no examples is never predicted
    classes = model.classes_.astype(np.int64)
    if len(classes) == 2:  # binary: sklearn keeps one row, for the second class
        coef[classes[1]], intercept[classes[1]] = model.coef_[0] / 2, model.intercept_[0] / 2
        coef[classes[0]], intercept[classes[0]] = -model.coef_[0] / 2, -model.intercept_[0] / 2
    else:
        coef[classes], intercept[classes] = model.coef_, model.intercept_
    if features is X:
        return _Classifier(coef, intercept)
    return _Classifier(np.ascontiguousarray(coef[:, :dim]), intercept, lexicon, np.ascontiguousarray(coef[:, dim:]))


def fit_classifier(index: KBIndex, encoder: Encoder, settings: SearchSettings, folds: int = 5,
                   out_of_fold: bool = True) -> _ClassifierFit | None:
    """Fit the article classifier on the example questions and titles plus the packaged out-of-domain
    questions; None when it is switched off, the KB is too large, or there is nothing to tell apart.
    `out_of_fold=False` skips the cross-validated probabilities (only a calibration needs them)."""
    n_articles = len(index.article_ids)
    if (not settings.classifier or n_articles < 2 or n_articles > settings.classifier_max_articles
            or index.encoder_name != encoder.name or not OUT_OF_DOMAIN_FILE.exists()):
        return None
    rows = np.flatnonzero(index.alive & np.isin(index.entry_kind, (KIND_QUESTION, KIND_TITLE)))
    bank = _out_of_domain(encoder)
    X = np.vstack([index.vectors[rows], bank.vectors])
    y = np.concatenate([index.doc_article[index.entry_doc[rows]], np.full(len(bank.texts), n_articles)])
    n_classes = n_articles + 1
    tokens = [tokenize(_entry_text(index, int(r))) for r in rows] + [tokenize(t) for t in bank.texts]
    lexicon = _Lexicon.fit(tokens, settings.classifier_words) if settings.classifier_words > 0 else None

    def fit(part: np.ndarray | slice) -> _Classifier:
        return _fit_softmax(X[part], y[part], n_classes, settings.classifier_c, lexicon,
                            [tokens[i] for i in np.arange(len(y))[part]])

    if not out_of_fold:
        return _ClassifierFit(fit(slice(None)), {}, np.zeros((0, n_classes)))
    groups = _question_families(index, rows)
    if len(set(groups)) + len(set(bank.groups.tolist())) < folds:
        return None
    # A family's fold follows from its own texts, not from its place among the others: an edit to one article
    # moves no other question to another fold, so the out-of-fold probabilities (and with them the calibrated
    # confidence and its threshold) of the rest of the KB stay as they were.
    family_key: dict[int, int] = {}
    for i, g in enumerate(groups):
        family_key[g] = min(family_key.get(g, 1 << 32), _stable_key(_entry_text(index, int(rows[i]))))
    fold_of = np.asarray([family_key[g] % folds for g in groups]
                         + [_stable_key(f"off-topic {int(g)}") % folds for g in bank.groups], dtype=np.int64)
    out = np.zeros((len(y), n_classes), dtype=np.float32)
    for k in range(folds):
        test = np.flatnonzero(fold_of == k)
        if len(test):
            out[test] = fit(np.flatnonzero(fold_of != k)).probs(X[test], [tokens[i] for i in test])
    model = fit(slice(None))
    return _ClassifierFit(model, {int(r): out[i] for i, r in enumerate(rows)}, out[len(rows):])


def _stable_key(text: str) -> int:
    """A number that depends on the text alone (not on a random draw or on the other entries): what the
    calibration samples and how it splits its folds change only where the KB changed."""
    return zlib.crc32(text.casefold().encode("utf-8"))


def _stable_sample(index: KBIndex, rows: np.ndarray, size: int, salt: str) -> np.ndarray:
    """`size` of `rows`, chosen by their texts (and locales): adding a question leaves the others' choice alone."""
    keys = np.asarray([_stable_key(f"{salt} {index.docs[int(index.entry_doc[r])].locale} {_entry_text(index, int(r))}")
                       for r in rows], dtype=np.int64)
    return np.sort(rows[np.argsort(keys, kind="stable")[:size]])


def _question_families(index: KBIndex, rows: np.ndarray) -> list[int]:
    """A group per example question and its translations, so that a fold never trains on the translation of
    a question it is tested on (a translation is far closer to it than a shopper's own wording): equal texts,
    and mutual nearest questions of two locales of one article, are one family."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    at = {int(r): i for i, r in enumerate(rows)}
    by_text: dict[str, int] = {}
    for i, r in enumerate(rows):
        j = by_text.setdefault(_entry_text(index, int(r)).casefold(), i)
        parent[root(i)] = root(j)
    for docs in index.article_docs:
        questions = []
        for doc in docs:
            start, end = (int(v) for v in index.doc_rows[doc])
            mine = [r for r in range(start, end) if r in at and index.entry_kind[r] == KIND_QUESTION]
            if mine:
                questions.append(np.asarray(mine, dtype=np.int64))
        for a in range(len(questions)):
            for b in range(a + 1, len(questions)):
                sims = index.vectors[questions[a]] @ index.vectors[questions[b]].T
                best_b, best_a = sims.argmax(axis=1), sims.argmax(axis=0)
                for i, j in enumerate(best_b):
                    if best_a[j] == i:
                        parent[root(at[int(questions[a][i])])] = root(at[int(questions[b][j])])
    return [root(i) for i in range(len(rows))]


def _entry_text(index: KBIndex, row: int) -> str:
    doc = int(index.entry_doc[row])
    return index.doc_vectors[doc].texts[row - int(index.doc_rows[doc][0])]


@dataclass(frozen=True)
class _OffTopic:
    """The packaged out-of-domain questions: text, language, group (small talk, jobs, ...) and vector."""

    texts: tuple[str, ...]
    languages: tuple[str, ...]
    groups: np.ndarray
    vectors: np.ndarray


_OOD_CACHE: dict[str, _OffTopic] = {}


def _out_of_domain(encoder: Encoder) -> _OffTopic:
    """The packaged out-of-domain questions (loaded and encoded once per encoder and process)."""
    cached = _OOD_CACHE.get(encoder.name)
    if cached is None:
        from nlu.language import LanguageIdentifier

        data = yaml.safe_load(OUT_OF_DOMAIN_FILE.read_text(encoding="utf-8"))
        texts = tuple(t for group in data["questions"].values() for t in group)
        groups = np.asarray([i for i, group in enumerate(data["questions"].values()) for _ in group], np.int64)
        # Searched in their own language, as a shopper's message is, so language features mean the same.
        identify = LanguageIdentifier()
        languages = tuple(identify.detect(t)[0] for t in texts)
        cached = _OOD_CACHE[encoder.name] = _OffTopic(texts, languages, groups, encoder.encode(list(texts)))
    return cached


_OOD_SECOND_CACHE: dict[tuple[int, str, tuple[str, ...]], dict[int, np.ndarray]] = {}


def _out_of_domain_second(bank: _OffTopic, second: _Second) -> dict[int, np.ndarray]:
    """The second encoder's vectors of the out-of-domain questions in its languages, by position."""
    key = (id(bank), second.encoder.name, second.languages)
    cached = _OOD_SECOND_CACHE.get(key)
    if cached is None:
        mine = [i for i, lang in enumerate(bank.languages) if lang in second.languages]
        vectors = second.encoder.encode([bank.texts[i] for i in mine]) if mine else np.zeros((0, 1), np.float32)
        cached = _OOD_SECOND_CACHE[key] = {i: vectors[j] for j, i in enumerate(mine)}
    return cached


def _off_topic_vectors(index: KBIndex, encoder: Encoder) -> np.ndarray | None:
    if index.encoder_name != encoder.name or not OUT_OF_DOMAIN_FILE.exists():
        return None
    return _out_of_domain(encoder).vectors


@dataclass(frozen=True)
class CalibrationSet:
    """What the confidence is fitted on: the top candidate's features of leave-one-out searches of the
    example questions, then of the out-of-domain questions (always wrong), with sample weights."""

    features: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    n_off_topic: int
    articles: np.ndarray  # the article (position) each answerable sample searched for
    n_uncovered: int = 0  # between the answerable and the off-topic samples: searches with the article hidden

    @property
    def n_answerable(self) -> int:
        return len(self.labels) - self.n_off_topic - self.n_uncovered


def calibration_data(
    index: KBIndex, encoder: Encoder, settings: SearchSettings, seed: int = 7, second: _Second | None = None,
    classifier: _ClassifierFit | None = None,
) -> CalibrationSet:
    """Leave-one-out searches of the example questions plus the out-of-domain questions, weighted so that
    every article counts the same however many questions and translations it has, and the out-of-domain
    questions make up `settings.off_topic_share` of the total: the fit does not depend on the mix.

    With `second`, only the questions (and out-of-domain questions) in the second encoder's languages,
    scored with both encoders as a shopper's question in those languages is: that case gets its own fit.
    With `classifier`, a question's classifier probabilities are the out-of-fold ones (a fit that did not
    see it)."""
    rows = np.flatnonzero(index.alive & (index.entry_kind == KIND_QUESTION))
    if len(rows) > settings.max_calibration_questions:
        rows = _stable_sample(index, rows, settings.max_calibration_questions, f"calibration {seed}")
    X: list[np.ndarray] = []
    y: list[int] = []
    sample_article: list[int] = []
    source = _source_locale(index)
    question_rows = np.flatnonzero(index.alive & (index.entry_kind == KIND_QUESTION))
    question_article = index.doc_article[index.entry_doc[question_rows]]
    off_topic = _off_topic_vectors(index, encoder)
    setup: dict[int, tuple[list[str], tuple[_Second, np.ndarray] | None, np.ndarray | None]] = {}

    def prepared(row: int) -> tuple[list[str], tuple[_Second, np.ndarray] | None, np.ndarray | None]:
        """An example question's tokens, second-encoder vector and out-of-fold classifier probabilities."""
        if row not in setup:
            setup[row] = (tokenize(_entry_text(index, row)),
                          (second, second.vectors[row]) if second is not None else None,
                          classifier.rows.get(row) if classifier is not None else None)
        return setup[row]

    for row in rows:
        doc = int(index.entry_doc[row])
        if second is not None and not second.has[row]:
            continue
        held_out = _held_out(index, int(row), question_rows, question_article, settings)
        tokens, both, probs = prepared(int(row))
        scored = _score(index, index.vectors[row], tokens, exclude_rows=held_out,
                        k_entries=settings.k_entries, max_candidates=settings.max_candidates,
                        locale=index.docs[doc].locale, off_topic=off_topic, second=both, classifier=probs)
        if len(scored.articles) == 0:
            continue
        X.append(scored.features[0])
        y.append(int(scored.articles[0] == index.doc_article[doc]))
        sample_article.append(int(index.doc_article[doc]))
        if len(index.article_docs[index.doc_article[doc]]) > 1 and index.docs[doc].locale != source:
            # Also as if this translation did not exist: most shoppers' languages have no translation of
            # most articles, so cross-language matches must be calibrated too.
            scored = _score(index, index.vectors[row], tokens, exclude_doc=doc, exclude_rows=held_out,
                            k_entries=settings.k_entries, max_candidates=settings.max_candidates,
                            locale=index.docs[doc].locale, off_topic=off_topic, second=both,
                            classifier=probs)
            if len(scored.articles):
                X.append(scored.features[0])
                y.append(int(scored.articles[0] == index.doc_article[doc]))
                sample_article.append(int(index.doc_article[doc]))
    n_answerable = len(y)
    uncovered_article: list[int] = []
    if settings.uncovered_share > 0 and settings.max_uncovered_questions > 0 and len(index.article_ids) > 2:
        picked = rows
        if len(rows) > settings.max_uncovered_questions:
            picked = _stable_sample(index, rows, settings.max_uncovered_questions, f"hidden {seed}")
        for row in picked:
            doc = int(index.entry_doc[row])
            pos = int(index.doc_article[doc])
            if second is not None and not second.has[row]:
                continue
            # The article is hidden in every language: what is left is the closest article that does not
            # answer the question, and the classifier's probabilities as if it had no class for it.
            hidden = np.concatenate([np.arange(*index.doc_rows[d]) for d in index.article_docs[pos]])
            tokens, both, probs = prepared(int(row))
            scored = _score(index, index.vectors[row], tokens, exclude_rows=hidden,
                            k_entries=settings.k_entries, max_candidates=settings.max_candidates,
                            locale=index.docs[doc].locale, off_topic=off_topic, second=both,
                            classifier=_without_class(probs, pos) if probs is not None else None)
            if len(scored.articles):
                X.append(scored.features[0])
                y.append(0)
                uncovered_article.append(pos)
    n_uncovered = len(y) - n_answerable
    if index.encoder_name == encoder.name and OUT_OF_DOMAIN_FILE.exists():
        bank = _out_of_domain(encoder)
        bank_second = _out_of_domain_second(bank, second) if second is not None else {}
        for i, (text, language, group, vec) in enumerate(
            zip(bank.texts, bank.languages, bank.groups, bank.vectors, strict=True)
        ):
            if second is not None and i not in bank_second:
                continue
            # Its own group (and so its translations) hidden: a shopper's off-topic question is rarely one
            # the package lists, so it must be calibrated as a new kind of off-topic question.
            scored = _score(index, vec, tokenize(text), k_entries=settings.k_entries,
                            max_candidates=settings.max_candidates, locale=language,
                            off_topic=bank.vectors[bank.groups != group] if off_topic is not None else None,
                            second=(second, bank_second[i]) if second is not None else None,
                            classifier=classifier.off_topic[i] if classifier is not None else None)
            if len(scored.articles):
                X.append(scored.features[0])
                y.append(0)
    features = np.vstack(X) if X else np.zeros((0, len(FEATURES)), np.float32)
    n_off_topic = len(y) - n_answerable - n_uncovered
    articles = np.asarray(sample_article, dtype=np.int64)
    weights = np.ones(len(y), dtype=np.float64)
    if n_answerable:
        counts = np.bincount(articles)
        weights[:n_answerable] = 1.0 / counts[articles]
        weights[:n_answerable] *= n_answerable / weights[:n_answerable].sum()
        off_share = settings.off_topic_share if n_off_topic else 0.0
        uncovered_share = settings.uncovered_share if n_uncovered else 0.0
        total = n_answerable / (1.0 - off_share - uncovered_share)
        if n_uncovered:
            hidden_articles = np.asarray(uncovered_article, dtype=np.int64)
            part = slice(n_answerable, n_answerable + n_uncovered)
            weights[part] = 1.0 / np.bincount(hidden_articles)[hidden_articles]
            weights[part] *= uncovered_share * total / weights[part].sum()
        if n_off_topic:
            weights[n_answerable + n_uncovered :] = off_share * total / n_off_topic
    return CalibrationSet(features, np.asarray(y, dtype=np.int64), weights, n_off_topic, articles, n_uncovered)


def _without_class(probs: np.ndarray, pos: int) -> np.ndarray:
    """Classifier probabilities renormalised without one article's class, as if that article did not exist."""
    out = probs.copy()
    out[pos] = 0.0
    total = float(out.sum())
    return out / total if total > 0 else out


def _held_out(index: KBIndex, row: int, question_rows: np.ndarray, question_article: np.ndarray,
              settings: SearchSettings) -> np.ndarray:
    """Entries hidden while the example question at `row` is searched: itself, its translations (the
    closest question of every other locale of the article: a translation would match it far better than
    a shopper's own wording does) and, if set, its closest siblings in any language."""
    doc = int(index.entry_doc[row])
    siblings = question_rows[(question_article == index.doc_article[doc]) & (question_rows != row)]
    sims = index.vectors[siblings] @ index.vectors[row]
    hidden = [row]
    if settings.calibration_leave_translations_out:
        sibling_docs = index.entry_doc[siblings]
        for other in index.article_docs[int(index.doc_article[doc])]:
            mine = np.flatnonzero(sibling_docs == other)
            if other != doc and len(mine):
                hidden.append(int(siblings[mine[np.argmax(sims[mine])]]))
    if settings.calibration_siblings_out:
        hidden.extend(int(r) for r in siblings[np.argsort(-sims)[: settings.calibration_siblings_out]])
    return np.unique(np.asarray(hidden, dtype=np.int64))


def calibrate(index: KBIndex, encoder: Encoder, settings: SearchSettings, seed: int = 7,
              second: _Second | None = None, classifier: _ClassifierFit | None = None) -> Calibration:
    """Fit the confidence on leave-one-out searches of the example questions plus out-of-domain ones."""
    from sklearn.linear_model import LogisticRegression

    data = calibration_data(index, encoder, settings, seed, second, classifier)
    features, labels, weights, n_ood = data.features, data.labels, data.weights, data.n_off_topic
    if len(labels) < 40 or labels.sum() < 20 or (len(labels) - labels.sum()) < 20:
        return Calibration.default()
    mean = np.average(features, axis=0, weights=weights)
    scale = np.sqrt(np.average((features - mean) ** 2, axis=0, weights=weights))
    scale[scale < 1e-6] = 1.0
    model = LogisticRegression(C=1.0, max_iter=500)
    model.fit((features - mean) / scale, labels, sample_weight=weights)
    fitted = Calibration(
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        threshold=0.5,
        stats={},
    )
    conf = fitted.confidence(features)
    threshold = _pick_threshold(conf, labels, weights, settings)
    above = conf >= threshold
    answerable = slice(0, data.n_answerable)
    stats = {
        "fitted": 1.0,
        "classifier": float(classifier is not None),
        "examples": float(len(labels)),
        "positives": float(labels.sum()),
        "loo_top1_accuracy": _weighted_share(labels[answerable] == 1, weights[answerable]),
        "precision_at_threshold": _weighted_share(labels[above] == 1, weights[above]) if above.any() else 1.0,
        "coverage_at_threshold": _weighted_share(above[labels == 1], weights[labels == 1]),
        "out_of_domain_above_threshold": float(above[len(labels) - n_ood :].mean()) if n_ood else 0.0,
        "uncovered_above_threshold": (
            float(above[data.n_answerable : data.n_answerable + data.n_uncovered].mean()) if data.n_uncovered else 0.0
        ),
    }
    return Calibration(fitted.mean, fitted.scale, fitted.coef, fitted.intercept, threshold, stats)


def _source_locale(index: KBIndex) -> str:
    """The most common locale: the one translations are made from."""
    locales = [d.locale for d in index.docs]
    return max(set(locales), key=locales.count) if locales else ""


def _weighted_share(hits: np.ndarray, weights: np.ndarray) -> float:
    total = float(weights.sum())
    return float(weights[hits].sum() / total) if total > 0 else 0.0


def _pick_threshold(conf: np.ndarray, labels: np.ndarray, weights: np.ndarray, settings: SearchSettings) -> float:
    """Lowest confidence at which the (weighted) answers at or above it keep the target precision."""
    order = np.argsort(-conf)
    correct = np.cumsum(labels[order] * weights[order])
    precision = correct / np.cumsum(weights[order])
    ok = np.flatnonzero(precision >= settings.target_precision)
    if len(ok) == 0:
        return settings.max_threshold
    # The last prefix that still meets the target; its confidence is the threshold.
    threshold = float(conf[order][ok[-1]])
    return float(min(max(threshold, settings.min_threshold), settings.max_threshold))


@dataclass
class _Loaded:
    index: KBIndex
    calibration: Calibration
    off_topic: np.ndarray | None = None
    # Questions in the second encoder's languages are scored with both encoders and confidence-fitted apart.
    second: _Second | None = None
    second_calibration: Calibration | None = None
    classifier: _Classifier | None = None

    def calibration_for(self, second_used: bool) -> Calibration:
        return self.second_calibration if second_used and self.second_calibration is not None else self.calibration


class KBSearcher:
    """Holds the current index and calibration; `refresh()` swaps in a newer one atomically.

    Searches running during a refresh keep using the index they started with: there is no moment
    in which search fails or sees half of a publish.
    """

    def __init__(
        self,
        kb: KnowledgeBase,
        encoder: Encoder | None = None,
        settings: SearchSettings | None = None,
    ) -> None:
        self.kb = kb
        self.encoder = encoder or load_encoder()
        self.settings = settings or SearchSettings()
        name = self.settings.second_encoder
        self.second_encoder = load_encoder(name) if name and name != self.encoder.name else None
        self._second_cache: _Second | None = None  # the last vectors, kept even while unused (too few to fit)
        self.fallback_locale = kb.source_locale
        self._loaded: _Loaded | None = None
        self._lock = asyncio.Lock()

    @property
    def index(self) -> KBIndex | None:
        return self._loaded.index if self._loaded else None

    @property
    def calibration(self) -> Calibration | None:
        return self._loaded.calibration if self._loaded else None

    @property
    def version(self) -> int:
        """The KB version being served (-1 before the first load)."""
        return self._loaded.index.kb_version if self._loaded else -1

    @property
    def threshold(self) -> float:
        """The threshold of the default confidence model (English has its own with a second encoder)."""
        return self._threshold(self._loaded.calibration if self._loaded else Calibration.default())

    def _threshold(self, calibration: Calibration) -> float:
        return self.settings.threshold if self.settings.threshold is not None else calibration.threshold

    async def refresh(self, force: bool = False) -> bool:
        """Load the newest published KB; re-encodes only changed article versions. True if swapped."""
        async with self._lock:
            kb_version = await self.kb.kb_version()
            if not force and self._loaded is not None and kb_version <= self._loaded.index.kb_version:
                return False
            keys = await self.kb.published_keys()
            previous = self._loaded.index if self._loaded else None
            if previous is not None:
                known = {(dv.key[0], dv.key[1]): dv.key[2] for dv in previous.doc_vectors}
                changed = [(a, loc, v) for (a, loc), v in keys.items() if known.get((a, loc)) != v]
                kept = [previous.docs[i] for i, dv in enumerate(previous.doc_vectors)
                        if keys.get((dv.key[0], dv.key[1])) == dv.key[2]]
                articles = kept + await self.kb.published_articles(changed)
            else:
                articles = await self.kb.published_articles()
            loaded = await asyncio.to_thread(self._build, articles, kb_version, previous)
            if self._loaded is None or force or loaded.index.kb_version >= self._loaded.index.kb_version:
                self._loaded = loaded  # one reference assignment: searches see old or new, never a mix
            log.info(
                "kb index v%s: %d docs, %d re-encoded, %.2fs, threshold %.3f",
                kb_version, loaded.index.size, loaded.index.encoded_docs, loaded.index.build_seconds,
                loaded.calibration.threshold,
            )
            return True

    def use_index(self, index: KBIndex, calibration: Calibration | None = None) -> None:
        """Serve a prebuilt index (benchmarks, offline tools); calibrates it unless given one."""
        # Out-of-fold probabilities only feed a calibration: none is needed when one is given (and no second
        # encoder's calibration is to be fitted).
        folds_needed = calibration is None or self.settings.second_encoder is not None
        fit = fit_classifier(index, self.encoder, self.settings, out_of_fold=folds_needed)
        second, second_calibration = self._second(index, fit)
        self._loaded = _Loaded(index, calibration or calibrate(index, self.encoder, self.settings, classifier=fit),
                               self._off_topic(index), second, second_calibration, fit.model if fit else None)

    def _second(self, index: KBIndex, fit: _ClassifierFit | None,
                old: _Loaded | None = None) -> tuple[_Second | None, Calibration | None]:
        """The second encoder's vectors and their own calibration (refit unless `old` may be kept); none
        when the KB has too few questions in its languages to fit one."""
        if self.second_encoder is None:
            return None, None
        second = _second_vectors(index, self.second_encoder, self.settings, self._second_cache)
        self._second_cache = second
        if old is not None and old.second_calibration is not None:
            return second, old.second_calibration
        fitted = calibrate(index, self.encoder, self.settings, second=second, classifier=fit)
        return (second, fitted) if fitted.stats.get("fitted") == 1.0 else (None, None)

    def _build(self, articles: list[Any], kb_version: int, previous: KBIndex | None) -> _Loaded:
        index = KBIndex.build(
            articles, self.encoder, kb_version, previous=previous, hnsw_min_entries=self.settings.hnsw_min_entries
        )
        old = self._loaded
        small_change = (
            old is not None
            and old.calibration.stats.get("fitted") == 1.0
            and index.encoded_docs <= index.size * self.settings.recalibrate_share
        )
        if small_change and old is not None:
            # Refitting costs seconds on a large KB; one edited article among thousands does not move it. The
            # classifier is refitted all the same (its classes are the articles), without the folds.
            fit = fit_classifier(index, self.encoder, self.settings, out_of_fold=False)
            if old.calibration.stats.get("classifier") == float(fit is not None):
                return _Loaded(index, old.calibration, old.off_topic, *self._second(index, fit, old),
                               fit.model if fit else None)
        fit = fit_classifier(index, self.encoder, self.settings)
        return _Loaded(index, calibrate(index, self.encoder, self.settings, classifier=fit), self._off_topic(index),
                       *self._second(index, fit), fit.model if fit else None)

    def _off_topic(self, index: KBIndex) -> np.ndarray | None:
        return _off_topic_vectors(index, self.encoder)

    def _serve_locale(self, index: KBIndex, pos: int, locale: str | None) -> tuple[int, bool]:
        """Doc to answer from: the shopper's locale, its base language, else the fallback locale."""
        aid = index.article_ids[pos]
        if locale:
            for loc in (locale, _base_language(locale)):
                doc = index.by_key.get((aid, loc))
                if doc is not None:
                    return doc, False
        doc = index.by_key.get((aid, self.fallback_locale))
        if doc is None:
            doc = index.article_docs[pos][0]
        return doc, locale is not None and index.docs[doc].locale.split("-")[0] != locale.split("-")[0]

    def search(self, query: str, locale: str | None = None, k: int = 5) -> SearchResult:
        """Rank articles for a shopper's question; `locale` is the shopper's language (e.g. 'de')."""
        if k < 1:
            raise ValueError("k must be at least 1")
        loaded = self._loaded
        if loaded is None:
            raise RuntimeError("the knowledge base is not loaded yet; call `await searcher.refresh()` first")
        index = loaded.index
        started = time.perf_counter()
        asked = lookup_text(query)  # "I want to know if I can pay by Klarna, can you help?" -> "I can pay by Klarna?"
        qvec = self.encoder.encode([asked])[0]
        q2 = loaded.second.query_vector(asked, locale) if loaded.second is not None else None
        calibration = loaded.calibration_for(q2 is not None)
        threshold = self._threshold(calibration)
        encoded = time.perf_counter()
        tokens = tokenize(asked)
        probs = loaded.classifier.probs(qvec, [tokens])[0] if loaded.classifier is not None else None
        scored = _score(index, qvec, tokens, k_entries=self.settings.k_entries,
                        max_candidates=self.settings.max_candidates, locale=locale, off_topic=loaded.off_topic,
                        classifier=probs,
                        second=(loaded.second, q2) if loaded.second is not None and q2 is not None else None)
        confidences = calibration.confidence(scored.features) if len(scored.articles) else np.zeros(0)
        candidates = []
        for j in range(min(k, len(scored.articles))):
            pos = int(scored.articles[j])
            doc, fallback = self._serve_locale(index, pos, locale)
            served = index.docs[doc]
            row = int(scored.best_row[j])
            candidates.append(
                Candidate(
                    article_id=served.article_id,
                    version=served.version,
                    title=served.title,
                    locale=served.locale,
                    answer=served.body,
                    score=float(scored.features[j, 0]),
                    confidence=float(confidences[j]),
                    fallback_used=fallback,
                    matched=_entry_text(index, row),
                    matched_kind=KIND_NAMES[int(index.entry_kind[row])],
                )
            )
        done = time.perf_counter()
        margin = float(scored.features[0, 1]) if len(scored.articles) > 1 else 1.0
        confident = bool(candidates) and candidates[0].confidence >= threshold
        ambiguous = (
            len(candidates) > 1
            and margin < self.settings.clarify_margin
            and candidates[1].confidence >= threshold / 3
        )
        best = candidates[0] if candidates else None
        return SearchResult(
            query=query,
            locale=locale,
            candidates=candidates,
            confident=confident and not ambiguous,
            threshold=threshold,
            margin=margin,
            served_locale=best.locale if best else None,
            fallback_used=best.fallback_used if best else False,
            kb_version=index.kb_version,
            ambiguous=ambiguous,
            timings_ms={"encode": (encoded - started) * 1000, "rank": (done - encoded) * 1000},
            off_topic=float(probs[-1]) if probs is not None else None,
        )


__all__ = [
    "KIND_CHUNK",
    "KIND_QUESTION",
    "KIND_TITLE",
    "Calibration",
    "Candidate",
    "KBSearcher",
    "SearchResult",
    "SearchSettings",
    "calibrate",
]
