"""The immutable search index of one knowledge-base version: dense vectors in FAISS plus BM25.

Dense entries are the example questions, the title and the answer chunks of every published
article/locale. BM25 covers title, tags and answer (not the example questions, so leave-one-out
calibration does not see the question it is scoring). A new index reuses the vectors of every
article/locale whose version did not change, so a publish re-encodes only what was edited.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import bm25s
import faiss
import numpy as np

from knowledge_base.service import PublishedArticle
from nlu.encoders import Encoder

KIND_QUESTION, KIND_TITLE, KIND_CHUNK = 0, 1, 2
KIND_NAMES = {KIND_QUESTION: "question", KIND_TITLE: "title", KIND_CHUNK: "answer"}

_TOKEN = re.compile(r"\w+(?:[-_/.]\w+)*")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff66-\uff9f]+")
_MARKDOWN = re.compile(r"[#*_`>|\[\]]+|\(https?://[^)]*\)")
# Very frequent function words of the supported languages; BM25's idf handles the rest.
_STOPWORDS = frozenset(
    """a an the and or of to in on for is are was be do does did i you my me we our your it this that
    with at by from as can how what when where which who why will would there their them have has
    der die das und oder ist sind ein eine einen ich du sie wir mein meine ihr zu im in am an auf fur für
    von mit bei wie was wann wo kann können habe hat nicht es
    el la los las un una y o de del en por para es son mi mis tu su que como cuando donde puedo se
    le les des et ou est sont je tu il nous vous mon ma mes ton votre du au aux pour par avec comment quand
    o os as um uma e do da dos das em no na meu minha que como quando posso
    il lo gli di che per con come quando dove posso sono mio""".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; hyphenated codes (SKUs, order numbers) kept whole and in parts;
    Chinese/Japanese/Korean runs as character bigrams because they have no spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    tokens: list[str] = []
    for run in _CJK.findall(text):
        if len(run) == 1:
            tokens.append(run)
        else:
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    text = _CJK.sub(" ", text)
    for match in _TOKEN.findall(text):
        if match in _STOPWORDS or (len(match) < 2 and not match.isdigit()):
            continue
        tokens.append(match)
        if any(sep in match for sep in "-_/."):
            tokens.extend(p for p in re.split(r"[-_/.]", match) if len(p) > 1 and p not in _STOPWORDS)
    return tokens


def answer_chunks(body: str, max_chars: int = 360, max_chunks: int = 6) -> list[str]:
    """Paragraph-sized pieces of an answer for the dense index (Markdown markup removed)."""
    paragraphs = [_MARKDOWN.sub(" ", p) for p in re.split(r"\n\s*\n", body)]
    paragraphs = [" ".join(p.split()) for p in paragraphs]
    chunks: list[str] = []
    current = ""
    for para in paragraphs:
        if not para:
            continue
        if current and len(current) + len(para) + 1 > max_chars:
            chunks.append(current)
            current = ""
        current = f"{current} {para}".strip()
        while len(current) > max_chars * 1.5:
            cut = current.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            chunks.append(current[:cut])
            current = current[cut:].strip()
    if current:
        chunks.append(current)
    return chunks[:max_chunks]


@dataclass(frozen=True)
class DocVectors:
    """The encoded entries of one article/locale version (reused by later indexes while unchanged)."""

    key: tuple[str, str, int]
    kinds: np.ndarray  # uint8 (n,)
    texts: tuple[str, ...]
    tokens: tuple[str, ...]


def doc_texts(article: PublishedArticle) -> tuple[list[str], list[int]]:
    texts: list[str] = []
    kinds: list[int] = []
    for q in article.questions:
        texts.append(q)
        kinds.append(KIND_QUESTION)
    texts.append(article.title)
    kinds.append(KIND_TITLE)
    for chunk in answer_chunks(article.body):
        texts.append(chunk)
        kinds.append(KIND_CHUNK)
    return texts, kinds


def encode_docs(
    articles: Sequence[PublishedArticle], encoder: Encoder
) -> list[tuple[DocVectors, np.ndarray]]:
    """Encode the entries of several articles in one batch (the slow part of any build)."""
    all_texts: list[str] = []
    spans = []
    kinds_per: list[list[int]] = []
    for article in articles:
        texts, kinds = doc_texts(article)
        spans.append((len(all_texts), len(all_texts) + len(texts)))
        all_texts.extend(texts)
        kinds_per.append(kinds)
    vectors = encoder.encode(all_texts) if all_texts else np.zeros((0, encoder.dim), np.float32)
    out = []
    for article, (start, end), kinds in zip(articles, spans, kinds_per, strict=True):
        lexical = " ".join([article.title, " ".join(article.tags), article.body])
        doc = DocVectors(
            key=(article.article_id, article.locale, article.version),
            kinds=np.asarray(kinds, dtype=np.uint8),
            texts=tuple(all_texts[start:end]),
            tokens=tuple(tokenize(lexical)),
        )
        out.append((doc, np.ascontiguousarray(vectors[start:end], dtype=np.float32)))
    return out


def is_code(token: str) -> bool:
    """SKUs, order numbers, tax ids (ND-12345, IM1560001234, 123456): 5+ characters, 3+ digits, and not a
    short plain number (years, prices)."""
    digits = sum(c.isdigit() for c in token)
    return len(token) >= 5 and digits >= 3 and (not token.isdigit() or len(token) >= 6)


def _code_postings(doc_vectors: list[DocVectors]) -> dict[str, list[int]]:
    postings: dict[str, list[int]] = {}
    for i, dv in enumerate(doc_vectors):
        for token in set(dv.tokens):
            if is_code(token):
                postings.setdefault(token, []).append(i)
    return postings


def _most_common_language(articles: Sequence[PublishedArticle]) -> str:
    languages = [a.locale.split("-")[0].split("_")[0] for a in articles]
    return max(sorted(set(languages)), key=languages.count) if languages else ""


def _storage_view(index: faiss.Index, dim: int) -> np.ndarray:
    """A numpy view of the vectors FAISS stores (no second copy in memory)."""
    flat = faiss.downcast_index(index.storage) if isinstance(index, faiss.IndexHNSWFlat) else index
    n = flat.ntotal
    if n == 0:
        return np.zeros((0, dim), dtype=np.float32)
    return faiss.rev_swig_ptr(flat.get_xb(), n * dim).reshape(n, dim)  # type: ignore[attr-defined]


@dataclass
class KBIndex:
    """Everything one search needs, for one KB version. Never mutated after `build`."""

    kb_version: int
    encoder_name: str
    dim: int
    docs: list[PublishedArticle]
    doc_vectors: list[DocVectors]
    article_ids: list[str]
    doc_article: np.ndarray  # int32 (n_docs,) -> index in article_ids
    doc_rows: np.ndarray  # int64 (n_docs, 2) start/end rows in the FAISS index
    article_docs: list[list[int]]
    article_start: np.ndarray  # int64 (n_articles,) first doc of each article (docs are sorted by article)
    entry_doc: np.ndarray  # int32 (n_entries,)
    entry_kind: np.ndarray  # uint8 (n_entries,)
    alive: np.ndarray  # bool (n_entries,), False for entries of replaced versions (HNSW appends)
    faiss_index: faiss.Index
    vectors: np.ndarray
    bm25: bm25s.BM25 | None
    bm25_vocab: dict[str, int]
    bm25_doc_ids: np.ndarray  # BM25 row -> doc index
    by_key: dict[tuple[str, str], int]  # (article, locale) -> doc index
    doc_lang: np.ndarray  # str (n_docs,) base language of each doc, e.g. 'de' for 'de-AT'
    codes: dict[str, list[int]]  # code-like token (SKU, order or tax number) -> docs containing it
    kind_label: str
    # The base language most articles are written in (what translations are made from).
    source_lang: str = ""
    build_seconds: float = 0.0
    encoded_docs: int = 0
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.docs)

    @classmethod
    def build(
        cls,
        articles: Iterable[PublishedArticle],
        encoder: Encoder,
        kb_version: int,
        previous: KBIndex | None = None,
        hnsw_min_entries: int = 20_000,
        hnsw_m: int = 32,
        ef_search: int = 96,
    ) -> KBIndex:
        """Build the index of `articles`, reusing `previous`'s vectors for unchanged versions."""
        started = time.perf_counter()
        articles = sorted(articles, key=lambda a: (a.article_id, a.locale))
        reuse: dict[tuple[str, str, int], int] = {}
        if previous is not None and previous.encoder_name == encoder.name:
            reuse = {dv.key: i for i, dv in enumerate(previous.doc_vectors)}
        todo = [a for a in articles if (a.article_id, a.locale, a.version) not in reuse]
        fresh = {dv.key: (dv, vecs) for dv, vecs in encode_docs(todo, encoder)}
        encode_seconds = time.perf_counter() - started

        def vectors_of(key: tuple[str, str, int]) -> np.ndarray:
            if key in fresh:
                return fresh[key][1]
            assert previous is not None
            start, end = previous.doc_rows[reuse[key]]
            return previous.vectors[start:end]

        keys = [(a.article_id, a.locale, a.version) for a in articles]
        doc_vectors = [fresh[k][0] if k in fresh else previous.doc_vectors[reuse[k]] for k in keys]  # type: ignore[union-attr]

        article_ids = sorted({a.article_id for a in articles})
        article_pos = {aid: i for i, aid in enumerate(article_ids)}
        doc_article = np.asarray([article_pos[a.article_id] for a in articles], dtype=np.int32)
        article_docs: list[list[int]] = [[] for _ in article_ids]
        for i, a in enumerate(articles):
            article_docs[article_pos[a.article_id]].append(i)
        n_entries = sum(len(dv.kinds) for dv in doc_vectors)
        dim = encoder.dim

        # HNSW past a size where a flat scan gets slow; an incremental publish on HNSW appends the
        # changed entries to a copy of the previous graph and masks the replaced ones.
        use_hnsw = n_entries >= hnsw_min_entries
        doc_rows = np.zeros((len(articles), 2), dtype=np.int64)
        incremental = (
            use_hnsw
            and previous is not None
            and isinstance(previous.faiss_index, faiss.IndexHNSWFlat)
            and len(fresh) <= max(1, len(articles) // 20)
            and (~previous.alive).sum() < len(previous.alive) * 0.2
        )
        if incremental and previous is not None:
            index = faiss.clone_index(previous.faiss_index)
            old_rows = {previous.doc_vectors[i].key: previous.doc_rows[i] for i in range(len(previous.docs))}
            alive = np.zeros(previous.faiss_index.ntotal, dtype=bool)
            entry_doc = np.full(previous.faiss_index.ntotal, -1, dtype=np.int32)
            entry_kind = previous.entry_kind.copy()
            new_vecs, new_kinds, new_docs = [], [], []
            next_row = previous.faiss_index.ntotal
            for i, dv in enumerate(doc_vectors):
                if dv.key in old_rows:
                    start, end = old_rows[dv.key]
                    alive[start:end] = True
                    entry_doc[start:end] = i
                    doc_rows[i] = (start, end)
                else:
                    n = len(dv.kinds)
                    doc_rows[i] = (next_row, next_row + n)
                    next_row += n
                    new_vecs.append(vectors_of(dv.key))
                    new_kinds.append(dv.kinds)
                    new_docs.append(np.full(n, i, np.int32))
            if new_vecs:
                index.add(np.vstack(new_vecs))
                alive = np.concatenate([alive, np.ones(sum(len(k) for k in new_kinds), bool)])
                entry_doc = np.concatenate([entry_doc, *new_docs])
                entry_kind = np.concatenate([entry_kind, *new_kinds])
            kind_label = "hnsw"
        else:
            if use_hnsw:
                index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
                index.hnsw.efConstruction = 80
                kind_label = "hnsw"
            else:
                index = faiss.IndexFlatIP(dim)
                kind_label = "flat"
            row = 0
            for i, dv in enumerate(doc_vectors):
                doc_rows[i] = (row, row + len(dv.kinds))
                row += len(dv.kinds)
            if n_entries:
                index.add(np.vstack([vectors_of(k) for k in keys]))
            entry_doc = (
                np.concatenate([np.full(len(dv.kinds), i, np.int32) for i, dv in enumerate(doc_vectors)])
                if doc_vectors
                else np.zeros(0, np.int32)
            )
            entry_kind = np.concatenate([dv.kinds for dv in doc_vectors]) if doc_vectors else np.zeros(0, np.uint8)
            alive = np.ones(n_entries, dtype=bool)
        if isinstance(index, faiss.IndexHNSWFlat):
            index.hnsw.efSearch = ef_search
        vectors = _storage_view(index, dim)

        token_docs = [list(dv.tokens) for dv in doc_vectors]
        bm25: bm25s.BM25 | None = None
        vocab: dict[str, int] = {}
        bm25_doc_ids = np.asarray([i for i, t in enumerate(token_docs) if t], dtype=np.int64)
        if len(bm25_doc_ids):
            bm25 = bm25s.BM25(k1=1.2, b=0.75)
            bm25.index([token_docs[i] for i in bm25_doc_ids], show_progress=False)
            vocab = dict(bm25.vocab_dict)
        by_key = {(a.article_id, a.locale): i for i, a in enumerate(articles)}
        built = cls(
            kb_version=kb_version,
            encoder_name=encoder.name,
            dim=dim,
            docs=articles,
            doc_vectors=doc_vectors,
            article_ids=article_ids,
            doc_article=doc_article,
            doc_rows=doc_rows,
            article_docs=article_docs,
            article_start=np.asarray([docs[0] for docs in article_docs], dtype=np.int64),
            entry_doc=entry_doc,
            entry_kind=entry_kind,
            alive=alive,
            faiss_index=index,
            vectors=vectors,
            bm25=bm25,
            bm25_vocab=vocab,
            bm25_doc_ids=bm25_doc_ids,
            by_key=by_key,
            codes=_code_postings(doc_vectors),
            doc_lang=np.asarray([a.locale.split("-")[0].split("_")[0] for a in articles], dtype=object),
            kind_label=kind_label,
            source_lang=_most_common_language(articles),
            encoded_docs=len(todo),
        )
        built.build_seconds = time.perf_counter() - started
        built.stats = {
            "encode_seconds": encode_seconds,
            "entries": float(len(entry_kind)),
            "live_entries": float(alive.sum()),
            "docs": float(len(articles)),
            "articles": float(len(article_ids)),
            "encoded_docs": float(len(todo)),
        }
        return built

    def memory_bytes(self) -> int:
        """Approximate memory of the vectors, graph and lexical index."""
        total = self.vectors.nbytes
        if isinstance(self.faiss_index, faiss.IndexHNSWFlat):
            total += self.faiss_index.ntotal * self.faiss_index.hnsw.nb_neighbors(0) * 4 * 2  # type: ignore[attr-defined]
        if self.bm25 is not None:
            scores = self.bm25.scores
            total += sum(getattr(scores.get(k), "nbytes", 0) for k in ("data", "indices", "indptr"))
        return int(total)

    def bm25_scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score per doc (zeros when no query token is in the vocabulary)."""
        out = np.zeros(len(self.docs), dtype=np.float32)
        if self.bm25 is None:
            return out
        known = [t for t in tokens if t in self.bm25_vocab]
        if not known:
            return out
        out[self.bm25_doc_ids] = self.bm25.get_scores(known)
        return out
