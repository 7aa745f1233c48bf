"""Knowledge-base articles as Markdown files with YAML front matter: parse, validate, write back.

One file per article and locale, either `kb/<id>.<locale>.md` or `kb/<locale>/<id>.md`, so a seller
can keep the knowledge base in git and import/export it without losing anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ARTICLE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
LOCALE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?$")
_FILE_NAME = re.compile(r"^(?P<id>[a-z0-9][a-z0-9-]*)\.(?P<locale>[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?)\.md$")
KNOWN_KEYS = ("id", "title", "locale", "tags", "questions")


@dataclass(frozen=True)
class ArticleProblem:
    """One thing wrong in one file, at one line (1-based)."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class ArticleFormatError(ValueError):
    """Raised when one or more article files are malformed; nothing was imported."""

    def __init__(self, problems: list[ArticleProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"{len(problems)} problem(s) in the knowledge-base files; nothing was imported. "
            f"Fix these and import again:\n{lines}"
        )


@dataclass
class Article:
    """One article in one locale, as it is written in a Markdown file."""

    id: str
    locale: str
    title: str
    body: str
    questions: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    path: str | None = None

    def to_markdown(self) -> str:
        """The file text: front matter then the Markdown body (what `parse_article` reads back)."""
        meta: dict[str, Any] = {"id": self.id, "title": self.title, "locale": self.locale}
        meta["tags"] = list(self.tags)
        meta["questions"] = list(self.questions)
        head = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=1000).strip()
        return f"---\n{head}\n---\n\n{self.body.strip()}\n"

    def file_name(self) -> str:
        return f"{self.id}.{self.locale}.md"


def _key_lines(front: str, first_line: int) -> dict[str, int]:
    """Line number (in the file) of each top-level key, so errors can point at it."""
    lines: dict[str, int] = {}
    for offset, raw in enumerate(front.splitlines()):
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:", raw)
        if match:
            lines.setdefault(match.group(1), first_line + offset)
    return lines


def _string_list(value: Any, key: str, line: int, path: str, problems: list[ArticleProblem]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(ArticleProblem(path, line, f"'{key}' must be a list (one '- item' per line)"))
        return []
    out: list[str] = []
    for index, item in enumerate(value):
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not item.strip():
            problems.append(
                ArticleProblem(path, line, f"'{key}' item {index + 1} must be a non-empty text, got {item!r}")
            )
            continue
        out.append(item.strip())
    return out


def parse_article(text: str, path: str = "<text>", expect: tuple[str, str] | None = None) -> Article:
    """Parse one article file; raise ArticleFormatError naming file, line and the problem.

    `expect` is the (id, locale) implied by the file name; a front matter that disagrees is an error
    because export would otherwise write the article under another name.
    """
    problems: list[ArticleProblem] = []
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ArticleFormatError(
            [ArticleProblem(path, 1, "the file must start with a '---' line opening the YAML front matter")]
        )
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise ArticleFormatError(
            [ArticleProblem(path, 1, "the front matter is not closed: add a '---' line after it")]
        )
    front = "\n".join(lines[1:end])
    try:
        meta = yaml.safe_load(front) if front.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 2) if mark is not None else 2
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ArticleFormatError([ArticleProblem(path, line, f"invalid YAML in front matter: {problem}")]) from exc
    if not isinstance(meta, dict):
        raise ArticleFormatError(
            [ArticleProblem(path, 2, "the front matter must be a mapping of keys (id:, title:, ...)")]
        )
    key_line = _key_lines(front, 2)
    for key in meta:
        if key not in KNOWN_KEYS:
            problems.append(
                ArticleProblem(
                    path, key_line.get(str(key), 2), f"unknown key '{key}'; allowed: {', '.join(KNOWN_KEYS)}"
                )
            )

    def scalar(key: str) -> str:
        value = meta.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append(ArticleProblem(path, key_line.get(key, 2), f"missing required key '{key}'"))
            return ""
        if not isinstance(value, str):
            problems.append(ArticleProblem(path, key_line.get(key, 2), f"'{key}' must be a text"))
            return str(value)
        return value.strip()

    article_id = scalar("id")
    title = scalar("title")
    locale = scalar("locale")
    if article_id and not ARTICLE_ID.match(article_id):
        problems.append(
            ArticleProblem(
                path,
                key_line.get("id", 2),
                f"id '{article_id}' must be lowercase letters, digits and '-' (e.g. shipping-times)",
            )
        )
    if locale and not LOCALE.match(locale):
        problems.append(
            ArticleProblem(path, key_line.get("locale", 2), f"locale '{locale}' is not a language code like en or pt-BR")
        )
    tags = _string_list(meta.get("tags"), "tags", key_line.get("tags", 2), path, problems)
    questions = _string_list(meta.get("questions"), "questions", key_line.get("questions", 2), path, problems)
    body = "\n".join(lines[end + 1 :]).strip()
    if not body:
        problems.append(ArticleProblem(path, end + 1, "the article has no answer text after the front matter"))
    if expect is not None and article_id and locale:
        want_id, want_locale = expect
        if (article_id, locale) != (want_id, want_locale):
            problems.append(
                ArticleProblem(
                    path,
                    key_line.get("id", 2),
                    f"front matter says id '{article_id}', locale '{locale}' but the file name says "
                    f"'{want_id}', '{want_locale}'; rename the file or fix the front matter",
                )
            )
    if problems:
        raise ArticleFormatError(problems)
    return Article(id=article_id, locale=locale, title=title, body=body, questions=questions, tags=tags, path=path)


