"""Knowledge-base REST API and the KB editor page: articles, drafts, publish, versions, diff, rollback,
"try it" search, and the groups of questions the bot could not answer.

Content owners (and admins) edit; agents and leads read.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from bot.auth import StaffUser, require
from bot.deps import ContentOwner
from knowledge_base.articles import ArticleFormatError
from knowledge_base.gaps import GapMiner
from knowledge_base.search import KBSearcher
from knowledge_base.service import KBError, KnowledgeBase, NotFound
from knowledge_base.sync import KBIndexSync

router = APIRouter(tags=["kb"])
TEMPLATE = Path(__file__).resolve().parent.parent / "web" / "templates" / "kb_editor.html"
Reader = Annotated[StaffUser, Depends(require("agent", "lead", "content_owner"))]
ID = r"^[a-z0-9][a-z0-9-]{0,79}$"
LOCALE = r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?$"


class DraftBody(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=50_000)
    questions: list[str] = Field(default_factory=list, max_length=500)
    tags: list[str] = Field(default_factory=list, max_length=50)


class PublishBody(BaseModel):
    note: str = Field(default="", max_length=500)


class RollbackBody(BaseModel):
    version: int = Field(ge=1)


class ArchiveBody(BaseModel):
    archived: bool = Field(default=True, description="false brings an archived article back")


class SearchBody(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    locale: str | None = Field(default=None, pattern=LOCALE, description="the shopper's language; detected if absent")
    k: int = Field(default=5, ge=1, le=20)


class GroupToArticleBody(BaseModel):
    question_ids: list[int] = Field(min_length=1, max_length=5000)
    article_id: str = Field(pattern=ID)
    title: str = Field(min_length=1, max_length=300)
    locale: str | None = Field(default=None, pattern=LOCALE)


class GroupToQuestionsBody(BaseModel):
    question_ids: list[int] = Field(min_length=1, max_length=5000)
    article_id: str = Field(pattern=ID)
    locale: str | None = Field(default=None, pattern=LOCALE)
    publish: bool = False


class KBParts:
    """The app's knowledge-base service, searcher and cross-process sync (built by bot.runtime)."""

    def __init__(self, kb: KnowledgeBase, searcher: KBSearcher, sync: KBIndexSync | None) -> None:
        self.kb = kb
        self.searcher = searcher
        self.sync = sync

    async def published(self) -> int:
        """After a publish: serve it here and tell every other process; returns the KB version."""
        if self.sync is not None:
            return await self.sync.announce()
        await self.searcher.refresh()
        return self.searcher.version


def kb_parts(request: Request) -> KBParts:
    runtime = getattr(request.app.state, "runtime", None)
    kb = getattr(runtime, "kb_service", None)
    searcher = getattr(runtime, "kb_searcher", None)
    if kb is None or searcher is None:
        raise HTTPException(503, "the knowledge base is not loaded; check the server log for the reason")
    return KBParts(kb, searcher, getattr(runtime, "kb_sync", None))


Parts = Annotated[KBParts, Depends(kb_parts)]


def _fail(exc: Exception) -> HTTPException:
    if isinstance(exc, NotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, ArticleFormatError):
        return HTTPException(422, {"message": str(exc), "problems": [str(p) for p in exc.problems]})
    return HTTPException(400, str(exc))


@router.get("/kb", response_class=HTMLResponse, include_in_schema=False)
async def editor_page() -> HTMLResponse:
    return HTMLResponse(TEMPLATE.read_text(encoding="utf-8"))


@router.get("/api/v1/kb/articles")
async def list_articles(parts: Parts, _user: Reader, q: str = "", archived: bool = False) -> dict[str, Any]:
    """Every article with its translation states (source / current / outdated / missing)."""
    summaries = await parts.kb.list_articles(include_archived=archived)
    needle = q.strip().casefold()
    if needle:
        summaries = [s for s in summaries if needle in s.article_id or needle in s.title.casefold()
                     or any(needle in t.casefold() for t in s.tags)]
    locales = sorted({loc for s in summaries for loc in s.translations},
                     key=lambda loc: (loc != parts.kb.source_locale, loc))
    return {"source_locale": parts.kb.source_locale, "locales": locales, "kb_version": parts.searcher.version,
            "articles": [s.to_dict() for s in summaries]}


