"""The words of the training data, to catch short messages that contain none of them.

A sentence encoder places any string somewhere, and a short string of nonsense ("asdfgh", "jjjjj") lands
near the short training examples: greetings, goodbyes, "yes". The classifier then names that intent with
confidence, and the bot says goodbye to a shopper who mashed the keyboard. So a short message is read as an
intent only if one of its words is a word: one of the training data (or a one-letter slip of one, or two
of them run together), or one the multilingual encoder's own word pieces know. Its sentencepiece model
splits a word of its 16 languages into one piece, or into pieces of 3.5 letters on average or more
("▁aw|esome"); keyboard mashing falls apart into short ones ("▁as|d|fgh", "▁q|wert|y"). Longer messages
are left to the classifier: they carry meaning across languages the data does not cover.

It also mends typing slips (`Vocabulary.correct`): "wher is my ordr" or "can i retrun this" reads as nothing
the shop was trained on, and the NLU reads a message with slips again with each slipped word replaced by the
training word one slip away (and, in English, chat shorthand spelt out).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

_WORD = re.compile(r"[^\W\d_]+")
# Scripts written without spaces: each character counts as a word.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_REPEATS = re.compile(r"(.)\1+")
FUZZY_MIN = 4  # words this long also match a known word one letter apart (a typo); shorter ones must match exactly
COMPOUND_PART_MIN = 3  # "dankeschön" is "danke" + "schön"
WORD_PIECE_LETTERS = 3.5  # letters per word piece from which a split word counts as a word
# The slips a correction may undo, most likely first (omission is the commonest typing slip): a letter left out
# ("ordr"), two neighbours swapped ("retrun"), a letter mistyped ("adrees"). Not a letter too many: a word with one
# letter more than a training word is too often a word of its own (Italian "pagare" is not Spanish "pagar" mistyped,
# nor the name "Davis" a slip of "Avis"); a letter held down is undone apart ("hellooo").
_SLIPS = ("omitted", "swapped", "mistyped")
# English chat shorthand, spelt out in English messages only (Spanish "u" is "or", German "im" is "in the"). The
# encoders never saw "pls help asap my order is late" in training: it read as cancel_order.
SHORTHAND = {
    "u": "you", "ur": "your", "r": "are", "pls": "please", "plz": "please", "thx": "thanks", "thnx": "thanks",
    "ty": "thank you", "asap": "as soon as possible", "pkg": "package", "msg": "message", "tmrw": "tomorrow",
    "tmr": "tomorrow", "bc": "because", "cuz": "because", "coz": "because", "abt": "about", "acct": "account",
    "addr": "address", "dont": "don't", "doesnt": "doesn't", "didnt": "didn't", "cant": "can't", "wont": "won't",
    "isnt": "isn't", "havent": "haven't", "hasnt": "hasn't", "im": "I'm", "ive": "I've", "wanna": "want to",
    "gonna": "going to", "idk": "I don't know", "rn": "right now", "smth": "something", "sth": "something",
    "qty": "quantity", "amt": "amount",
}
# A mistyped letter is one a finger slips onto: a neighbouring key (on a QWERTY, QWERTZ or AZERTY keyboard), the
# letter without its accent ("a" for "ä") or with another one, or one vowel for another (spelt as heard). German
# "gestern" (yesterday) is no slip of "western": G and W are far apart.
_KEY_ROWS = (("qwertyuiop", "asdfghjkl", "zxcvbnm"), ("qwertzuiop", "asdfghjkl", "yxcvbnm"),
             ("azertyuiop", "qsdfghjklm", "wxcvbn"))
_VOWELS = frozenset("aeiouy")


def _neighbour_keys() -> dict[str, frozenset[str]]:
    near: dict[str, set[str]] = {}
    for rows in _KEY_ROWS:
        for r, row in enumerate(rows):
            for i, key in enumerate(row):
                # Each row sits half a key right of the one above: (r, i) touches (r-1, i), (r-1, i+1), (r+1, i-1), (r+1, i).
                around = [(r, i - 1), (r, i + 1), (r - 1, i), (r - 1, i + 1), (r + 1, i - 1), (r + 1, i)]
                near.setdefault(key, set()).update(
                    rows[rr][ii] for rr, ii in around if 0 <= rr < len(rows) and 0 <= ii < len(rows[rr])
                )
    return {key: frozenset(keys) for key, keys in near.items()}


_NEIGHBOURS = _neighbour_keys()


def _bare(letter: str) -> str:
    return unicodedata.normalize("NFKD", letter)[:1]


def _can_mistype(typed: str, meant: str) -> bool:
    """Whether typing `typed` for `meant` is a plausible slip (see _KEY_ROWS); letters of other scripts always are."""
    a, b = _bare(typed), _bare(meant)
    if a == b:  # an accent left off ("andern"), or the wrong one ("è" for "é"); not one added where none is
        return typed == a or meant != b
    if a in _VOWELS and b in _VOWELS:
        return True
    if a not in _NEIGHBOURS or b not in _NEIGHBOURS:
        return not (a.isascii() and b.isascii())
    return b in _NEIGHBOURS[a]


# A word inside an email address, a web address or a code ("emma.davis464@example.net") is no word to mend.
_IDENTIFIER_TOKEN = re.compile(r"[@/\d]|\w[.:]\w")


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

    def __init__(self, known: Iterable[str] | Mapping[str, int], pieces: Callable[[str], list[str]] | None = None,
                 common: Callable[[str], bool] | None = None) -> None:
        # How often each word occurs in the training data (1 each for a model that kept only the words).
        self.counts: dict[str, int] = dict(known) if isinstance(known, Mapping) else dict.fromkeys(known, 1)
        self.words = sorted(self.counts)
        self._pieces = pieces
        self._common = common  # whether a word is a common word of one of the shop's languages (common_words)
        self._known = set(self.words)
        self._squeezed: dict[str, str] = {}  # a word with its doubled letters single -> the commonest such word
        for word in sorted(self.words, key=lambda w: (-self.counts[w], w)):
            self._squeezed.setdefault(_REPEATS.sub(r"\1", word), word)
        self._deletes: set[str] = set()
        for word in self.words:
            if len(word) >= FUZZY_MIN:
                self._deletes |= _deletes(word)
                self._deletes.add(word)
        self._by_delete: dict[str, list[str]] | None = None  # one deletion -> the known words it comes from
        # Words known from elsewhere (the shop's KB articles) that are never mended into a training word.
        self._spared: frozenset[str] = frozenset()

    def spare(self, known: Iterable[str]) -> None:
        """Words that are real words of the shop though the training data lacks them (its KB articles' words): never
        a slip to mend. German "Konto" (account), in no training example, was mended into the country "Kongo"."""
        self._spared = frozenset(known)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Vocabulary:
        return cls(Counter(w for text in texts for w in words(text)))

    def knows(self, word: str) -> bool:
        return self._in_data(word) or word in self._spared or self._compound(word) or self._a_word(word)

    def _compound(self, word: str) -> bool:
        return any(word[:i] in self._known and word[i:] in self._known
                   for i in range(COMPOUND_PART_MIN, len(word) - COMPOUND_PART_MIN + 1))

    def _word_pieces(self, word: str) -> list[str]:
        """The multilingual encoder's word pieces of `word` (none without the encoder)."""
        if self._pieces is None:
            return []
        return [p for p in (p.lstrip("\u2581") for p in self._pieces(word)) if p]

    def _a_word(self, word: str) -> bool:
        pieces = self._word_pieces(word)
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

    def _slip(self, word: str, known: str) -> str | None:
        """Which slip turns `known` into `word`, if one does."""
        if len(word) + 1 == len(known):
            return "omitted" if word in _deletes(known) else None
        if len(word) != len(known):
            return None
        diff = [i for i in range(len(word)) if word[i] != known[i]]
        if len(diff) == 1:
            return "mistyped" if _can_mistype(word[diff[0]], known[diff[0]]) else None
        if len(diff) == 2 and diff[1] == diff[0] + 1 and word[diff[0]] == known[diff[1]] and word[diff[1]] == known[diff[0]]:
            return "swapped"
        return None

    def _candidates(self, word: str) -> set[str]:
        if self._by_delete is None:
            self._by_delete = {}
            for known in self.words:
                if len(known) >= FUZZY_MIN:
                    for d in _deletes(known):
                        self._by_delete.setdefault(d, []).append(known)
        # Known words one letter longer (`word` is one of their deletions), or as long with a letter changed or two
        # swapped (a deletion in common). A known word one letter shorter is no candidate: see _SLIPS.
        found = set(self._by_delete.get(word, ()))
        for d in _deletes(word):
            found.update(self._by_delete.get(d, ()))
        return found

    def mend(self, word: str) -> str | None:
        """The training word that `word` is a typing slip of, or None. For a word of FUZZY_MIN letters or more that
        is no training word: the training word it is with a letter doubled or undoubled ("shiping", "hellooo");
        else, unless the encoder knows it whole (German "oder" stays "oder"), the training word one slip (_SLIPS)
        away, the likeliest slip first and the commoner word among equals; None when two fit equally."""
        if len(word) < FUZZY_MIN or word in self._known or word in self._spared:
            return None
        if self._common is not None and self._common(word):  # "stuck" is no slip of "stock", nor "gestern" of "western"
            return None
        doubled = self._squeezed.get(_REPEATS.sub(r"\1", word))  # "shiping", "hellooo"; not "jjjjj" -> "j"
        if doubled is not None and len(doubled) >= 3:
            return doubled
        if self._compound(word) or len(self._word_pieces(word)) == 1:
            return None
        ranked: dict[str, list[str]] = {}
        for known in self._candidates(word):
            slip = self._slip(word, known)
            if slip is not None:
                ranked.setdefault(slip, []).append(known)
        for slip in _SLIPS:
            options = sorted(ranked.get(slip, ()), key=lambda k: (-self.counts.get(k, 0), k))
            if options:
                if len(options) > 1 and self.counts.get(options[0], 0) == self.counts.get(options[1], 0):
                    return None
                return options[0]
        return None

    def correct(self, text: str, shorthand: bool = False) -> tuple[str, list[tuple[int, int, int, int]]]:
        """`text` with each typing slip of a training word mended ("wher is my ordr" -> "where is my order"), and
        with `shorthand` English chat shorthand spelt out ("pls help asap" -> "please help as soon as possible"); the
        rest as it was. Also each changed word's span in `text` and in the result:
        (start, end, new start, new end)."""
        out: list[str] = []
        spans: list[tuple[int, int, int, int]] = []
        at = shift = 0
        for match in _WORD.finditer(text):
            word = match.group(0)
            if _UNSPACED.search(word) or _IDENTIFIER_TOKEN.search(_token(text, match.start(), match.end())):
                continue
            folded = unicodedata.normalize("NFKC", word).casefold()
            spelt = SHORTHAND.get(folded) if shorthand else None
            fixed = spelt or self.mend(folded)
            if fixed is None or fixed == word.casefold():
                continue
            if word[:1].isupper():
                fixed = fixed[:1].upper() + fixed[1:]
            out += [text[at:match.start()], fixed]
            spans.append((match.start(), match.end(), match.start() + shift, match.start() + shift + len(fixed)))
            shift += len(fixed) - len(word)
            at = match.end()
        out.append(text[at:])
        return "".join(out), spans

    def unknown_short(self, text: str, max_words: int) -> bool:
        """True for a message of 1 to `max_words` words, none of them known."""
        found = words(text)
        return 0 < len(found) <= max_words and not any(self.knows(w) for w in found)


# wordfreq's "small" lists hold the words used at least once per million words (Zipf 3 and up): "stuck", "wool",
# "gestern", "unas" are in them; slips, even common ones ("recieve", "adress", "wher"), are not.
COMMON_WORDLIST = "small"


def common_words(languages: Iterable[str]) -> Callable[[str], bool] | None:
    """Whether a word is a common word of one of `languages` (wordfreq's frequency lists, packaged with it): such a
    word is never a typing slip. Words of scripts written without spaces are left out (they are never mended), and
    languages wordfreq has no list for; None when none is left or wordfreq is missing."""
    try:
        from wordfreq import get_frequency_dict, get_frequency_list
    except ImportError:  # pragma: no cover - a dependency; a stripped install just mends more
        return None
    common: set[str] = set()
    found = False
    for lang in dict.fromkeys(languages):
        try:
            freq = get_frequency_dict(lang, wordlist=COMMON_WORDLIST)
        except (LookupError, ImportError, ValueError):
            continue
        found = True
        # Only words long enough to be mended (FUZZY_MIN) are asked about.
        common.update(w for w in freq if len(w) >= FUZZY_MIN and _WORD.fullmatch(w) and not _UNSPACED.search(w))
    for cached in (get_frequency_dict, get_frequency_list):  # their frequencies are not needed again
        cached.cache_clear()
    return frozenset(common).__contains__ if found else None


def _token(text: str, start: int, end: int) -> str:
    """The run of non-space characters around text[start:end]."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return text[start:end]


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

