"""The knowledge-base service: import/export, drafts, publishing with versions and diffs, rollback,
translation status and the log of questions the bot could not answer.

Every publish bumps the KB-wide counter `kb_version`; search indexes are labelled with it, so every
worker process can tell whether it serves the newest knowledge base.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from knowledge_base.articles import (
    ARTICLE_ID,
    LOCALE,
    Article,
    ArticleFormatError,
    ArticleProblem,
    load_folder,
    write_folder,
)
from knowledge_base.models import KBArticle, KBArticleVersion, KBDraft, KBMeta, KBUnanswered, utcnow

# unanswered_part: one question of a message that asked several, the others answered.
UnansweredReason = Literal["fallback", "clarify", "low_confidence", "unanswered_part"]
UNANSWERED_REASONS: tuple[str, ...] = ("fallback", "clarify", "low_confidence", "unanswered_part")
TranslationState = Literal["source", "current", "outdated", "missing"]


class KBError(ValueError):
    """A request the knowledge base cannot carry out; the message says what to do instead."""


class _NothingChanged(Exception):
    """Internal: aborts an import transaction that would change nothing."""


class NotFound(KBError):
    """The article, locale, version or draft asked for does not exist."""


@dataclass(frozen=True)
class PublishedArticle:
    """One published version of an article in one locale: what the bot serves and cites."""

    article_id: str
    locale: str
    version: int
    title: str
    body: str
    questions: tuple[str, ...]
    tags: tuple[str, ...]
    author: str
    created_at: datetime
    kb_version: int
    diff: str = ""
    note: str = ""

    def to_article(self) -> Article:
        return Article(
            id=self.article_id,
            locale=self.locale,
            title=self.title,
            body=self.body,
            questions=list(self.questions),
            tags=list(self.tags),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "article_id": self.article_id,
            "locale": self.locale,
            "version": self.version,
            "title": self.title,
            "body": self.body,
            "questions": list(self.questions),
            "tags": list(self.tags),
            "author": self.author,
            "created_at": self.created_at.isoformat(),
            "kb_version": self.kb_version,
            "diff": self.diff,
            "note": self.note,
        }


@dataclass(frozen=True)
class Draft:
    """Unpublished edits of one article/locale."""

    article_id: str
    locale: str
    title: str
    body: str
    questions: tuple[str, ...]
    tags: tuple[str, ...]
    author: str
    updated_at: datetime
    base_version: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "article_id": self.article_id,
            "locale": self.locale,
            "title": self.title,
            "body": self.body,
            "questions": list(self.questions),
            "tags": list(self.tags),
            "author": self.author,
            "updated_at": self.updated_at.isoformat(),
            "base_version": self.base_version,
        }


@dataclass(frozen=True)
class TranslationStatus:
    """Where one locale of an article stands against the source locale."""

    locale: str
    state: TranslationState
    version: int | None
    has_draft: bool


@dataclass
class ArticleSummary:
    """One row of the editor's article list."""

    article_id: str
    title: str
    tags: list[str]
    archived: bool
    translations: dict[str, TranslationStatus] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "article_id": self.article_id,
            "title": self.title,
            "tags": self.tags,
            "archived": self.archived,
            "translations": {
                loc: {"state": t.state, "version": t.version, "has_draft": t.has_draft}
                for loc, t in self.translations.items()
            },
        }


@dataclass(frozen=True)
class ImportReport:
    """What an import changed; `kb_version` is None when nothing changed."""

    created: list[tuple[str, str]]
    updated: list[tuple[str, str]]
    unchanged: list[tuple[str, str]]
    kb_version: int | None


@dataclass(frozen=True)
class UnansweredQuestion:
    id: int
    text: str
    language: str
    channel: str
    conversation_id: str
    reason: str
    created_at: datetime
    resolved_article_id: str | None


def render_for_diff(title: str, questions: Iterable[str], body: str, tags: Iterable[str] = ()) -> list[str]:
    """The text a diff is computed on: the same shape as the Markdown file, so it reads familiar."""
    lines = [f"title: {title}"]
    if tags:
        lines.append("tags: " + ", ".join(tags))
    lines.append("questions:")
    lines.extend(f"- {q}" for q in questions)
    lines.append("")
    lines.extend(body.strip().splitlines())
    return [line + "\n" for line in lines]


