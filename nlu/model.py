"""The trained NLU artefact and its facade: `train_model(...)` writes a folder, `NLUModel.load(folder).parse(text)`.

The folder holds the config, a fingerprint of the data and config (so training reruns only when
something changed), the encoder name, thresholds, label set, the cross-validated metrics measured
at training, and a format version; an artefact of another format version is refused with a clear
message. The default encoder is `use-multilingual`: see `NLUConfig.encoder`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from nlu.classifier import OUT_OF_SCOPE, ClassifierSettings, IntentClassifier, IntentPrediction
from nlu.encoders import ENCODER_NAMES, SENTENCE_TRANSFORMERS, USE_MULTILINGUAL, Encoder, load_encoder
from nlu.entities import DEFAULT_ORDER_PATTERNS, EntityExtractor, IdentifierMask, country_names
from nlu.language import DEFAULT_LANGUAGES, LanguageIdentifier
from nlu.sentiment import DATA_DIR as SENTIMENT_DATA
from nlu.sentiment import SentimentClassifier, load_examples
from nlu.training_data import AnnotatedEntity, TrainingData, TrainingExample, load_training_data
from nlu.types import Entity, IntentScore, ParseResult
from nlu.vocabulary import Vocabulary, common_words, exact_examples, normalise_example, wordless, words

FORMAT_VERSION = 1
MANIFEST = "nlu_model.json"
VOCABULARY = "vocabulary.json"
EXACT = "examples.json"
# Long emails: the opening says what they are about, and encoding cost grows with length.
MAX_ENCODED_CHARS = 1000
# Typing slips: a message with slips of training words is read again with them mended; the mended reading's intent
# counts when it names one more surely than the first, and with at least MEND_MIN (the engine's intent threshold).
MEND_MIN = 0.5
Progress = Callable[[str, float], None]


class ModelFormatError(RuntimeError):
    """The folder is not a trained NLU model this version can read."""


@dataclass
class NLUConfig:
    # use-multilingual by default: it is the only encoder that carries meaning across languages
    # (xSID, trained on English: 94.8% mean on the other supported languages; MiniLM ~35%, the
    # combination 81%) and the fastest. The combination adds ~1.7 points of in-scope accuracy on
    # CLINC150 (English): choose `use-multilingual+sentence-transformers` for an English-only shop.
    encoder: str = USE_MULTILINGUAL
    encoder_model_path: str | None = None  # a local sentence-transformers model folder
    languages: list[str] = field(default_factory=lambda: list(DEFAULT_LANGUAGES))
    fallback_language: str = "en"
    # Name a message's language when it is clearly none of `languages` (ParseResult.foreign_language, which the
    # handoff's unsupported_language trigger acts on). Costs ~0.15 ms per message, ~50 MB, and ~20-25 MB more per
    # foreign language seen (its full lingua models); set false on a small machine to skip it.
    recognise_other_languages: bool = True
    order_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_ORDER_PATTERNS))
    # Read intents with identifiers (order and tracking numbers, emails, URLs, phone numbers) masked out:
    # they say which order, not what the shopper wants (entities are still extracted from the full text).
    mask_identifiers: bool = True
    # A message of at most this many words, none of which is a word (of the training data, a typo of one, or one
    # the multilingual encoder knows), is out of scope: keyboard mashing is no greeting (nlu/vocabulary.py).
    # 0 turns it off.
    unknown_words_max: int = 3
    # A message with typing slips of training words ("wher is my ordr", "can i retrun this"), or an English one with
    # chat shorthand ("pls help asap"), is read again with them mended (ParseResult.corrected): its language and
    # entities come from the mended text, its intent too when the mended reading names one more surely
    # (nlu/vocabulary.py).
    correct_spelling: bool = True
    ranking_size: int = 10
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)

    def __post_init__(self) -> None:
        if self.encoder not in ENCODER_NAMES:
            raise ValueError(f"unknown encoder {self.encoder!r}; choose one of {', '.join(ENCODER_NAMES)}")
        if isinstance(self.classifier, dict):
            self.classifier = ClassifierSettings(**self.classifier)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> NLUConfig:
        raw = dict(raw or {})
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown NLU config keys {sorted(unknown)}; known keys: {sorted(known)}")
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fingerprint(data: TrainingData, config: NLUConfig) -> str:
    # The shipped sentiment examples and the training code count as inputs too.
    shipped = hashlib.sha256()
    here = Path(__file__).resolve().parent
    code = ("classifier.py", "sentiment.py", "model.py", "vocabulary.py")
    for path in [*sorted(SENTIMENT_DATA.glob("*.yml")), *(here / name for name in code)]:
        shipped.update(path.read_bytes())
    payload = json.dumps([FORMAT_VERSION, data.fingerprint(), config.to_dict(), shipped.hexdigest()], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _resolve_config(config: NLUConfig | dict[str, Any] | None) -> NLUConfig:
    if isinstance(config, NLUConfig):
        return config
    return NLUConfig.from_dict(config)


def needs_training(
    data_paths: str | Path | Sequence[str | Path], config: NLUConfig | dict[str, Any] | None, out_dir: str | Path
) -> bool:
    """True when `out_dir` holds no model trained from exactly this data and config."""
    manifest = Path(out_dir) / MANIFEST
    if not manifest.exists():
        return True
    try:
        stored = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return True
    if stored.get("format_version") != FORMAT_VERSION:
        return True
    return bool(stored.get("fingerprint") != _fingerprint(load_training_data(data_paths), _resolve_config(config)))


def _mask(config: NLUConfig) -> Callable[[str], str]:
    return IdentifierMask(config.order_patterns) if config.mask_identifiers else str


class _Vectors:
    """Encodes once per text for both the intent encoder and the (multilingual) sentiment encoder."""

    def __init__(self, config: NLUConfig) -> None:
        self.name = config.encoder
        self.use: Encoder = load_encoder(USE_MULTILINGUAL)
        self.st: Encoder | None = None
        if SENTENCE_TRANSFORMERS in config.encoder.split("+"):
            self.st = load_encoder(SENTENCE_TRANSFORMERS, config.encoder_model_path)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(intent vectors, multilingual vectors)."""
        parts = []
        use = self.use.encode(texts)  # always: sentiment reads the multilingual vectors
        if USE_MULTILINGUAL in self.name.split("+"):
            parts.append(use)
        if self.st is not None:
            parts.append(self.st.encode(texts))
        joined = parts[0] if len(parts) == 1 else np.hstack(parts)
        if len(parts) > 1:
            joined = joined / np.linalg.norm(joined, axis=1, keepdims=True)
        return np.ascontiguousarray(joined, dtype=np.float32), use


