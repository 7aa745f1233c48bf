"""What the bot could not answer, grouped by meaning across languages: the content owners' review list.

Unanswered messages are embedded with the shared multilingual encoder and clustered (average-linkage
agglomerative clustering on cosine distance, cut at a similarity threshold), so "where is my
refund", "wo bleibt meine Erstattung" and "返金はまだですか" land in one group.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from knowledge_base.search import KBSearcher
from knowledge_base.service import Draft, KBError, KnowledgeBase, UnansweredQuestion
from nlu.encoders import Encoder, load_encoder

PLACEHOLDER_BODY = "(Write the answer here: shoppers asked the questions listed above.)"


@dataclass(frozen=True)
class UnansweredGroup:
    """Questions that mean the same thing, with what the review needs to decide on them."""

    group_id: str
    count: int
    languages: dict[str, int]
    first_seen: datetime
    last_seen: datetime
    examples: list[str]
    question_ids: list[int]
    reasons: dict[str, int]
    suggested_article: str | None = None
    suggested_confidence: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "count": self.count,
            "languages": self.languages,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "examples": self.examples,
            "question_ids": self.question_ids,
            "reasons": self.reasons,
            "suggested_article": self.suggested_article,
            "suggested_confidence": round(self.suggested_confidence, 4),
        }


class GapMiner:
    """Groups unanswered questions and turns a group into a new article or more example questions."""

    def __init__(
        self,
        kb: KnowledgeBase,
        encoder: Encoder | None = None,
        searcher: KBSearcher | None = None,
        similarity: float = 0.55,
        max_questions: int = 5000,
    ) -> None:
        if not 0.0 < similarity < 1.0:
            raise ValueError("similarity must be between 0 and 1")
        self.kb = kb
        self.encoder = encoder or (searcher.encoder if searcher else load_encoder())
        self.searcher = searcher
        self.similarity = similarity
        self.max_questions = max_questions

    def cluster(self, texts: list[str]) -> list[int]:
        """A cluster label per text (same label = same meaning)."""
        if not texts:
            return []
        if len(texts) == 1:
            return [0]
        from sklearn.cluster import AgglomerativeClustering

        vectors = self.encoder.encode(texts)
        model = AgglomerativeClustering(
            n_clusters=None, metric="cosine", linkage="average", distance_threshold=1.0 - self.similarity
        )
        return [int(label) for label in model.fit_predict(vectors)]

    async def groups(self, since: datetime | None = None, min_count: int = 1) -> list[UnansweredGroup]:
        """Open unanswered questions grouped by meaning, biggest group first."""
        questions = await self.kb.unanswered(since=since)
        # The most recent ones when there are very many: clustering is quadratic in memory.
        questions = questions[-self.max_questions :]
        labels = self.cluster([q.text for q in questions])
        members: dict[int, list[UnansweredQuestion]] = {}
        for q, label in zip(questions, labels, strict=True):
            members.setdefault(label, []).append(q)
        out = []
        for items in members.values():
            if len(items) < min_count:
                continue
            examples = self._representatives(items)
            suggestion, confidence = None, 0.0
            if self.searcher is not None and self.searcher.index is not None:
                result = self.searcher.search(examples[0], items[0].language or None)
                if result.best is not None:
                    suggestion, confidence = result.best.article_id, result.best.confidence
            out.append(
                UnansweredGroup(
                    group_id=f"g{min(q.id for q in items)}",
                    count=len(items),
                    languages=dict(Counter(q.language or "unknown" for q in items).most_common()),
                    first_seen=min(q.created_at for q in items),
                    last_seen=max(q.created_at for q in items),
                    examples=examples,
                    question_ids=sorted(q.id for q in items),
                    reasons=dict(Counter(q.reason for q in items)),
                    suggested_article=suggestion,
                    suggested_confidence=confidence,
                )
            )
        out.sort(key=lambda g: (-g.count, -g.last_seen.timestamp()))
        return out

    def _representatives(self, items: list[UnansweredQuestion], limit: int = 5) -> list[str]:
        """Distinct example texts, the most central first (one per language before repeats)."""
        texts = list(dict.fromkeys(q.text for q in items))
        if len(texts) <= 1:
            return texts
        vectors = self.encoder.encode(texts)
        centre = vectors.mean(axis=0)
        order = np.argsort(-(vectors @ centre))
        return [texts[i] for i in order[:limit]]

    async def _texts(self, question_ids: list[int]) -> list[UnansweredQuestion]:
        if not question_ids:
            raise KBError("no questions selected; pick a group or some questions first")
        found = await self.kb.unanswered(ids=question_ids, include_resolved=True)
        if len(found) != len(set(question_ids)):
            missing = sorted(set(question_ids) - {q.id for q in found})
            raise KBError(f"unanswered question(s) {missing} do not exist; reload the list")
        return found

    async def new_article_from_group(
        self,
        question_ids: list[int],
        *,
        article_id: str,
        title: str,
        author: str,
        locale: str | None = None,
        body: str | None = None,
    ) -> Draft:
        """A draft of a new article whose example questions are the group's messages."""
        locale = locale or self.kb.source_locale
        if await self.kb.get_published(article_id, locale) is not None:
            raise KBError(
                f"article '{article_id}' ({locale}) already exists; add the questions to it instead "
                "or choose another id"
            )
        questions = await self._texts(question_ids)
        draft = await self.kb.save_draft(
            article_id,
            locale,
            title=title,
            body=body or PLACEHOLDER_BODY,
            questions=[q.text for q in questions],
            author=author,
        )
        await self.kb.resolve_unanswered(question_ids, article_id)
        return draft

    async def add_to_article(
        self, question_ids: list[int], *, article_id: str, author: str, locale: str | None = None,
        publish: bool = False,
    ) -> Draft | None:
        """Add the group's messages as example questions of an existing article (as a draft, or
        published at once with `publish=True`, which returns None)."""
        locale = locale or self.kb.source_locale
        base: Any = await self.kb.get_draft(article_id, locale) or await self.kb.get_published(article_id, locale)
        if base is None:
            raise KBError(f"article '{article_id}' has no '{locale}' version to add questions to")
        questions = await self._texts(question_ids)
        draft = await self.kb.save_draft(
            article_id,
            locale,
            title=base.title,
            body=base.body,
            questions=[*base.questions, *(q.text for q in questions)],
            tags=list(base.tags),
            author=author,
        )
        await self.kb.resolve_unanswered(question_ids, article_id)
        if publish:
            await self.kb.publish_draft(article_id, locale, author, note="example questions from unanswered")
            return None
        return draft