def unified_diff(
    old: PublishedArticle | None, title: str, questions: Iterable[str], body: str, tags: Iterable[str], label: str
) -> str:
    before = render_for_diff(old.title, old.questions, old.body, old.tags) if old else []
    after = render_for_diff(title, list(questions), body, list(tags))
    from_name = f"{label} v{old.version}" if old else f"{label} (new)"
    to_name = f"{label} v{old.version + 1 if old else 1}"
    return "".join(difflib.unified_diff(before, after, fromfile=from_name, tofile=to_name))


def _published(row: KBArticleVersion) -> PublishedArticle:
    return PublishedArticle(
        article_id=row.article_id,
        locale=row.locale,
        version=row.version,
        title=row.title,
        body=row.body,
        questions=tuple(row.questions or ()),
        tags=tuple(row.tags or ()),
        author=row.author,
        created_at=row.created_at,
        kb_version=row.kb_version,
        diff=row.diff or "",
        note=row.note or "",
    )


def _draft(row: KBDraft) -> Draft:
    return Draft(
        article_id=row.article_id,
        locale=row.locale,
        title=row.title,
        body=row.body,
        questions=tuple(row.questions or ()),
        tags=tuple(row.tags or ()),
        author=row.author,
        updated_at=row.updated_at,
        base_version=row.base_version,
    )


