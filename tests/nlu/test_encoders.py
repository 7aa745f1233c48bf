"""The multilingual encoder batches single messages that arrive together (concurrent turns)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from nlu.encoders import UseMultilingualEncoder, load_encoder


@pytest.fixture(scope="module")
def encoder() -> UseMultilingualEncoder:
    enc = load_encoder("use-multilingual")
    assert isinstance(enc, UseMultilingualEncoder)
    return enc


def _spy(encoder: UseMultilingualEncoder, monkeypatch: pytest.MonkeyPatch, hold: threading.Event | None = None,
         fail: bool = False) -> list[int]:
    """Record the size of every batch the model encodes; optionally hold the first batch until `hold` is set."""
    sizes: list[int] = []
    real = encoder._encode

    def spying(texts: list[str]) -> np.ndarray:
        sizes.append(len(texts))
        if hold is not None and len(sizes) == 1:
            hold.wait(10)
        if fail:
            raise RuntimeError("model broke")
        return real(texts)

    monkeypatch.setattr(encoder, "_encode", spying)
    return sizes


def _until(condition: Callable[[], bool], failure: str, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.005)


def test_messages_arriving_during_an_encode_go_together_in_the_next_batch(
    encoder: UseMultilingualEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ["Wo ist meine Bestellung?", "how long does shipping to France take", "je veux retourner mon article",
             "注文をキャンセルしたい", "¿Cuánto tarda el envío a México?", "can I pay with PayPal"]
    alone = {t: encoder._encode([t])[0] for t in texts}
    release = threading.Event()
    sizes = _spy(encoder, monkeypatch, hold=release)
    results: dict[str, np.ndarray] = {}

    def ask(text: str) -> None:
        results[text] = encoder.encode([text])[0]

    first = threading.Thread(target=ask, args=(texts[0],))
    first.start()
    _until(lambda: bool(sizes), "the first message never reached the model")  # it is held there
    others = [threading.Thread(target=ask, args=(t,)) for t in texts[1:]]
    for t in others:
        t.start()
    _until(lambda: len(encoder._waiting) == len(others), "the other messages did not queue behind it")
    release.set()
    for t in [first, *others]:
        t.join(10)
    # One batch for the first message, one for the five that waited: not six encodes.
    assert sizes == [1, 5]
    for text in texts:
        np.testing.assert_allclose(results[text], alone[text], atol=1e-5)


def test_an_encoder_failure_reaches_every_waiting_message(
    encoder: UseMultilingualEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    _spy(encoder, monkeypatch, fail=True)
    errors: list[BaseException] = []

    def ask(text: str) -> None:
        try:
            encoder.encode([text])
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(f"question number {i} about my parcel",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 4
    assert not encoder._waiting and not encoder._leader
