"""`nightdesk kb ...`: import, export, check, list, search and archive knowledge-base articles with no
server running, on the database `nightdesk run` uses (DATABASE_URL, else <NIGHTDESK_VAR_DIR>/nightdesk.db).
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from bot.config import Settings
from knowledge_base.articles import Article, ArticleFormatError, load_folder
from knowledge_base.service import KBError, KnowledgeBase

app = typer.Typer(help="Import, export, check and search the knowledge base without a server.",
                  no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)  # no hard wraps: file:line messages stay copyable
out = Console(soft_wrap=True)
T = TypeVar("T")

ProjectOpt = Annotated[Path, typer.Option(
    "--project", "-p", help="the bot project folder (its kb/ is used) or a kb folder itself")]


def _author() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


AuthorOpt = Annotated[str, typer.Option(
    help="who the new versions are recorded as, shown in the history (default cli:<your user name>)")]


def kb_folder(project: Path) -> Path:
    """The kb folder of a project, or the folder itself when it is a kb folder (named kb, or holding
    `<id>.<locale>.md` files and no kb/ subfolder; a project's README.md does not count)."""
    if (project / "kb").is_dir():
        return project / "kb"
    if project.name == "kb" or (project.is_dir() and any(p.name.count(".") >= 2 for p in project.glob("*.md"))):
        return project
    return project / "kb"


def _settings() -> Settings:
    # Only the database and the languages matter here; --project just says where the files are.
    from bot.cli import _settings as settings_or_exit

    settings: Settings = settings_or_exit()
    return settings


def _shown_database(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


@asynccontextmanager
async def open_kb(settings: Settings) -> AsyncIterator[KnowledgeBase]:
    """The knowledge base in the configured database, migrated like `nightdesk run` does."""
    from bot.store.db import Database

    db = Database(settings.effective_database_url)
    try:
        await db.migrate()
        yield KnowledgeBase(db.sessions, source_locale=settings.fallback_language)
    finally:
        await db.dispose()


def _run(settings: Settings, work: Callable[[KnowledgeBase], Awaitable[T]]) -> T:
    async def go() -> T:
        async with open_kb(settings) as kb:
            return await work(kb)

    return asyncio.run(go())


def _print_problems(exc: ArticleFormatError, what: str) -> None:
    for problem in exc.problems:
        console.print(f"{problem}", markup=False, highlight=False)
    console.print(f"[red]{len(exc.problems)} problem(s) in the knowledge-base files;[/red] {what}")


def _load(folder: Path, what: str) -> list[Article]:
    try:
        return load_folder(folder)
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/red] {exc}; pass the project folder or its kb folder with --project")
        raise typer.Exit(2) from None
    except ArticleFormatError as exc:
        _print_problems(exc, what)
        raise typer.Exit(1) from None


@app.command("import")
def import_(project: ProjectOpt = Path("examples/demo-store"), author: AuthorOpt = "") -> None:
    """Import the kb folder: every changed article/locale is published as a new version, all or nothing."""
    folder = kb_folder(project)
    articles = _load(folder, "nothing was imported. Fix them and import again.")
    settings = _settings()
    who = author or _author()
    try:
        report = _run(settings, lambda kb: kb.import_articles(articles, author=who))
    except (KBError, ArticleFormatError) as exc:
        if isinstance(exc, ArticleFormatError):
            _print_problems(exc, "nothing was imported.")
        else:
            console.print(f"[red]error:[/red] {exc}; nothing was imported")
        raise typer.Exit(1) from None
    for label, keys in (("created", report.created), ("updated", report.updated)):
        for aid, locale in keys:
            out.print(f"  {label:<8} {aid} ({locale})", highlight=False)
    summary = (f"{len(report.created)} created, {len(report.updated)} updated, "
               f"{len(report.unchanged)} unchanged from {folder}")
    if report.kb_version is None:
        out.print(f"{summary}; nothing to publish", highlight=False)
        return
    out.print(f"{summary}; KB version {report.kb_version}, by {who}", highlight=False)
    _announce(settings, report.kb_version)


def _announce(settings: Settings, kb_version: int) -> None:
    """Tell running servers about the import when they share a Redis; say what to do otherwise."""
    if not settings.redis_url:
        console.print("[dim]a running embedded `nightdesk run` serves this after a restart (or import with "
                      "POST /api/v1/kb/import)[/dim]")
        return
    from bot.redis_conn import connect
    from knowledge_base.sync import announce_version

    async def go() -> None:
        redis = connect(settings.redis_url)
        try:
            await announce_version(redis, kb_version)
        finally:
            await redis.aclose()

    try:
        asyncio.run(go())
    except OSError as exc:
        console.print(f"[yellow]imported, but Redis at REDIS_URL is not reachable ({exc}); running servers "
                      "serve the import after their next publish or restart[/yellow]")


@app.command()
def export(project: ProjectOpt = Path("examples/demo-store")) -> None:
    """Write the published articles into the kb folder; files that already say the same are left alone."""
    folder = kb_folder(project)
    settings = _settings()

    async def work(kb: KnowledgeBase) -> tuple[int, list[Path]]:
        keys = await kb.published_keys()
        return len(keys), await kb.export_folder(folder)

    total, written = _run(settings, work)
    if total == 0:
        console.print(f"[yellow]the knowledge base in {_shown_database(settings)} is empty: nothing to export. "
                      "Import first, or point DATABASE_URL / NIGHTDESK_VAR_DIR at the server's database[/yellow]")
        return
    for path in written:
        out.print(f"  written  {path}", highlight=False)
    out.print(f"{len(written)} written, {total - len(written)} unchanged in {folder}", highlight=False)


@app.command()
def check(project: ProjectOpt = Path("examples/demo-store")) -> None:
    """Validate the kb folder's files without touching the database (for CI or a git hook)."""
    folder = kb_folder(project)
    articles = _load(folder, "fix them before importing.")
    ids = {a.id for a in articles}
    out.print(f"{len(articles)} article/locale file(s) of {len(ids)} article(s) in {folder}: all valid",
              highlight=False)


@app.command("list")
def list_(
    archived: Annotated[bool, typer.Option("--archived", help="include archived articles")] = False,
) -> None:
    """Every article with the state of each locale (source, current, outdated, missing; * a draft)."""
    settings = _settings()

    async def work(kb: KnowledgeBase) -> tuple[list[Any], int]:
        return await kb.list_articles(include_archived=archived), await kb.kb_version()

    summaries, kb_version = _run(settings, work)
    if not summaries:
        out.print("the knowledge base is empty; import it with `nightdesk kb import --project DIR`")
        return
    source = settings.fallback_language
    locales = sorted({loc for s in summaries for loc in s.translations}, key=lambda loc: (loc != source, loc))
    table = Table(title=f"knowledge base v{kb_version}: {len(summaries)} article(s)")
    table.add_column("article", no_wrap=True)
    table.add_column("title", overflow="ellipsis", no_wrap=True, max_width=40)
    for loc in locales:
        table.add_column(loc)
    for s in summaries:
        cells = []
        for loc in locales:
            t = s.translations.get(loc)
            if t is None or t.state == "missing":
                cell = "[dim]missing[/dim]"
            else:
                cell = f"v{t.version}" + (" [yellow]outdated[/yellow]" if t.state == "outdated" else "")
            if t is not None and t.has_draft:
                cell += " *"
            cells.append(cell)
        name = s.article_id + (" [dim](archived)[/dim]" if s.archived else "")
        table.add_row(name, s.title, *cells)
    out.print(table)


@app.command()
def search(
    question: Annotated[str, typer.Argument(help="a shopper's question, in any language")],
    lang: Annotated[str | None, typer.Option("--lang", "-l", help="the shopper's locale; detected if absent")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=20, help="how many articles to show")] = 3,
) -> None:
    """What the bot would answer from the KB: the article, its confidence against the threshold, runner-ups."""
    from bot.cli import _one_thread_per_process

    _one_thread_per_process()
    settings = _settings()
    detected = None
    if lang is None:
        from nlu.language import LanguageIdentifier

        detected, _score = LanguageIdentifier(settings.languages, fallback=settings.fallback_language).detect(question)
        lang = detected

    async def work(kb: KnowledgeBase) -> Any:
        from bot.runtime import search_settings
        from knowledge_base.search import KBSearcher

        searcher = KBSearcher(kb, settings=search_settings(settings))
        with console.status("building the search index (encoding every article)"):
            await searcher.refresh(force=True)
        return searcher.search(question, lang, k=k)

    result = _run(settings, work)
    best = result.best
    shown_lang = f"{lang} (detected)" if detected else lang
    if best is None:
        out.print(f"the knowledge base is empty (language {shown_lang})")
        raise typer.Exit(1)
    verdict = ("[green]confident[/green]" if result.confident
               else "[yellow]ambiguous: the bot asks which one is meant[/yellow]" if result.ambiguous
               else "[red]not confident: the bot gives the fallback reply[/red]")
    out.print(f"language {shown_lang}; KB version {result.kb_version}")
    out.print(f"[bold]{best.article_id}[/bold] v{best.version} ({best.locale}"
              + (", fallback locale" if best.fallback_used else "") + f"): {best.title}")
    out.print(f"confidence {best.confidence:.3f}, threshold {result.threshold:.3f}, margin {result.margin:.3f}: "
              + verdict)
    out.print(f"matched the {best.matched_kind}: {best.matched}", markup=False, highlight=False)
    out.print()
    out.print(best.answer, markup=False, highlight=False)
    if len(result.candidates) > 1:
        table = Table(title="runner-ups")
        for column in ("article", "confidence", "score", "matched"):
            table.add_column(column)
        for c in result.candidates[1:]:
            table.add_row(f"{c.article_id} v{c.version} ({c.locale})", f"{c.confidence:.3f}", f"{c.score:.3f}",
                          f"{c.matched_kind}: {c.matched}")
        out.print(table)


@app.command()
def archive(
    article_id: Annotated[str, typer.Argument(help="the article id, e.g. shipping-times")],
    restore: Annotated[bool, typer.Option("--restore", help="bring an archived article back")] = False,
) -> None:
    """Take an article (all locales) out of the bot's answers, or bring it back with --restore."""
    settings = _settings()
    try:
        kb_version = _run(settings, lambda kb: kb.archive(article_id, archived=not restore))
    except KBError as exc:
        console.print(f"[red]error:[/red] {exc}; `nightdesk kb list --archived` shows the ids")
        raise typer.Exit(1) from None
    out.print(f"{article_id} {'restored' if restore else 'archived'}; KB version {kb_version}", highlight=False)
    _announce(settings, kb_version)
