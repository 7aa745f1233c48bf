"""Embedding cache for the NLU benchmarks: encode eval data once, keep it under var/bench-cache/.

The time it took to encode each split from scratch is stored next to the vectors, so a
rerun can still report honest training time (encoding included) without re-encoding.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from nlu.entities import IdentifierMask

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench-cache"
EVAL = ROOT.parent / "shared" / "eval"
_MASK = IdentifierMask()


def cached_embeddings(encoder_name: str, split: str, texts: list[str]) -> tuple[np.ndarray, float, bool]:
    """Vectors for `texts` as the NLU reads them (identifiers masked, NLUConfig's default), the seconds encoding
    took when first computed, and whether it was cached."""
    texts = [_MASK(t) for t in texts]
    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:12]
    stem = CACHE / f"{encoder_name.replace('+', '__')}-{split}-{digest}"
    npy, meta = stem.with_suffix(".npy"), stem.with_suffix(".json")
    if "+" in encoder_name and not npy.exists():
        # A combination is the re-normalised concatenation of its parts: reuse their caches.
        parts, seconds = [], 0.0
        for part in encoder_name.split("+"):
            vec, sec, _ = cached_embeddings(part, split, texts)
            parts.append(vec)
            seconds += sec
        joined = np.hstack(parts)
        joined /= np.linalg.norm(joined, axis=1, keepdims=True)
        return joined.astype(np.float32), seconds, True
    if npy.exists() and meta.exists():
        return np.load(npy), float(json.loads(meta.read_text())["seconds"]), True
    from nlu.encoders import load_encoder

    encoder = load_encoder(encoder_name)
    started = time.perf_counter()
    vectors = encoder.encode(texts)
    seconds = time.perf_counter() - started
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(npy, vectors)
    meta.write_text(json.dumps({"seconds": seconds, "n": len(texts), "encoder": encoder_name}))
    return vectors, seconds, False


def load_clinc() -> dict[str, list[list[str]]]:
    return json.loads((EVAL / "clinc150" / "data_full.json").read_text())


def load_xsid(lang: str) -> tuple[list[str], list[str]]:
    """(texts, intents) of one xSID file; `# text` and `# intent` may come in either order per block."""
    texts, intents = [], []
    raw = (EVAL / "xsid-valid" / f"{lang}.valid.conll").read_text(encoding="utf-8")
    for block in raw.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            for key in ("text", "intent"):
                if line.startswith(f"# {key} = "):
                    fields[key] = line[len(f"# {key} = ") :].strip()
        if "text" in fields and "intent" in fields:
            texts.append(fields["text"])
            intents.append(fields["intent"])
    return texts, intents


if __name__ == "__main__":
    import sys

    data = load_clinc()
    for name in sys.argv[1:]:
        for split in ("train", "val", "oos_val", "test", "oos_test"):
            vec, sec, hit = cached_embeddings(name, split, [t for t, _ in data[split]])
            print(name, split, vec.shape, f"{sec:.1f}s", "cached" if hit else "encoded", flush=True)
        for lang in sorted(p.name.split(".")[0] for p in (EVAL / "xsid-valid").glob("*.valid.conll")):
            texts, _ = load_xsid(lang)
            vec, sec, hit = cached_embeddings(name, f"xsid-{lang}", texts)
            print(name, f"xsid-{lang}", vec.shape, f"{sec:.1f}s", flush=True)
