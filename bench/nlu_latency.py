"""Latency of NLUModel.parse for one message (language, encoder, intent, entities, sentiment) and batch throughput.

Uses the demo store's model (trained into var/bench-cache/ when missing or stale) and a mix of
messages in the demo store's languages.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nlu.model import NLUModel, needs_training, train_model  # noqa: E402

MESSAGES = [
    "where is my order ND-100234?", "Wo ist meine Bestellung? Ich warte seit zwei Wochen",
    "¿Cuánto tarda el envío a Alemania?", "je veux annuler ma commande #1043",
    "注文した商品はまだ届きませんか", "我要退货，订单号ND-100871", "ok", "gracias!",
    "my tracking number is 1Z999AA10123456784 and it hasn't moved", "Can I talk to a real person please?",
    "This is ridiculous, I will file a chargeback if I don't get a refund today",
    "please send the invoice to anna.meyer@example.com", "vorrei restituire un articolo",
    "quero mudar o endereço de entrega", "what is your return policy?", "call me at +49 30 1234567",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=600)
    args = parser.parse_args()
    data = ROOT / "examples" / "demo-store" / "data"
    folder = ROOT / "var" / "bench-cache" / "demo-nlu-model"
    if needs_training(data, None, folder):
        train_model(data, None, folder)
    started = time.perf_counter()
    model = NLUModel.load(folder)
    load_ms = (time.perf_counter() - started) * 1000
    model.warm_up()
    for text in MESSAGES:  # first-use costs (spaCy pipelines per language) are not what we measure
        model.parse(text)
    single: list[float] = []
    stages: dict[str, list[float]] = {}
    for i in range(args.runs):
        text = MESSAGES[i % len(MESSAGES)]
        t = time.perf_counter()
        result = model.parse(text)
        single.append((time.perf_counter() - t) * 1000)
        for stage, ms in result.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    batch_texts = [MESSAGES[i % len(MESSAGES)] + f" {i}" for i in range(2000)]
    t = time.perf_counter()
    for start in range(0, len(batch_texts), 64):
        model.parse_batch(batch_texts[start : start + 64])
    throughput = len(batch_texts) / (time.perf_counter() - t)
    report = {
        "benchmark": "nlu_parse_latency",
        "encoder": model.config.encoder,
        "targets": {"p50_ms": 20, "p99_ms": 50, "batch_messages_per_second": 300},
        "load_ms": round(load_ms, 1),
        "single_p50_ms": round(statistics.median(single), 2),
        "single_p99_ms": round(percentile(single, 0.99), 2),
        "single_mean_ms": round(statistics.fmean(single), 2),
        "stage_p50_ms": {k: round(statistics.median(v), 3) for k, v in stages.items()},
        "batch_messages_per_second": round(throughput, 1),
        "runs": args.runs,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    print(f"parse p50 {report['single_p50_ms']} ms, p99 {report['single_p99_ms']} ms, "
          f"batch {report['batch_messages_per_second']} msg/s, load {report['load_ms']} ms; stages {report['stage_p50_ms']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