def _clean_questions(questions: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for q in questions:
        q = " ".join(str(q).split())
        if q and q.casefold() not in seen:
            seen.add(q.casefold())
            out.append(q)
    return out


class KnowledgeBase:
    """Articles, versions and drafts in the database. `source_locale` is the language translations
    are made from and the fallback the bot answers in when a translation is missing."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], source_locale: str = "en") -> None:
        if not LOCALE.match(source_locale):
            raise ValueError(f"source_locale {source_locale!r} is not a language code like 'en'")
        self._sessions = sessions
        self.source_locale = source_locale

    # ----------------------------------------------------------------- reading

    async def kb_version(self) -> int:
        """The KB-wide publish counter (0 for an empty knowledge base)."""
        async with self._sessions() as session:
            value = await session.scalar(select(KBMeta.value).where(KBMeta.key == "kb_version"))
            return int(value or 0)

    @staticmethod
    def _latest_query() -> Any:
        latest = (
            select(
                KBArticleVersion.article_id.label("aid"),
                KBArticleVersion.locale.label("loc"),
                func.max(KBArticleVersion.version).label("ver"),
            )
            .group_by(KBArticleVersion.article_id, KBArticleVersion.locale)
            .subquery()
        )
        return (
            select(KBArticleVersion)
            .join(
                latest,
                and_(
                    KBArticleVersion.article_id == latest.c.aid,
                    KBArticleVersion.locale == latest.c.loc,
                    KBArticleVersion.version == latest.c.ver,
                ),
            )
            .join(KBArticle, KBArticle.id == KBArticleVersion.article_id)
        )

    async def published_keys(self) -> dict[tuple[str, str], int]:
        """(article id, locale) -> the version the bot serves, for every non-archived article."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(KBArticleVersion.article_id, KBArticleVersion.locale, func.max(KBArticleVersion.version))
                .join(KBArticle, KBArticle.id == KBArticleVersion.article_id)
                .where(KBArticle.archived.is_(False))
                .group_by(KBArticleVersion.article_id, KBArticleVersion.locale)
            )
            return {(aid, loc): int(ver) for aid, loc, ver in rows}

    async def latest_authors(self) -> tuple[dict[tuple[str, str], str], set[str]]:
        """Who wrote the latest version of every article/locale (archived ones too), and the archived ids."""
        async with self._sessions() as session:
            rows = (await session.execute(
                self._latest_query().with_only_columns(
                    KBArticleVersion.article_id, KBArticleVersion.locale, KBArticleVersion.author, KBArticle.archived)
            )).all()
        return ({(aid, loc): author for aid, loc, author, _ in rows},
                {aid for aid, _, _, archived in rows if archived})

    async def published_articles(
        self, keys: Iterable[tuple[str, str, int]] | None = None
    ) -> list[PublishedArticle]:
        """What the bot serves: the latest version of each article/locale (or exactly `keys`)."""
        async with self._sessions() as session:
            if keys is None:
                query = self._latest_query().where(KBArticle.archived.is_(False))
                rows = (await session.scalars(query)).all()
                return [_published(r) for r in rows]
            wanted = list(keys)
            out: list[PublishedArticle] = []
            # Chunked: a big publish can touch thousands of rows and SQLite caps bound parameters.
            for start in range(0, len(wanted), 300):
                chunk = wanted[start : start + 300]
                ids = {k[0] for k in chunk}
                rows = (
                    await session.scalars(select(KBArticleVersion).where(KBArticleVersion.article_id.in_(ids)))
                ).all()
                want = set(chunk)
                out.extend(_published(r) for r in rows if (r.article_id, r.locale, r.version) in want)
            return out

    async def get_published(self, article_id: str, locale: str) -> PublishedArticle | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(KBArticleVersion)
                .where(KBArticleVersion.article_id == article_id, KBArticleVersion.locale == locale)
                .order_by(KBArticleVersion.version.desc())
                .limit(1)
            )
            return _published(row) if row else None

    async def get_version(self, article_id: str, locale: str, version: int) -> PublishedArticle:
        async with self._sessions() as session:
            row = await session.scalar(
                select(KBArticleVersion).where(
                    KBArticleVersion.article_id == article_id,
                    KBArticleVersion.locale == locale,
                    KBArticleVersion.version == version,
                )
            )
            if row is None:
                raise NotFound(f"article '{article_id}' ({locale}) has no version {version}; see its history")
            return _published(row)

    async def history(self, article_id: str, locale: str) -> list[PublishedArticle]:
        """All published versions, newest first."""
        async with self._sessions() as session:
            rows = (
                await session.scalars(
                    select(KBArticleVersion)
                    .where(KBArticleVersion.article_id == article_id, KBArticleVersion.locale == locale)
                    .order_by(KBArticleVersion.version.desc())
                )
            ).all()
            return [_published(r) for r in rows]

    async def diff(self, article_id: str, locale: str, from_version: int, to_version: int) -> str:
        """Unified diff between two published versions of one article/locale."""
        old = await self.get_version(article_id, locale, from_version)
        new = await self.get_version(article_id, locale, to_version)
        label = f"{article_id}.{locale}"
        return "".join(
            difflib.unified_diff(
                render_for_diff(old.title, old.questions, old.body, old.tags),
                render_for_diff(new.title, new.questions, new.body, new.tags),
                fromfile=f"{label} v{from_version}",
                tofile=f"{label} v{to_version}",
            )
        )

    async def translations(self, article_id: str) -> dict[str, TranslationStatus]:
        summaries = await self.list_articles(article_ids=[article_id])
        if not summaries:
            raise NotFound(f"there is no article '{article_id}'")
        return summaries[0].translations

    async def list_articles(
        self, locales: Iterable[str] = (), article_ids: Iterable[str] | None = None, include_archived: bool = False
    ) -> list[ArticleSummary]:
        """Every article with the state of each locale: source, current, outdated or missing.

        A translation is outdated when the source locale was published after the translation's last
        publish (compared on the KB-wide publish counter, so equal clocks cannot hide a change).
        """
        async with self._sessions() as session:
            query = self._latest_query()
            ids = list(article_ids) if article_ids is not None else None
            if ids is not None:
                query = query.where(KBArticleVersion.article_id.in_(ids))
            latest = (await session.scalars(query)).all()
            arts_q = select(KBArticle)
            if ids is not None:
                arts_q = arts_q.where(KBArticle.id.in_(ids))
            articles = {a.id: a for a in (await session.scalars(arts_q)).all()}
            drafts_q = select(KBDraft.article_id, KBDraft.locale, KBDraft.title)
            if ids is not None:
                drafts_q = drafts_q.where(KBDraft.article_id.in_(ids))
            drafts = (await session.execute(drafts_q)).all()
        by_article: dict[str, dict[str, KBArticleVersion]] = {}
        for row in latest:
            by_article.setdefault(row.article_id, {})[row.locale] = row
        draft_keys = {(d[0], d[1]) for d in drafts}
        draft_titles = {d[0]: d[2] for d in drafts}
        all_locales = set(locales) | {self.source_locale} | {r.locale for r in latest} | {d[1] for d in drafts}
        out = []
        for aid in sorted(set(articles) | {d[0] for d in drafts}):
            art = articles.get(aid)
            if art is not None and art.archived and not include_archived:
                continue
            versions = by_article.get(aid, {})
            source = versions.get(self.source_locale)
            title_row = source or next(iter(versions.values()), None)
            summary = ArticleSummary(
                article_id=aid,
                title=title_row.title if title_row else draft_titles.get(aid, aid),
                tags=list(title_row.tags or []) if title_row else [],
                archived=bool(art and art.archived),
            )
            for loc in sorted(all_locales):
                row = versions.get(loc)
                state: TranslationState
                if row is None:
                    state = "missing"
                elif loc == self.source_locale:
                    state = "source"
                elif source is not None and source.kb_version > row.kb_version:
                    state = "outdated"
                else:
                    state = "current"
                summary.translations[loc] = TranslationStatus(
                    locale=loc, state=state, version=row.version if row else None, has_draft=(aid, loc) in draft_keys
                )
            out.append(summary)
        return out

    # ----------------------------------------------------------------- drafts

    async def get_draft(self, article_id: str, locale: str) -> Draft | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(KBDraft).where(KBDraft.article_id == article_id, KBDraft.locale == locale)
            )
            return _draft(row) if row else None

    async def save_draft(
        self,
        article_id: str,
        locale: str,
        *,
        title: str,
        body: str,
        questions: Iterable[str] = (),
        tags: Iterable[str] = (),
        author: str,
    ) -> Draft:
        """Create or replace the draft of one article/locale; the bot keeps serving the published one."""
        self._check_ids(article_id, locale)
        if not title.strip():
            raise KBError("the title is empty; give the article a title")
        if not body.strip():
            raise KBError("the answer text is empty; write the answer the bot should give")
        async with self._sessions() as session, session.begin():
            current = await session.scalar(
                select(func.max(KBArticleVersion.version)).where(
                    KBArticleVersion.article_id == article_id, KBArticleVersion.locale == locale
                )
            )
            row = await session.scalar(
                select(KBDraft).where(KBDraft.article_id == article_id, KBDraft.locale == locale)
            )
            if row is None:
                row = KBDraft(article_id=article_id, locale=locale, base_version=current)
                session.add(row)
            row.title = title.strip()
            row.body = body.strip()
            row.questions = _clean_questions(questions)
            row.tags = _clean_questions(tags)
            row.author = author
            row.updated_at = utcnow()
            await session.flush()
            return _draft(row)

    async def discard_draft(self, article_id: str, locale: str) -> bool:
        async with self._sessions() as session, session.begin():
            row = await session.scalar(
                select(KBDraft).where(KBDraft.article_id == article_id, KBDraft.locale == locale)
            )
            if row is None:
                return False
            await session.delete(row)
            return True

    # ----------------------------------------------------------------- publishing

    @staticmethod
    def _check_ids(article_id: str, locale: str) -> None:
        if not ARTICLE_ID.match(article_id):
            raise KBError(f"article id '{article_id}' must be lowercase letters, digits and '-' (e.g. shipping-times)")
        if not LOCALE.match(locale):
            raise KBError(f"locale '{locale}' is not a language code like 'en' or 'pt-BR'")

    @staticmethod
    async def _bump(session: AsyncSession) -> int:
        meta = await session.scalar(select(KBMeta).where(KBMeta.key == "kb_version").with_for_update())
        if meta is None:
            meta = KBMeta(key="kb_version", value=0)
            session.add(meta)
            await session.flush()
        # An UPDATE ... value + 1 keeps concurrent publishers from reusing a number on PostgreSQL.
        await session.execute(update(KBMeta).where(KBMeta.key == "kb_version").values(value=KBMeta.value + 1))
        await session.refresh(meta)
        return int(meta.value)

    async def _write_version(
        self,
        session: AsyncSession,
        kb_version: int,
        article: Article,
        author: str,
        note: str = "",
    ) -> PublishedArticle | None:
        """Append a version unless it is identical to the current one; None when nothing changed."""
        if await session.get(KBArticle, article.id) is None:
            session.add(KBArticle(id=article.id))
            await session.flush()
        prev_row = await session.scalar(
            select(KBArticleVersion)
            .where(KBArticleVersion.article_id == article.id, KBArticleVersion.locale == article.locale)
            .order_by(KBArticleVersion.version.desc())
            .limit(1)
        )
        prev = _published(prev_row) if prev_row else None
        questions = _clean_questions(article.questions)
        tags = _clean_questions(article.tags)
        if (
            prev is not None
            and note == ""
            and (prev.title, prev.body.strip(), list(prev.questions), list(prev.tags))
            == (article.title.strip(), article.body.strip(), questions, tags)
        ):
            return None
        label = f"{article.id}.{article.locale}"
        row = KBArticleVersion(
            article_id=article.id,
            locale=article.locale,
            version=(prev.version + 1) if prev else 1,
            title=article.title.strip(),
            body=article.body.strip(),
            questions=questions,
            tags=tags,
            author=author,
            created_at=utcnow(),
            diff=unified_diff(prev, article.title.strip(), questions, article.body.strip(), tags, label),
            note=note,
            kb_version=kb_version,
        )
        session.add(row)
        await session.flush()
        return _published(row)

    async def publish_article(self, article: Article, author: str, note: str = "") -> PublishedArticle:
        """Publish content directly (a new version even when unchanged only if a note says why)."""
        self._check_ids(article.id, article.locale)
        async with self._sessions() as session, session.begin():
            kb_version = await self._bump(session)
            version = await self._write_version(session, kb_version, article, author, note)
            if version is None:
                raise KBError(
                    f"article '{article.id}' ({article.locale}) is unchanged; nothing to publish"
                )
            await self._restore(session, article.id)
            return version

    async def publish_draft(self, article_id: str, locale: str, author: str, note: str = "") -> PublishedArticle:
        """Publish the draft as a new version and delete the draft, in one transaction."""
        async with self._sessions() as session, session.begin():
            draft = await session.scalar(
                select(KBDraft).where(KBDraft.article_id == article_id, KBDraft.locale == locale)
            )
            if draft is None:
                raise NotFound(f"there is no draft of '{article_id}' ({locale}) to publish; save one first")
            article = Article(
                id=article_id,
                locale=locale,
                title=draft.title,
                body=draft.body,
                questions=list(draft.questions or []),
                tags=list(draft.tags or []),
            )
            kb_version = await self._bump(session)
            version = await self._write_version(session, kb_version, article, author, note)
            await session.delete(draft)
            if version is None:
                raise KBError(f"the draft of '{article_id}' ({locale}) is the same as the published version")
            await self._restore(session, article_id)
            return version

    async def rollback(self, article_id: str, locale: str, to_version: int, author: str) -> PublishedArticle:
        """Publish a copy of an old version as the newest one (history is never rewritten)."""
        old = await self.get_version(article_id, locale, to_version)
        async with self._sessions() as session, session.begin():
            kb_version = await self._bump(session)
            version = await self._write_version(
                session, kb_version, old.to_article(), author, note=f"rollback to v{to_version}"
            )
            assert version is not None  # a note always forces a new version
            return version

    async def archive(self, article_id: str, archived: bool = True) -> int:
        """Hide an article (all locales) from the bot, or bring it back; returns the new kb_version."""
        async with self._sessions() as session, session.begin():
            art = await session.get(KBArticle, article_id)
            if art is None:
                raise NotFound(f"there is no article '{article_id}'")
            art.archived = archived
            return await self._bump(session)

    @staticmethod
    async def _restore(session: AsyncSession, article_id: str) -> None:
        art = await session.get(KBArticle, article_id)
        if art is not None and art.archived:
            art.archived = False

    # ----------------------------------------------------------------- import / export

    async def import_articles(self, articles: list[Article], author: str) -> ImportReport:
        """Publish changed articles in one transaction and one kb_version; unchanged ones are skipped."""
        problems = []
        seen: set[tuple[str, str]] = set()
        for a in articles:
            if (a.id, a.locale) in seen:
                problems.append(ArticleProblem(a.path or a.id, 1, f"'{a.id}' ({a.locale}) appears twice"))
            seen.add((a.id, a.locale))
        if problems:
            raise ArticleFormatError(problems)
        created: list[tuple[str, str]] = []
        updated: list[tuple[str, str]] = []
        unchanged: list[tuple[str, str]] = []
        try:
            async with self._sessions() as session, session.begin():
                kb_version = await self._bump(session)
                for article in articles:
                    self._check_ids(article.id, article.locale)
                    key = (article.id, article.locale)
                    version = await self._write_version(session, kb_version, article, author)
                    if version is None:
                        unchanged.append(key)
                    elif version.version == 1:
                        created.append(key)
                    else:
                        updated.append(key)
                if not created and not updated:
                    # Nothing changed: roll back so the counter stays and no process rebuilds for nothing.
                    raise _NothingChanged
        except _NothingChanged:
            return ImportReport(created, updated, unchanged, None)
        return ImportReport(created, updated, unchanged, kb_version)

    async def import_folder(self, folder: str | Path, author: str) -> ImportReport:
        """Parse every file first (raising ArticleFormatError with file:line), then import all or nothing."""
        return await self.import_articles(load_folder(folder), author)

    async def export_folder(self, folder: str | Path) -> list[Path]:
        """Write the published articles back as `<id>.<locale>.md` (drafts are not exported)."""
        published = await self.published_articles()
        return write_folder([p.to_article() for p in published], folder)

    # ----------------------------------------------------------------- unanswered

    async def log_unanswered(
        self,
        text: str,
        *,
        reason: str,
        language: str = "",
        channel: str = "",
        conversation_id: str = "",
        at: datetime | None = None,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Keep a message the bot had no confident answer for; returns its id."""
        if reason not in UNANSWERED_REASONS:
            raise KBError(f"reason {reason!r} must be one of {', '.join(UNANSWERED_REASONS)}")
        if not text.strip():
            raise KBError("an empty message cannot be logged as unanswered")
        async with self._sessions() as session, session.begin():
            row = KBUnanswered(
                text=text.strip(),
                language=language,
                channel=channel,
                conversation_id=conversation_id,
                reason=reason,
                created_at=at or utcnow(),
                extra=extra or {},
            )
            session.add(row)
            await session.flush()
            return int(row.id)

    async def unanswered(
        self, since: datetime | None = None, include_resolved: bool = False, ids: Iterable[int] | None = None
    ) -> list[UnansweredQuestion]:
        async with self._sessions() as session:
            query = select(KBUnanswered).order_by(KBUnanswered.created_at, KBUnanswered.id)
            if since is not None:
                query = query.where(KBUnanswered.created_at >= since)
            if not include_resolved:
                query = query.where(KBUnanswered.resolved_at.is_(None))
            if ids is not None:
                query = query.where(KBUnanswered.id.in_(list(ids)))
            rows = (await session.scalars(query)).all()
            return [
                UnansweredQuestion(
                    id=r.id,
                    text=r.text,
                    language=r.language,
                    channel=r.channel,
                    conversation_id=r.conversation_id,
                    reason=r.reason,
                    created_at=r.created_at,
                    resolved_article_id=r.resolved_article_id,
                )
                for r in rows
            ]

    async def resolve_unanswered(self, ids: Iterable[int], article_id: str) -> int:
        """Mark questions as handled by an article, so they leave the review list."""
        id_list = list(ids)
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(KBUnanswered)
                .where(KBUnanswered.id.in_(id_list), KBUnanswered.resolved_at.is_(None))
                .values(resolved_article_id=article_id, resolved_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)
