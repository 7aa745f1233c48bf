"""The words of the training data, to catch short messages that contain none of them.

A sentence encoder places any string somewhere, and a short string of nonsense ("asdfgh", "jjjjj") lands
near the short training examples: greetings, goodbyes, "yes". The classifier then names that intent with
confidence, and the bot says goodbye to a shopper who mashed the keyboard. So a short message is read as an
intent only if one of its words is a word: one of the training data (or a one-letter slip of one, or two
of them run together), or one the multilingual encoder's own word pieces know. Its sentencepiece model
splits a word of its 16 languages into one piece, or into pieces of 3.5 letters on average or more
("▁aw|esome"); keyboard mashing falls apart into short ones ("▁as|d|fgh", "▁q|wert|y"). Longer messages
are left to the classifier: they carry meaning across languages the data does not cover.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

_WORD = re.compile(r"[^\W\d_]+")
# Scripts written without spaces: each character counts as a word.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_REPEATS = re.compile(r"(.)\1+")
FUZZY_MIN = 4  # words this long also match a known word one letter apart (a typo); shorter ones must match exactly
COMPOUND_PART_MIN = 3  # "dankeschön" is "danke" + "schön"
WORD_PIECE_LETTERS = 3.5  # letters per word piece from which a split word counts as a word


def words(text: str) -> list[str]:
    """The words of a text, lower-cased; characters of Chinese, Japanese and Korean one by one."""
    out: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).casefold()):
        if _UNSPACED.search(word):
            out.extend(word)
        else:
            out.append(word)
    return out


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


class Vocabulary:
    """Known words, with a one-deletion index for typos ("thnaks", "helo") and repeated letters ("hellooo")."""

    def __init__(self, known: Iterable[str], pieces: Callable[[str], list[str]] | None = None) -> None:
        self.words = sorted(set(known))
        self._pieces = pieces
        self._known = set(self.words)
        self._squeezed = {_REPEATS.sub(r"\1", w) for w in self.words}
        self._deletes: set[str] = set()
        for word in self.words:
            if len(word) >= FUZZY_MIN:
                self._deletes |= _deletes(word)
                self._deletes.add(word)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Vocabulary:
        return cls(w for text in texts for w in words(text))

    def knows(self, word: str) -> bool:
        return self._in_data(word) or self._compound(word) or self._a_word(word)

    def _compound(self, word: str) -> bool:
        return any(word[:i] in self._known and word[i:] in self._known
                   for i in range(COMPOUND_PART_MIN, len(word) - COMPOUND_PART_MIN + 1))

    def _a_word(self, word: str) -> bool:
        if self._pieces is None:
            return False
        pieces = [p.lstrip("\u2581") for p in self._pieces(word)]
        pieces = [p for p in pieces if p]
        return len(pieces) == 1 or (len(pieces) > 1 and len(word) / len(pieces) >= WORD_PIECE_LETTERS)

    def _in_data(self, word: str) -> bool:
        if word in self._known:
            return True
        squeezed = _REPEATS.sub(r"\1", word)
        if len(squeezed) >= 3 and squeezed != word and squeezed in self._squeezed:
            return True
        if len(word) < FUZZY_MIN:
            return False
        # Within one edit: a deletion on either side, or the same position substituted (both sides lose it).
        return word in self._deletes or any(d in self._known or d in self._deletes for d in _deletes(word))

    def unknown_short(self, text: str, max_words: int) -> bool:
        """True for a message of 1 to `max_words` words, none of them known."""
        found = words(text)
        return 0 < len(found) <= max_words and not any(self.knows(w) for w in found)


def symbols(text: str) -> str:
    """The pictographs of a text ("👍", "🙏🏽🙏🏽" -> "🙏"): skin tones and variation selectors dropped, repeats
    squeezed. Punctuation is not one ("?", "...")."""
    found = "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) == "So")
    return _REPEATS.sub(r"\1", found)


def wordless(text: str) -> bool:
    """A message with no word and no number in it: "?", "...", "😡😡😡", "👍"."""
    return not words(text) and not any(ch.isdigit() for ch in text)


def normalise_example(text: str) -> str:
    """A message as the exact-match table keys it: lower-cased, words only ("Bye!" and "bye" are one); a
    message of pictographs only by its pictographs ("👍👍" and "👍" are one)."""
    found = words(text)
    if not found:
        return symbols(text)
    return " ".join(found) if _UNSPACED.search(text) is None else "".join(found)


def exact_examples(examples: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Training example (normalised) -> its intent, for the examples whose normalised text has one intent only."""
    seen: dict[str, set[str]] = {}
    for text, intent in examples:
        key = normalise_example(text)
        if key:
            seen.setdefault(key, set()).add(intent)
    return {key: next(iter(intents)) for key, intents in sorted(seen.items()) if len(intents) == 1}