def train_model(
    data_paths: str | Path | Sequence[str | Path],
    config: NLUConfig | dict[str, Any] | None,
    out_dir: str | Path,
    progress: Progress | None = None,
) -> Path:
    """Train intents, entities and sentiment from Rasa data; write the artefact folder; return it."""
    cfg = _resolve_config(config)
    out = Path(out_dir)
    report = progress or (lambda stage, fraction: None)
    started = time.perf_counter()
    report("reading training data", 0.0)
    data = load_training_data(data_paths)
    if len(data.intents) < 2:
        raise ValueError(
            f"the training data has {len(data.intents)} intent(s); add examples for at least two intents"
        )
    report("loading encoders", 0.05)
    vectors = _Vectors(cfg)
    report("encoding training examples", 0.1)
    mask = _mask(cfg)
    x_intent, _ = vectors.encode([mask(e.text) for e in data.examples])
    report("training the intent classifier", 0.3)
    clf = IntentClassifier(cfg.classifier)
    metrics = clf.fit(x_intent, [e.intent for e in data.examples],
                      progress=lambda stage, f: report(stage, 0.3 + 0.5 * f))
    report("training sentiment and urgency", 0.85)
    sentiment_examples = load_examples()
    _, x_sent = vectors.encode([mask(t) for t, _, _ in sentiment_examples])
    sentiment = SentimentClassifier().fit(
        [t for t, _, _ in sentiment_examples], x_sent, [labels for _, labels, _ in sentiment_examples]
    )
    out.mkdir(parents=True, exist_ok=True)
    clf.save(out)
    sentiment.save(out)
    entity_data = {
        "synonyms": data.synonyms,
        "regexes": data.regexes,
        "lookups": data.lookups,
        "annotations": sorted({(a.entity, a.text, a.value) for e in data.examples for a in e.entities}),
    }
    (out / "entities.json").write_text(json.dumps(entity_data, indent=2, ensure_ascii=False))
    trained = Counter(w for text in [
        *(mask(e.text) for e in data.examples), *data.synonyms, *data.synonyms.values(),
        *(v for values in data.lookups.values() for v in values),
    ] for w in words(text))
    # The country names the extractor knows count as words once each, so that "australa" is mended too.
    countries = dict.fromkeys((w for name in country_names(cfg.languages) for w in words(name)), 1)
    (out / VOCABULARY).write_text(json.dumps(dict(sorted({**countries, **trained}.items())), ensure_ascii=False))
    exact = exact_examples((mask(e.text), e.intent) for e in data.examples)
    (out / EXACT).write_text(json.dumps(exact, indent=0, ensure_ascii=False))
    manifest = {
        "format_version": FORMAT_VERSION,
        "trained_at": datetime.now(UTC).isoformat(),
        "fingerprint": _fingerprint(data, cfg),
        "data_fingerprint": data.fingerprint(),
        "config": cfg.to_dict(),
        "encoder": cfg.encoder,
        "intents": clf.classes,
        "retrieval_intents": data.retrieval_intents,
        "entities": data.entity_names,
        "sentiment_labels": list(sentiment.thresholds),
        "thresholds": {"out_of_scope": clf.threshold, "temperature": clf.temperature, "sentiment": sentiment.thresholds},
        "metrics": {"intent": metrics, "sentiment": sentiment.metrics},
        "training_files": data.files,
        "examples": len(data.examples),
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    report("done", 1.0)
    return out


def _placed_back(entity: Entity, spans: list[tuple[int, int, int, int]], text: str) -> Entity:
    """An entity found in the mended text, with its place (and text) in the message as written."""

    def back(at: int, end: bool) -> int:
        shift = 0
        for start, stop, new_start, new_stop in spans:
            if at < new_start or (end and at == new_start):
                break
            if at < new_stop or (end and at == new_stop):
                return stop if end else start
            shift = stop - new_stop
        return at + shift

    start, end = back(entity.start, False), back(entity.end, True)
    return replace(entity, start=start, end=end, text=text[start:end])


class NLUModel:
    """A loaded NLU model: `parse(text, previous_language)` -> ParseResult."""

    def __init__(
        self,
        config: NLUConfig,
        classifier: IntentClassifier,
        sentiment: SentimentClassifier,
        entities: EntityExtractor,
        manifest: dict[str, Any],
        known_words: list[str] | dict[str, int] | None = None,
        exact: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        # A message that is one of the training examples (punctuation and case aside) gets that example's intent:
        # "bye!" was read as goodbye at 0.46, under the engine's threshold, though "bye" is an example.
        self.exact = exact or {}
        self.classifier = classifier
        self.sentiment = sentiment
        self.entities = entities
        self.manifest = manifest
        self.language = LanguageIdentifier(config.languages, config.fallback_language)
        self._vectors = _Vectors(config)
        self._mask = _mask(config)
        self._identifiers = IdentifierMask(config.order_patterns)
        # None for a model trained before the training words were kept: no unknown-word check.
        pieces = getattr(self._vectors.use, "pieces", None)
        self.vocabulary = None if known_words is None else Vocabulary(
            known_words, pieces, common_words(config.languages) if config.correct_spelling else None)

    @property
    def intents(self) -> list[str]:
        return list(self.classifier.classes)

    def spare_words(self, known: Iterable[str]) -> None:
        """Words of the shop from outside the training data (its KB articles) that spelling correction leaves alone."""
        if self.vocabulary is not None:
            self.vocabulary.spare(known)

    def examples(self, intent: str) -> list[tuple[str, str]]:
        """The intent's training examples as the exact match keeps them (normalised, identifiers masked), each with
        the language it is in."""
        return [(text, self.language.detect(text)[0]) for text, name in self.exact.items() if name == intent]

    @classmethod
    def load(cls, path: str | Path) -> NLUModel:
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if not manifest_path.exists():
            raise ModelFormatError(
                f"{folder} is not a trained NLU model (no {MANIFEST}); train one with `nightdesk nlu train --data ...`"
            )
        manifest = json.loads(manifest_path.read_text())
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelFormatError(
                f"the NLU model in {folder} has format version {version}, this Nightdesk reads version "
                f"{FORMAT_VERSION}; retrain it with `nightdesk nlu train --data ... --out {folder}`"
            )
        # A model from before identifier masking was trained on unmasked text: parse it the same way.
        config = NLUConfig.from_dict({"mask_identifiers": False, **manifest["config"]})
        raw = json.loads((folder / "entities.json").read_text())
        examples = [
            TrainingExample(text, "_", (AnnotatedEntity(entity, value, text, 0, len(text)),))
            for entity, text, value in raw["annotations"]
        ]
        data = TrainingData(examples, raw["synonyms"], raw["regexes"], raw["lookups"])
        extractor = EntityExtractor(data, config.languages, config.order_patterns)
        words = folder / VOCABULARY
        known = json.loads(words.read_text()) if words.exists() else None
        exact = json.loads((folder / EXACT).read_text()) if (folder / EXACT).exists() else None
        return cls(config, IntentClassifier.load(folder), SentimentClassifier.load(folder), extractor, manifest,
                   known, exact)

    def warm_up(self) -> None:
        """Load the lazy parts (lingua models, spaCy pipelines) before the first shopper waits for them."""
        self.language.warm_up()
        self.parse_batch(["warm up", "ND-100234"])

    def _exact(self, masked: str, predicted: IntentPrediction) -> IntentPrediction:
        """The intent of the training example that `masked` (the message as the intent reads it) matches."""
        intent = self.exact.get(normalise_example(masked))
        if intent is None:
            return predicted
        if intent == OUT_OF_SCOPE:
            return replace(predicted, intent=None)
        ranking = [IntentScore(intent, 1.0), *(r for r in predicted.ranking if r.name != intent)]
        return replace(predicted, intent=intent, confidence=1.0, ranking=ranking[: len(predicted.ranking)])

    def _unknown_words(self, text: str) -> bool:
        """A short message with no word of the training data in it, and no order number, email or the like."""
        limit = self.config.unknown_words_max
        if self.vocabulary is None or limit <= 0 or self._identifiers.finds(text):
            return False
        return self.vocabulary.unknown_short(text, limit)

    def parse(self, text: str, previous_language: str | None = None) -> ParseResult:
        return self.parse_batch([text], [previous_language])[0]

    def parse_batch(self, texts: Sequence[str], previous_languages: Sequence[str | None] | None = None) -> list[ParseResult]:
        texts = list(texts)
        if not texts:
            return []
        previous: list[str | None] = list(previous_languages) if previous_languages is not None else [None] * len(texts)
        if not self.config.correct_spelling or self.vocabulary is None:
            return self._parse_batch(texts, previous)
        # The language is told from the mended text ("how do i get an invoce" read as Italian).
        mends = [self.vocabulary.correct(t) for t in texts]
        results = self._parse_batch(texts, previous, [mended[:MAX_ENCODED_CHARS] for mended, _ in mends])
        return self._mended(results, previous, mends)

    def _mended(self, results: list[ParseResult], previous: list[str | None],
                mends: list[tuple[str, list[tuple[int, int, int, int]]]]) -> list[ParseResult]:
        """Each result whose message has typing slips, read again with them mended: the entities of that reading,
        placed back on the message as written ("germny" is still Germany); its intent and ranking when it names an
        intent more surely (and with MEND_MIN or more); and the mended text as `corrected`."""
        # English chat shorthand is spelt out once the message is known to be English ("pls help asap").
        assert self.vocabulary is not None
        mends = [self.vocabulary.correct(r.text, shorthand=True) if r.language == "en" else m
                 for r, m in zip(results, mends, strict=True)]
        todo = [(i, mended, spans) for i, (mended, spans) in enumerate(mends) if spans]
        if not todo:
            return results
        again = self._parse_batch([m for _, m, _ in todo], [previous[i] for i, _, _ in todo])
        out = list(results)
        for (i, mended, spans), read in zip(todo, again, strict=True):
            first = results[i]
            entities = [_placed_back(e, spans, first.text) for e in read.entities]
            out[i] = replace(first, entities=entities, corrected=mended)
            sure = first.confidence if first.intent is not None else 0.0
            if read.intent is not None and read.confidence >= MEND_MIN and read.confidence > sure:
                out[i] = replace(out[i], intent=read.intent, confidence=read.confidence, ranking=read.ranking)
        return out

    def _parse_batch(self, texts: list[str], previous: list[str | None],
                     spoken: list[str] | None = None) -> list[ParseResult]:
        """`spoken`: the texts to tell the language from, if not `texts` themselves."""
        per_item = 1.0 / len(texts)
        t0 = time.perf_counter()
        heads = [t[:MAX_ENCODED_CHARS] for t in texts]
        told = spoken if spoken is not None else heads
        languages = [self.language.detect(t, p) for t, p in zip(told, previous, strict=True)]
        foreign = [self.language.foreign(t, conf) if self.config.recognise_other_languages else None
                   for t, (_, conf) in zip(told, languages, strict=True)]
        t1 = time.perf_counter()
        masked = [self._mask(h) for h in heads]
        x_intent, x_use = self._vectors.encode(masked)
        t2 = time.perf_counter()
        intents = self.classifier.predict(x_intent, top=self.config.ranking_size)
        # An empty message is about nothing: no intent, however the classifier ranks it. Nor is one without a word
        # or a number ("?", "😡😡😡", read as "yes" at 0.84): the encoders place it near the short examples. A
        # pictograph that is a training example ("👍" under affirm) still gets its intent from the exact table.
        intents = [replace(p, intent=None, confidence=0.0) if wordless(t) else p
                   for t, p in zip(texts, intents, strict=True)]
        intents = [replace(p, intent=None) if p.intent is not None and self._unknown_words(h) else p
                   for h, p in zip(heads, intents, strict=True)]
        if self.exact:
            intents = [self._exact(m, p) for m, p in zip(masked, intents, strict=True)]
        t3 = time.perf_counter()
        entities = [self.entities.extract(t, lang) for t, (lang, _) in zip(texts, languages, strict=True)]
        t4 = time.perf_counter()
        sentiments = self.sentiment.predict(heads, x_use)
        t5 = time.perf_counter()
        timings = {
            "language": (t1 - t0) * 1000 * per_item,
            "encode": (t2 - t1) * 1000 * per_item,
            "intent": (t3 - t2) * 1000 * per_item,
            "entities": (t4 - t3) * 1000 * per_item,
            "sentiment": (t5 - t4) * 1000 * per_item,
            "total": (t5 - t0) * 1000 * per_item,
        }
        timings = {k: round(v, 3) for k, v in timings.items()}
        return [
            ParseResult(text, lang, round(lang_conf, 4), pred.intent, pred.confidence, pred.ranking, ents, sent,
                        dict(timings), other)
            for text, (lang, lang_conf), other, pred, ents, sent in zip(texts, languages, foreign, intents, entities,
                                                                        sentiments, strict=True)
        ]
