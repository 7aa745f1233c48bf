"""Sentiment/urgency precision and recall per label on a held-apart multilingual set (bench/data/sentiment_heldout.yml)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from nlu.encoders import load_encoder  # noqa: E402
from nlu.sentiment import SentimentClassifier, load_examples  # noqa: E402
from nlu.types import SENTIMENT_LABELS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    encoder = load_encoder("use-multilingual")
    train = load_examples()
    clf = SentimentClassifier().fit(
        [t for t, _, _ in train], encoder.encode([t for t, _, _ in train]), [labels for _, labels, _ in train]
    )
    raw = yaml.safe_load((ROOT / "bench" / "data" / "sentiment_heldout.yml").read_text(encoding="utf-8"))
    test = [(text, frozenset() if key == "neutral" else frozenset(key.split("+")), lang)
            for lang, groups in raw.items() for key, texts in groups.items() for text in texts]
    train_texts = {t for t, _, _ in train}
    overlap = [t for t, _, _ in test if t in train_texts]
    predictions = clf.predict([t for t, _, _ in test], encoder.encode([t for t, _, _ in test]))
    per_label = {}
    for label in SENTIMENT_LABELS:
        tp = sum(label in p.labels and label in gold for p, (_, gold, _) in zip(predictions, test, strict=True))
        n_pred = sum(label in p.labels for p in predictions)
        n_gold = sum(label in gold for _, gold, _ in test)
        per_label[label] = {"precision": round(tp / n_pred, 3) if n_pred else None,
                            "recall": round(tp / n_gold, 3) if n_gold else None, "support": n_gold}
    neutral_false_alarms = sum(bool(p.labels) for p, (_, gold, _) in zip(predictions, test, strict=True) if not gold)
    report = {
        "benchmark": "sentiment_heldout",
        "train_examples": len(train),
        "test_examples": len(test),
        "test_languages": sorted(raw),
        "texts_also_in_training": overlap,
        "per_label": per_label,
        "neutral_messages_flagged": neutral_false_alarms,
        "neutral_messages": sum(1 for _, gold, _ in test if not gold),
        "thresholds": clf.thresholds,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    for label, row in per_label.items():
        print(f"{label:7s} precision {row['precision']} recall {row['recall']} (n={row['support']})")
    print(f"neutral flagged: {neutral_false_alarms}/{report['neutral_messages']}; overlap with training: {len(overlap)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