@router.get("/api/v1/kb/articles/{article_id}")
async def get_article(article_id: str, parts: Parts, _user: Reader) -> dict[str, Any]:
    """All locales of one article side by side: published version, draft and translation state."""
    try:
        states = await parts.kb.translations(article_id)
    except KBError as exc:
        raise _fail(exc) from exc
    out: dict[str, Any] = {"article_id": article_id, "source_locale": parts.kb.source_locale, "locales": {}}
    for locale, state in states.items():
        published = await parts.kb.get_published(article_id, locale)
        draft = await parts.kb.get_draft(article_id, locale)
        out["locales"][locale] = {
            "state": state.state,
            "published": published.to_dict() if published else None,
            "draft": draft.to_dict() if draft else None,
        }
    return out


@router.put("/api/v1/kb/articles/{article_id}/{locale}/draft")
async def save_draft(article_id: str, locale: str, body: DraftBody, parts: Parts, user: ContentOwner) -> dict[str, Any]:
    """Save work in progress; the bot keeps answering with the published version."""
    try:
        draft = await parts.kb.save_draft(article_id, locale, title=body.title, body=body.body,
                                          questions=body.questions, tags=body.tags, author=user.login)
    except KBError as exc:
        raise _fail(exc) from exc
    return draft.to_dict()


@router.delete("/api/v1/kb/articles/{article_id}/{locale}/draft", status_code=204)
async def discard_draft(article_id: str, locale: str, parts: Parts, _user: ContentOwner) -> None:
    if not await parts.kb.discard_draft(article_id, locale):
        raise HTTPException(404, f"there is no draft of '{article_id}' ({locale})")


@router.post("/api/v1/kb/articles/{article_id}/{locale}/publish")
async def publish(article_id: str, locale: str, body: PublishBody, parts: Parts, user: ContentOwner) -> dict[str, Any]:
    """Publish the draft as a new version; every process answers with it once this returns."""
    try:
        version = await parts.kb.publish_draft(article_id, locale, author=user.login, note=body.note)
    except KBError as exc:
        raise _fail(exc) from exc
    kb_version = await parts.published()
    return {**version.to_dict(), "serving_kb_version": kb_version}


@router.get("/api/v1/kb/articles/{article_id}/{locale}/versions")
async def versions(article_id: str, locale: str, parts: Parts, _user: Reader) -> dict[str, Any]:
    history = await parts.kb.history(article_id, locale)
    if not history:
        raise HTTPException(404, f"article '{article_id}' has no published '{locale}' version")
    return {"article_id": article_id, "locale": locale, "versions": [v.to_dict() for v in history]}


@router.get("/api/v1/kb/articles/{article_id}/{locale}/versions/{version}")
async def version(article_id: str, locale: str, version: int, parts: Parts, _user: Reader) -> dict[str, Any]:
    try:
        return (await parts.kb.get_version(article_id, locale, version)).to_dict()
    except KBError as exc:
        raise _fail(exc) from exc


@router.get("/api/v1/kb/articles/{article_id}/{locale}/diff")
async def diff(article_id: str, locale: str, parts: Parts, _user: Reader,
               from_version: Annotated[int, Query(alias="from", ge=1)],
               to_version: Annotated[int, Query(alias="to", ge=1)]) -> dict[str, Any]:
    try:
        text = await parts.kb.diff(article_id, locale, from_version, to_version)
    except KBError as exc:
        raise _fail(exc) from exc
    return {"article_id": article_id, "locale": locale, "from": from_version, "to": to_version, "diff": text}


@router.post("/api/v1/kb/articles/{article_id}/{locale}/rollback")
async def rollback(article_id: str, locale: str, body: RollbackBody, parts: Parts, user: ContentOwner) -> dict[str, Any]:
    """Publish a copy of an old version as the newest one."""
    try:
        restored = await parts.kb.rollback(article_id, locale, body.version, author=user.login)
    except KBError as exc:
        raise _fail(exc) from exc
    kb_version = await parts.published()
    return {**restored.to_dict(), "serving_kb_version": kb_version}


