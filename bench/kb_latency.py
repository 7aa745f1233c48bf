"""Knowledge-base search latency at scale: generates N articles (default 10,000), builds the index,
and measures build time, memory, incremental-publish time and p50/p99 search latency per query
(encoding the query included).

    python bench/kb_latency.py --out bench/results/kb_latency.json

Article vectors are cached on disk (var/bench-cache) so a rerun skips the slow first encoding;
the JSON says how many texts were encoded in this run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from knowledge_base.index import KBIndex  # noqa: E402
from knowledge_base.search import KBSearcher, SearchSettings, calibrate, fit_classifier  # noqa: E402
from knowledge_base.service import PublishedArticle  # noqa: E402
from nlu.encoders import Encoder, load_encoder  # noqa: E402

PRODUCTS = """sofa armchair footstool bookshelf sideboard dining-table coffee-table desk bed-frame nightstand wardrobe
dresser mirror floor-lamp table-lamp pendant-light rug runner curtain blind cushion throw blanket duvet pillow
sheet towel bath-mat vase planter candle-holder mug plate bowl teapot serving-tray cutlery glassware storage-basket
coat-rack shoe-cabinet clock picture-frame wall-shelf bar-stool bench ottoman""".split()
MATERIALS = """oak walnut ash teak rattan bamboo linen cotton wool jute velvet boucle ceramic stoneware glass brass
steel""".split()
TOPICS = {
    "assembly": ("How do I assemble the {p}?", "Assembly of the {m} {p} takes about {n} minutes with the included tools."),
    "dimensions": ("What are the dimensions of the {m} {p}?", "The {m} {p} measures {n} x {k} cm and weighs {w} kg."),
    "care": ("How do I clean the {m} {p}?", "Clean the {m} {p} with a dry cloth; avoid water on {m}."),
    "stock": ("When is the {m} {p} back in stock?", "The {m} {p} (SKU {sku}) is restocked every {n} weeks."),
    "warranty": ("Is the {m} {p} covered by warranty?", "The {m} {p} has a {k}-month warranty against defects."),
    "colours": ("Which colours does the {m} {p} come in?", "The {m} {p} comes in {n} colours including sand and moss."),
    "shipping": ("Can the {m} {p} ship to Japan?", "The {m} {p} ships to Japan in {n}-{k} business days."),
    "parts": ("Can I buy spare parts for the {m} {p}?", "Spare parts for the {m} {p} (SKU {sku}) cost from USD {n}."),
}
QUESTION_VARIANTS = ["Tell me about {t} for the {m} {p}", "{p} {m} {t} question"]


def generate_articles(n: int, seed: int = 11) -> list[PublishedArticle]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    topics = list(TOPICS)
    for i in range(n):
        p = rng.choice(PRODUCTS).replace("-", " ")
        m = rng.choice(MATERIALS)
        t = topics[i % len(topics)]
        question, body = TOPICS[t]
        values = {"p": p, "m": m, "n": rng.randint(2, 90), "k": rng.randint(3, 40), "w": rng.randint(1, 80),
                  "sku": f"ND-{rng.randint(10000, 99999)}-{i}", "t": t}
        questions = (question.format(**values), *(v.format(**values) for v in QUESTION_VARIANTS))
        title = f"{m.title()} {p}: {t} (#{i})"
        text = body.format(**values) + f"\n\nArticle {i} for the {m} {p} collection, item code {values['sku']}."
        out.append(
            PublishedArticle(
                article_id=f"a{i:05d}", locale="en", version=1, title=title, body=text, questions=questions,
                tags=(t,), author="bench", created_at=now, kb_version=1,
            )
        )
    return out


class CachedEncoder:
    """Wraps the shared encoder with an on-disk vector cache (by text hash) for reruns of the bench."""

    def __init__(self, inner: Encoder, folder: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.folder = folder
        self.encoded = 0
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{inner.name}.npz"
        self.cache: dict[str, np.ndarray] = {}
        if self.path.exists():
            data = np.load(self.path)
            self.cache = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def encode(self, texts: list[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self.cache}.items())
        if missing:
            vectors = self.inner.encode([t for _, t in missing])
            self.encoded += len(missing)
            for (k, _), v in zip(missing, vectors, strict=True):
                self.cache[k] = v
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.vstack([self.cache[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        keys = np.asarray(list(self.cache))
        np.savez(self.path, keys=keys, vectors=np.vstack(list(self.cache.values())))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def classifier_cost(articles: list[PublishedArticle], encoder: CachedEncoder,
                    settings: SearchSettings) -> dict[str, Any]:
    """Seconds to fit the article classifier on the largest KB it is fitted for (the first
    `classifier_max_articles` articles): with the calibration's cross-validation folds, as an index
    build does, and alone, as a publish that keeps the calibration does."""
    size = settings.classifier_max_articles
    index = KBIndex.build(articles[:size], encoder, kb_version=1, hnsw_min_entries=settings.hnsw_min_entries)
    started = time.perf_counter()
    with_folds = fit_classifier(index, encoder.inner, settings)
    folds_seconds = time.perf_counter() - started
    started = time.perf_counter()
    fit_classifier(index, encoder.inner, settings, out_of_fold=False)
    refit_seconds = time.perf_counter() - started
    return {"max_articles": size, "articles": len(index.article_ids), "fitted": with_folds is not None,
            "fit_with_folds_seconds": round(folds_seconds, 2), "refit_seconds": round(refit_seconds, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "bench-cache")
    args = parser.parse_args()

    articles = generate_articles(args.articles)
    encoder = CachedEncoder(load_encoder(), args.cache)
    settings = SearchSettings()
    rss_before = rss_mb()
    started = time.perf_counter()
    index = KBIndex.build(articles, encoder, kb_version=1, hnsw_min_entries=settings.hnsw_min_entries)
    build_seconds = time.perf_counter() - started
    encoder.save()
    encoded_first = encoder.encoded
    started = time.perf_counter()
    calibration = calibrate(index, encoder.inner, settings)
    calibrate_seconds = time.perf_counter() - started
    rss_after = rss_mb()

    # One article edited and published: only it is re-encoded, the rest reuses the previous index.
    third = len(articles) // 3
    edited = replace(articles[third], version=2, body=articles[third].body + "\n\nNow also in moss green.")
    started = time.perf_counter()
    encoder.encoded = 0
    index2 = KBIndex.build([*articles[:third], edited, *articles[third + 1 :]], encoder, kb_version=2,
                           previous=index, hnsw_min_entries=settings.hnsw_min_entries)
    incremental_seconds = time.perf_counter() - started

    class _NoDatabase:  # the bench measures search, not storage
        source_locale = "en"

    searcher = KBSearcher(_NoDatabase(), encoder=encoder.inner, settings=settings)  # type: ignore[arg-type]
    searcher.use_index(index2, calibration)

    rng = random.Random(5)
    shop_queries = [q["q"] for q in yaml.safe_load(
        (ROOT / "bench" / "data" / "kb_queries.yml").read_text(encoding="utf-8"))["queries"]]
    generated = [
        f"{rng.choice(['how do I', 'can I', 'wie kann ich', 'comment', 'どうやって'])} "
        f"{rng.choice(['clean', 'assemble', 'return', 'buy parts for'])} the {rng.choice(MATERIALS)} "
        f"{rng.choice(PRODUCTS).replace('-', ' ')} {rng.randint(1, 999)}"
        for _ in range(args.queries)
    ]
    queries = (shop_queries + generated)[: args.queries]
    for q in queries[:20]:  # warm-up
        searcher.search(q, "en")
    latencies: list[float] = []
    cpu_ms: list[float] = []
    encode_ms: list[float] = []
    load_before = os.getloadavg()[0]
    for q in queries:
        t0 = time.perf_counter()
        c0 = time.thread_time()
        result = searcher.search(q, "en")
        cpu_ms.append((time.thread_time() - c0) * 1000)
        latencies.append((time.perf_counter() - t0) * 1000)
        encode_ms.append(result.timings_ms["encode"])
    load_after = os.getloadavg()[0]
    classifier = classifier_cost(articles, encoder, settings)
    middle = articles[len(articles) // 2]
    hit = searcher.search("item code " + middle.body.split("item code ")[1].rstrip("."), "en")

    result_json: dict[str, Any] = {
        "articles": len(articles),
        "index_entries": int(index.stats["entries"]),
        "index_kind": index.kind_label,
        "encoder": encoder.name,
        "texts_encoded_this_run": encoded_first,
        "index_build_seconds": round(build_seconds, 2),
        "encode_seconds": round(index.stats["encode_seconds"], 2),
        "calibration_seconds": round(calibrate_seconds, 2),
        "incremental_publish_seconds": round(incremental_seconds, 3),
        "incremental_reencoded_docs": index2.encoded_docs,
        "index_memory_mb": round(index.memory_bytes() / 2**20, 1),
        "process_rss_growth_mb": round(rss_after - rss_before, 1),
        "queries": len(latencies),
        "search_ms_p50": round(percentile(latencies, 50), 2),
        "search_ms_p90": round(percentile(latencies, 90), 2),
        "search_ms_p99": round(percentile(latencies, 99), 2),
        "search_ms_max": round(max(latencies), 2),
        "query_encode_ms_p50": round(percentile(encode_ms, 50), 2),
        # CPU time of the searching thread: what the search costs when the 2 cores are not shared.
        "search_cpu_ms_p50": round(percentile(cpu_ms, 50), 2),
        "search_cpu_ms_p99": round(percentile(cpu_ms, 99), 2),
        "load_average_during_queries": round((load_before + load_after) / 2, 2),
        "cpu_cores": os.cpu_count(),
        "sku_lookup_found": hit.best is not None and hit.best.article_id == middle.article_id,
        "target_p99_ms": 15.0,
        "meets_target": percentile(latencies, 99) <= 15.0,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        # The article classifier is fitted only up to settings.classifier_max_articles: its cost at that size.
        "article_classifier": classifier,
    }
    print(
        f"kb_latency: {result_json['articles']} articles, {result_json['index_entries']} entries "
        f"({result_json['index_kind']}), build {result_json['index_build_seconds']}s "
        f"(encoded {encoded_first} texts), calibration {result_json['calibration_seconds']}s, "
        f"memory {result_json['index_memory_mb']} MB index / +{result_json['process_rss_growth_mb']} MB RSS"
    )
    print(
        f"  incremental publish {result_json['incremental_publish_seconds']}s "
        f"({result_json['incremental_reencoded_docs']} re-encoded) | search p50 {result_json['search_ms_p50']} ms, "
        f"p99 {result_json['search_ms_p99']} ms (target <= 15); CPU time p50 {result_json['search_cpu_ms_p50']} ms, "
        f"p99 {result_json['search_cpu_ms_p99']} ms; load average {result_json['load_average_during_queries']} "
        f"on {result_json['cpu_cores']} cores | SKU lookup ok: {result_json['sku_lookup_found']}"
    )
    print(
        f"  article classifier (off above {classifier['max_articles']} articles; at that size): fit with its "
        f"calibration folds {classifier['fit_with_folds_seconds']}s, refit after a publish "
        f"{classifier['refit_seconds']}s"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result_json, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
