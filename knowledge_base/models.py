"""Knowledge-base tables (own declarative base): articles, published versions, drafts, unanswered questions.

Portable across SQLite and PostgreSQL: plain types and sqlalchemy.JSON only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class KBBase(DeclarativeBase):
    """Declarative base of the knowledge-base tables (kept apart so packages migrate independently)."""


class KBArticle(KBBase):
    """An article across its locales; `archived` hides it from the bot without losing history."""

    __tablename__ = "kb_articles"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    archived: Mapped[bool] = mapped_column(default=False)


class KBArticleVersion(KBBase):
    """One published version of an article in one locale (immutable once written)."""

    __tablename__ = "kb_article_versions"
    __table_args__ = (UniqueConstraint("article_id", "locale", "version", name="uq_kb_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("kb_articles.id"), index=True)
    locale: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    questions: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    diff: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(String(500), default="")
    # The KB-wide publish counter at the time of this version: the index version it first appears in.
    kb_version: Mapped[int] = mapped_column(Integer, index=True)


class KBDraft(KBBase):
    """Work in progress on one article/locale; the bot never serves it."""

    __tablename__ = "kb_drafts"
    __table_args__ = (UniqueConstraint("article_id", "locale", name="uq_kb_draft"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(String(80), index=True)
    locale: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    questions: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    author: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The published version this draft started from (None for a new article/translation).
    base_version: Mapped[int | None] = mapped_column(Integer, nullable=True)


class KBUnanswered(KBBase):
    """A shopper message the bot could not answer confidently: the content owners' review list."""

    __tablename__ = "kb_unanswered"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(16), default="")
    channel: Mapped[str] = mapped_column(String(40), default="")
    conversation_id: Mapped[str] = mapped_column(String(100), default="")
    reason: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    resolved_article_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class KBMeta(KBBase):
    """Small key/value state; `kb_version` is the publish counter every index is labelled with."""

    __tablename__ = "kb_meta"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)