@router.post("/api/v1/kb/articles/{article_id}/archive")
async def archive(article_id: str, parts: Parts, _user: ContentOwner, body: ArchiveBody | None = None) -> dict[str, Any]:
    """Take an article (every locale) out of the bot's answers, or bring it back with `{"archived": false}`."""
    archived = body.archived if body is not None else True
    try:
        await parts.kb.archive(article_id, archived=archived)
    except KBError as exc:
        raise _fail(exc) from exc
    kb_version = await parts.published()
    return {"article_id": article_id, "archived": archived, "serving_kb_version": kb_version}


def _language_id(request: Request) -> Any:
    state = request.app.state
    ident = getattr(state, "kb_language_id", None)
    if ident is None:
        from nlu.language import LanguageIdentifier

        settings = state.settings
        ident = LanguageIdentifier(settings.languages, fallback=settings.fallback_language)
        state.kb_language_id = ident
    return ident


@router.post("/api/v1/kb/search")
async def try_it(body: SearchBody, request: Request, parts: Parts, _user: Reader) -> dict[str, Any]:
    """What the bot would answer: the article, its confidence, and the runner-ups."""
    locale = body.locale
    detected = None
    if locale is None:
        ident = _language_id(request)
        detected, _score = await asyncio.to_thread(ident.detect, body.query)
        locale = detected
    result = parts.searcher.search(body.query, locale, k=body.k)
    return {
        "query": body.query,
        "locale": locale,
        "detected_locale": detected,
        "confident": result.confident,
        "ambiguous": result.ambiguous,
        "confidence": result.confidence,
        "threshold": result.threshold,
        "margin": result.margin,
        "served_locale": result.served_locale,
        "fallback_used": result.fallback_used,
        "kb_version": result.kb_version,
        "candidates": [c.to_dict() for c in result.candidates],
        "trace": result.to_trace(),
    }


@router.get("/api/v1/kb/unanswered/groups")
async def unanswered_groups(parts: Parts, _user: Reader, min_count: int = Query(default=1, ge=1)) -> dict[str, Any]:
    """Open unanswered questions grouped by meaning across languages, biggest group first."""
    miner = GapMiner(parts.kb, searcher=parts.searcher)
    groups = await miner.groups(min_count=min_count)
    return {"groups": [g.to_dict() for g in groups]}


@router.post("/api/v1/kb/unanswered/new-article")
async def group_to_article(body: GroupToArticleBody, parts: Parts, user: ContentOwner) -> dict[str, Any]:
    """A draft of a new article whose example questions are the group's messages."""
    miner = GapMiner(parts.kb, searcher=parts.searcher)
    try:
        draft = await miner.new_article_from_group(body.question_ids, article_id=body.article_id, title=body.title,
                                                   author=user.login, locale=body.locale)
    except KBError as exc:
        raise _fail(exc) from exc
    return draft.to_dict()


@router.post("/api/v1/kb/unanswered/add-to-article")
async def group_to_questions(body: GroupToQuestionsBody, parts: Parts, user: ContentOwner) -> dict[str, Any]:
    """Add the group's messages as example questions of an article (draft, or published at once)."""
    miner = GapMiner(parts.kb, searcher=parts.searcher)
    try:
        draft = await miner.add_to_article(body.question_ids, article_id=body.article_id, author=user.login,
                                           locale=body.locale, publish=body.publish)
    except KBError as exc:
        raise _fail(exc) from exc
    if draft is None:
        return {"published": True, "serving_kb_version": await parts.published()}
    return {"published": False, "draft": draft.to_dict()}


@router.post("/api/v1/kb/import")
async def import_project_kb(request: Request, parts: Parts, user: ContentOwner) -> dict[str, Any]:
    """Import the project's kb/ folder (all or nothing; errors name file and line)."""
    folder = request.app.state.settings.project / "kb"
    try:
        report = await parts.kb.import_folder(folder, author=user.login)
    except (KBError, ArticleFormatError, FileNotFoundError) as exc:
        raise _fail(exc) from exc
    if report.kb_version is not None:
        await parts.published()
    return {"created": len(report.created), "updated": len(report.updated), "unchanged": len(report.unchanged),
            "kb_version": report.kb_version}


@router.post("/api/v1/kb/export")
async def export_project_kb(request: Request, parts: Parts, _user: ContentOwner) -> dict[str, Any]:
    """Write the published articles back into the project's kb/ folder, ready to commit to git."""
    folder = request.app.state.settings.project / "kb"
    written = await parts.kb.export_folder(folder)
    return {"written": len(written), "folder": str(folder)}