def _expected_from_path(path: Path, root: Path) -> tuple[str, str] | None:
    match = _FILE_NAME.match(path.name)
    if match:
        return match.group("id"), match.group("locale")
    rel = path.relative_to(root)
    if len(rel.parts) == 2 and LOCALE.match(rel.parts[0]):
        return path.stem, rel.parts[0]
    return None


def load_folder(folder: str | Path) -> list[Article]:
    """Every article under `folder`; raises ArticleFormatError listing all problems of all files."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"knowledge-base folder {root} does not exist")
    articles: list[Article] = []
    problems: list[ArticleProblem] = []
    seen: dict[tuple[str, str], str] = {}
    for path in sorted(root.rglob("*.md")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        shown = str(path)
        expect = _expected_from_path(path, root)
        if expect is None:
            problems.append(
                ArticleProblem(
                    shown, 1, "file name must be <id>.<locale>.md or <locale>/<id>.md (e.g. returns.de.md)"
                )
            )
            continue
        try:
            article = parse_article(path.read_text(encoding="utf-8"), shown, expect)
        except UnicodeDecodeError:
            problems.append(ArticleProblem(shown, 1, "the file is not UTF-8 text; save it as UTF-8"))
            continue
        except ArticleFormatError as exc:
            problems.extend(exc.problems)
            continue
        key = (article.id, article.locale)
        if key in seen:
            problems.append(
                ArticleProblem(shown, 1, f"article '{article.id}' ({article.locale}) is also defined in {seen[key]}")
            )
            continue
        seen[key] = shown
        articles.append(article)
    if problems:
        raise ArticleFormatError(problems)
    return articles


def _same_content(a: Article, b: Article) -> bool:
    return (a.id, a.locale, a.title, a.body.strip(), a.questions, a.tags) == (
        b.id, b.locale, b.title, b.body.strip(), b.questions, b.tags)


def write_folder(articles: list[Article], folder: str | Path) -> list[Path]:
    """Write each article into `folder`; returns the paths written.

    An article already in the folder is written to the file it is in (`<id>.<locale>.md` or
    `<locale>/<id>.md`), and only when its content differs: a file that already says the same thing
    is left as it is, however its YAML is laid out, so an import followed by an export changes
    nothing in git. New articles become `<id>.<locale>.md`.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    existing: dict[tuple[str, str], Path] = {}
    for path in sorted(root.rglob("*.md")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        key = _expected_from_path(path, root)
        if key is not None:
            existing.setdefault(key, path)
    written = []
    for article in sorted(articles, key=lambda a: (a.id, a.locale)):
        target = existing.get((article.id, article.locale), root / article.file_name())
        if target.exists():
            try:
                on_disk = parse_article(target.read_text(encoding="utf-8"), str(target))
            except (ArticleFormatError, UnicodeDecodeError):
                on_disk = None
            if on_disk is not None and _same_content(on_disk, article):
                continue
        target.write_text(article.to_markdown(), encoding="utf-8")
        written.append(target)
    return written
