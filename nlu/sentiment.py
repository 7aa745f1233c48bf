"""Sentiment and urgency: angry, urgent, threat (legal, chargeback, bad review), human (asks for a person).

One-vs-rest logistic regression on multilingual sentence embeddings, trained from the labelled
examples shipped in nlu/data/sentiment/*.yml, plus keyword cues for the unmistakable phrases
("chargeback", "Anwalt", "人工客服"). Each label has its own threshold, chosen by cross-validation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from nlu.types import SENTIMENT_LABELS, Sentiment

DATA_DIR = Path(__file__).resolve().parent / "data" / "sentiment"

# Phrases that settle a label on their own, in the supported languages (lower-cased match).
CUES: dict[str, tuple[str, ...]] = {
    # Angry faces and the finger say it in every language ("😡😡😡" alone was read as calm).
    "angry": (r"[\U0001F620\U0001F621\U0001F624\U0001F92C\U0001F47F\U0001F4A2\U0001F595]",),
    "threat": (
        r"chargeback", r"charge back", r"dispute (the|this) (charge|payment)", r"lawyer", r"attorney",
        r"sue you",
        r"legal action", r"small claims", r"consumer protection", r"\bbbb\b", r"1[- ]star",
        r"one[- ]star review",
        r"anwalt", r"rückbuchung", r"verbraucherzentrale", r"abogad", r"denuncia", r"contracargo", r"avocat",
        r"rétrofacturation", r"mise en demeure", r"avvocat", r"denuncerò", r"advogad", r"procon", r"estorno",
        r"advocaat", r"弁護士", r"訴え", r"消費者センター", r"律师", r"起诉", r"投诉到", r"消协", r"拒付",
        r"paypal.{0,20}(claim|fall|reclam|litige|contestaz|disputa)",
    ),
    "human": (
        r"\b(real|actual|live) (person|human|agent)", r"talk to (a|an|someone|somebody)",
        r"speak (to|with) (a|an|someone)",
        r"human agent", r"\bmenschen\b", r"mitarbeiter sprechen", r"echte[nr]? person", r"persona real",
        r"hablar con (un|una|alguien)",
        r"agente humano", r"un humain", r"parler à (un|une|quelqu)", r"conseiller", r"operatore",
        r"persona vera",
        r"parlare con (un|una|qualcuno)", r"atendente", r"falar com (um|uma|alguém)", r"pessoa real",
        r"medewerker",
        r"echt persoon", r"オペレーター", r"担当者", r"人間", r"人工客服", r"真人", r"转人工", r"人工服务",
    ),
}


# Without one of these words, a message is very unlikely to carry the label, however close its
# topic is to the labelled examples ("cancel my order" is not urgent; "is this a bot?" asks for no one).
GATES: dict[str, tuple[str, ...]] = {
    "urgent": (
        r"urgent", r"asap", r"as soon as", r"right (now|away)", r"immediately", r"today", r"tomorrow",
        r"tonight",
        r"hurry", r"quick(?!\s+(question|one|query|q\b))", r"emergency", r"deadline", r"time.sensitive",
        r"before (mon|tues|wednes|thurs|fri|satur|sun)day",
        r"by (mon|tues|wednes|thurs|fri|satur|sun)day", r"expedite", r"dringend", r"sofort", r"eilt",
        r"schnell",
        r"heute", r"morgen", r"bis (montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag)",
        r"umgehend",
        r"urgente", r"ya mismo", r"cuanto antes", r"rápido", r"hoy", r"mañana", r"antes del", r"inmediat",
        r"sin falta",
        r"tout de suite", r"au plus vite", r"vite", r"aujourd'hui", r"demain",
        r"avant (lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)",
        r"subito", r"presto", r"oggi", r"domani", r"entro", r"agora mesmo", r"rápido", r"hoje", r"amanhã",
        r"até (sexta|segunda|sábado)",
        r"至急", r"急", r"今すぐ", r"今日", r"明日", r"までに", r"すぐ",
        r"紧急", r"马上", r"立刻", r"今天", r"明天", r"之前", r"尽快",
        r"!!",
    ),
    "threat": (
        r"bank", r"review", r"bewertung", r"reseña", r"\bavis\b", r"recensione", r"avalia", r"police",
        r"poli[zc]", r"report",
        r"denunc", r"plainte", r"reclam", r"court", r"gericht", r"tribunal", r"credit card", r"kreditkarte",
        r"tarjeta",
        r"carte", r"carta", r"cartão", r"paypal", r"legal", r"recht", r"juridi", r"solicitor", r"dispute",
        r"contest",
        r"opposition", r"verbraucher", r"consum", r"fraud", r"betrug", r"estafa", r"arnaque", r"truffa",
        r"golpe",
        r"レビュー", r"銀行", r"カード", r"警察", r"訴", r"差评", r"银行", r"报警", r"法", r"投诉", r"星",
    ),
    "human": (
        r"person", r"human", r"agent", r"some(one|body)", r"staff", r"representative", r"operator", r"team",
        r"mensch",
        r"mitarbeiter", r"berater", r"kundenservice", r"kundendienst", r"jemand", r"persona", r"humano",
        r"agente", r"alguien",
        r"operador", r"atención al cliente", r"humain", r"conseiller", r"personne", r"quelqu", r"opérateur",
        r"service client",
        r"operatore", r"qualcuno", r"umano", r"servizio clienti", r"pessoa", r"atendente", r"alguém",
        r"suporte", r"medewerker",
        r"iemand", r"\bmens\b", r"人間", r"オペレーター", r"担当", r"スタッフ", r"係", r"人と",
        r"人工", r"真人", r"客服", r"人员",
        r"找人",
    ),
}
GATE_DAMPING = 0.25
NEAR_BEST_F1 = 0.01  # thresholds whose cross-validated F1 is this close to the best are as good
# Words that take a label back unless one of its cues is there too: a review with four or five stars is praise,
# and asking how to leave one is a question, not a threat ("I want to leave a 5 star review" read as a threat at
# 0.72, "how do I leave a review?" at 0.40; a threat escalates at P1).
COUNTER_CUES: dict[str, tuple[str, ...]] = {
    "threat": (
        r"\b(how|where) (do|can|should) i (leave|write|post|add|give)", r"(wie|wo) (kann|könnte) ich .{0,30}bewert",
        r"c[oó]mo (puedo |se )?(dejar|escribir|poner)", r"d[oó]nde (puedo )?(dejar|escribir)",
        r"comment (laisser|écrire|donner)", r"o[uù] (puis-je|peut-on) (laisser|écrire)",
        r"come (posso )?(lasciare|scrivere)", r"dove (posso )?(lasciare|scrivere)", r"como (posso )?(deixar|escrever)",
        r"onde (posso )?(deixar|escrever)", r"(hoe|waar) (kan|moet) ik .{0,30}(review|beoordel)",
        r"(どこで|どうやって|どこに).{0,12}(レビュー|評価)",
        r"(レビュー|評価).{0,12}(どこ|どうやって|方法)", r"(怎么|如何|在哪).{0,8}评", r"评价.{0,6}(怎么|如何|在哪)",
        r"\b[45][- ]?stars?\b", r"\b(four|five)[- ]stars?\b", r"\b(good|great|positive|nice) review",
        r"[45][- ]?sterne", r"(vier|fünf) sterne", r"gute bewertung", r"(cuatro|cinco) estrellas",
        r"buena reseña", r"(quatre|cinq) étoiles", r"bon avis", r"(quattro|cinque) stelle",
        r"bella recensione", r"(quatro|cinco) estrelas", r"(vier|vijf) sterren", r"星[45４５]", r"[45４５]つ星",
        r"五星", r"好评",
    ),
}


def load_examples(folder: Path = DATA_DIR) -> list[tuple[str, frozenset[str], str]]:
    """(text, labels, language) from every `<lang>.yml` in `folder`; keys are labels joined by `+`."""
    out: list[tuple[str, frozenset[str], str]] = []
    for path in sorted(folder.glob("*.yml")):
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key, texts in content.items():
            labels = frozenset() if key == "neutral" else frozenset(str(key).split("+"))
            unknown = labels - set(SENTIMENT_LABELS)
            if unknown:
                raise ValueError(f"{path}: unknown sentiment label(s) {sorted(unknown)}; use {SENTIMENT_LABELS}")
            out.extend((str(t), labels, path.stem) for t in texts or [])
    return out


class SentimentClassifier:
    def __init__(self, C: float = 4.0) -> None:
        self.C = C
        self.coef = np.zeros((len(SENTIMENT_LABELS), 0), dtype=np.float32)
        self.intercept = np.zeros(len(SENTIMENT_LABELS), dtype=np.float32)
        self.thresholds = {label: 0.5 for label in SENTIMENT_LABELS}
        self.metrics: dict[str, dict[str, float]] = {}
        self._cues = {label: re.compile("|".join(p), re.IGNORECASE) for label, p in CUES.items()}
        self._gates = {label: re.compile("|".join(p), re.IGNORECASE) for label, p in GATES.items()}
        self._counters = {label: re.compile("|".join(p), re.IGNORECASE) for label, p in COUNTER_CUES.items()}

    def _adjust(self, label: str, texts: Sequence[str], probs: np.ndarray) -> np.ndarray:
        """Model probability combined with the keyword evidence for `label`."""
        out = np.array(probs, dtype=np.float64)
        cue, gate, counter = self._cues.get(label), self._gates.get(label), self._counters.get(label)
        for i, text in enumerate(texts):
            if cue is not None and cue.search(text):
                out[i] = max(out[i], 0.95)
            elif (gate is not None and not gate.search(text)) or (counter is not None and counter.search(text)):
                out[i] *= GATE_DAMPING
        return out

    def fit(self, texts: Sequence[str], x: np.ndarray, labels: Sequence[frozenset[str]]) -> SentimentClassifier:
        coefs, intercepts = [], []
        for label in SENTIMENT_LABELS:
            y = np.array([label in ls for ls in labels], dtype=int)
            # Out-of-fold probabilities choose the threshold that maximises F1 for this label.
            oof = np.zeros(len(y))
            folds = StratifiedKFold(n_splits=min(5, int(y.sum())), shuffle=True, random_state=0)
            for train, test in folds.split(x, y):
                model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=500).fit(x[train], y[train])
                oof[test] = model.predict_proba(x[test])[:, 1]
            oof = self._adjust(label, texts, oof)
            grid = np.arange(0.3, 0.91, 0.02)
            f1s = [2 * float(((oof >= t) & (y == 1)).sum()) / max(1.0, float((oof >= t).sum() + y.sum())) for t in grid]
            best_f1 = max(f1s)
            # On a few hundred examples the F1 curve is flat and jagged: its argmax jumped from 0.64 to 0.52 for anger
            # when six neutral examples were added, and calm damage reports (0.59) went to a person. Of the
            # thresholds within NEAR_BEST_F1 of the best, the highest: a false alarm hands a shopper who wanted an
            # answer to a queue.
            best_t = max(float(t) for t, f1 in zip(grid, f1s, strict=True) if f1 >= best_f1 - NEAR_BEST_F1)
            self.thresholds[label] = round(best_t, 2)
            self.metrics[label] = {"cv_f1": round(best_f1, 3), "examples": int(y.sum())}
            model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=500).fit(x, y)
            coefs.append(model.coef_[0])
            intercepts.append(model.intercept_[0])
        self.coef = np.asarray(coefs, dtype=np.float32)
        self.intercept = np.asarray(intercepts, dtype=np.float32)
        return self

    def predict(self, texts: Sequence[str], x: np.ndarray) -> list[Sentiment]:
        probs = 1.0 / (1.0 + np.exp(-(np.asarray(x, dtype=np.float32) @ self.coef.T + self.intercept)))
        out = []
        for text, row in zip(texts, probs, strict=True):
            scores = {label: float(self._adjust(label, [text], np.array([p]))[0])
                      for label, p in zip(SENTIMENT_LABELS, row, strict=True)}
            labels = tuple(lb for lb in SENTIMENT_LABELS if scores[lb] >= self.thresholds[lb])
            out.append(Sentiment({k: round(v, 4) for k, v in scores.items()}, labels))
        return out

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "sentiment.npz", coef=self.coef, intercept=self.intercept)
        meta = {"C": self.C, "thresholds": self.thresholds, "metrics": self.metrics}
        (folder / "sentiment.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> SentimentClassifier:
        meta = json.loads((folder / "sentiment.json").read_text())
        clf = cls(C=float(meta["C"]))
        arrays = np.load(folder / "sentiment.npz")
        clf.coef, clf.intercept = arrays["coef"], arrays["intercept"]
        clf.thresholds = {k: float(v) for k, v in meta["thresholds"].items()}
        clf.metrics = meta.get("metrics", {})
        return clf
