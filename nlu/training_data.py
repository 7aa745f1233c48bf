"""Rasa 3.x training data: read nlu.yml files (or a whole Rasa `data/` folder) into one TrainingData.

Supports intents (block or list examples), retrieval intents (`faq/ask_returns`), entity
annotations `[text](entity)`, `[text](entity:value)`, `[text]{"entity": .., "value": .., "role": ..}`,
`synonym`, `regex` and `lookup` items, and domain `responses`. Stories and rules are skipped.
Malformed data raises TrainingDataError naming the file, the line and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

YAML_SUFFIXES = (".yml", ".yaml")
# Rasa's annotation syntax: [text](entity) / [text](entity:value) / [text]{"entity": ...}
_ANNOTATION = re.compile(r"\[(?P<text>[^\]\[]+)\](?:\((?P<short>[^)]*)\)|(?P<json>\{[^}]*\}))")
_BROKEN = re.compile(r"\[[^\]\[]+\](?:\([^)]*$|\{[^}]*$)")


class TrainingDataError(ValueError):
    """Training data that cannot be read; says where (file, line) and what is wrong."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class AnnotatedEntity:
    """An entity marked in a training example; `value` already has the annotation's value."""

    entity: str
    value: str
    text: str
    start: int
    end: int
    role: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class TrainingExample:
    text: str
    intent: str
    entities: tuple[AnnotatedEntity, ...] = ()
    source: str = ""  # "file:line", for error messages and evaluation reports

    @property
    def base_intent(self) -> str:
        """`faq` for the retrieval intent `faq/ask_returns`, otherwise the intent itself."""
        return self.intent.split("/", 1)[0]


@dataclass
class TrainingData:
    examples: list[TrainingExample] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)  # lower-cased variant -> canonical value
    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def intents(self) -> list[str]:
        return sorted({e.intent for e in self.examples})

    @property
    def retrieval_intents(self) -> list[str]:
        return sorted({e.base_intent for e in self.examples if "/" in e.intent})

    @property
    def entity_names(self) -> list[str]:
        names = {a.entity for e in self.examples for a in e.entities}
        return sorted(names | set(self.regexes) | set(self.lookups))

    def merge(self, other: TrainingData) -> TrainingData:
        merged = TrainingData(
            examples=self.examples + other.examples,
            synonyms={**self.synonyms, **other.synonyms},
            regexes={k: list(v) for k, v in self.regexes.items()},
            lookups={k: list(v) for k, v in self.lookups.items()},
            responses={**self.responses, **other.responses},
            files=self.files + other.files,
        )
        for table, extra in ((merged.regexes, other.regexes), (merged.lookups, other.lookups)):
            for key, values in extra.items():
                table.setdefault(key, []).extend(v for v in values if v not in table[key])
        return merged

    def fingerprint(self) -> str:
        """Changes whenever anything that training reads changes (not file names or order of files)."""
        payload = {
            "examples": sorted(
                (e.intent, e.text, [(a.entity, a.value, a.start, a.end, a.role) for a in e.entities])
                for e in self.examples
            ),
            "synonyms": sorted(self.synonyms.items()),
            "regexes": sorted((k, sorted(v)) for k, v in self.regexes.items()),
            "lookups": sorted((k, sorted(v)) for k, v in self.lookups.items()),
        }
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def parse_annotated(text: str, path: str | Path = "<text>", line: int | None = None) -> tuple[str, list[AnnotatedEntity]]:
    """Strip Rasa annotations from one example: the plain text and the entities in it."""
    if _BROKEN.search(text):
        raise TrainingDataError(path, line, f"unclosed entity annotation in example {text!r}")
    plain: list[str] = []
    entities: list[AnnotatedEntity] = []
    cursor = 0
    length = 0
    for match in _ANNOTATION.finditer(text):
        before = text[cursor : match.start()]
        plain.append(before)
        length += len(before)
        surface = match.group("text")
        value, role, group = surface, None, None
        if match.group("short") is not None:
            short = match.group("short").strip()
            name, _, explicit = short.partition(":")
            name = name.strip()
            if explicit.strip():
                value = explicit.strip()
        else:
            try:
                spec = json.loads(match.group("json"))
            except json.JSONDecodeError as exc:
                raise TrainingDataError(
                    path, line, f"entity annotation {match.group('json')} is not valid JSON ({exc.msg})"
                ) from None
            if not isinstance(spec, dict):
                raise TrainingDataError(path, line, "an entity annotation in {...} must be a JSON object")
            name = str(spec.get("entity", "")).strip()
            value = str(spec["value"]) if spec.get("value") is not None else surface
            role = str(spec["role"]) if spec.get("role") is not None else None
            group = str(spec["group"]) if spec.get("group") is not None else None
        if not name:
            raise TrainingDataError(path, line, f"entity annotation [{surface}] has no entity name")
        if not re.fullmatch(r"[\w\-.]+", name):
            raise TrainingDataError(path, line, f"entity name {name!r} may only use letters, digits, _ - .")
        entities.append(AnnotatedEntity(name, value, surface, length, length + len(surface), role, group))
        plain.append(surface)
        length += len(surface)
        cursor = match.end()
    plain.append(text[cursor:])
    return "".join(plain), entities


def load_training_data(paths: str | Path | Sequence[str | Path]) -> TrainingData:
    """Read one file, a folder (recursively) or several of either, merged into one TrainingData."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    data = TrainingData()
    for path in training_files(paths):
        data = data.merge(load_file(path))
    return data


def training_files(paths: Iterable[str | Path]) -> list[Path]:
    """The YAML files under `paths`, sorted so that merging is deterministic."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise TrainingDataError(path, None, "no such file or folder; give a Rasa nlu.yml or a data/ folder")
    return files


def load_file(path: str | Path) -> TrainingData:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TrainingDataError(path, None, f"not UTF-8 text ({exc.reason}); save the file as UTF-8") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise TrainingDataError(path, line, f"invalid YAML: {exc.problem or exc.context}") from None
    data = TrainingData(files=[str(path)])
    if root is None:
        return data
    if not isinstance(root, MappingNode):
        raise TrainingDataError(path, _line(root), "the file must be a mapping with keys like `nlu:`")
    for key_node, value_node in root.value:
        key = key_node.value
        if key == "nlu":
            _read_nlu(path, value_node, data)
        elif key == "responses":
            _read_responses(path, value_node, data)
        # version, stories, rules, intents, slots, ... belong to Rasa Core: not ours to read.
    return data


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _mapping(path: Path, node: Node, what: str) -> dict[str, Node]:
    if not isinstance(node, MappingNode):
        raise TrainingDataError(path, _line(node), f"{what} must be a mapping")
    return {k.value: v for k, v in node.value}


def _read_nlu(path: Path, node: Node, data: TrainingData) -> None:
    if isinstance(node, ScalarNode) and node.value in ("", "~", "null"):
        return
    if not isinstance(node, SequenceNode):
        raise TrainingDataError(path, _line(node), "`nlu:` must be a list of items (- intent: ..., - synonym: ...)")
    for item in node.value:
        fields = _mapping(path, item, "each `nlu:` item")
        kinds = [k for k in ("intent", "synonym", "regex", "lookup") if k in fields]
        if len(kinds) != 1:
            raise TrainingDataError(
                path,
                _line(item),
                "each `nlu:` item needs exactly one of `intent`, `synonym`, `regex`, `lookup` "
                f"(found {', '.join(kinds) or 'none'})",
            )
        kind = kinds[0]
        name_node = fields[kind]
        if not isinstance(name_node, ScalarNode) or not str(name_node.value).strip():
            raise TrainingDataError(path, _line(name_node), f"`{kind}:` needs a name")
        name = str(name_node.value).strip()
        if "examples" not in fields:
            raise TrainingDataError(path, _line(item), f"{kind} {name!r} has no `examples:`")
        for line, example in _examples(path, fields["examples"], f"{kind} {name!r}"):
            if kind == "intent":
                plain, entities = parse_annotated(example, path, line)
                data.examples.append(TrainingExample(plain, name, tuple(entities), f"{path}:{line}"))
            elif kind == "synonym":
                data.synonyms[example.lower()] = name
            elif kind == "regex":
                try:
                    re.compile(example)
                except re.error as exc:
                    raise TrainingDataError(path, line, f"regex {name!r}: {example!r} is invalid ({exc})") from None
                data.regexes.setdefault(name, []).append(example)
            else:
                data.lookups.setdefault(name, []).append(example)
    # Annotated values are synonyms too: `[NYC](city:New York)` teaches NYC -> New York.
    for annotated in data.examples:
        for ent in annotated.entities:
            if ent.value != ent.text:
                data.synonyms.setdefault(ent.text.lower(), ent.value)


def _examples(path: Path, node: Node, owner: str) -> list[tuple[int, str]]:
    """(line, example) pairs from a block string `|` of `- ` lines or a YAML list."""
    out: list[tuple[int, str]] = []
    if isinstance(node, ScalarNode):
        # In a block scalar the content starts on the line after `|`, one source line per value line.
        first = int(node.start_mark.line) + (2 if node.style in ("|", ">") else 1)
        for offset, raw in enumerate(str(node.value).splitlines()):
            stripped = raw.strip()
            if not stripped:
                continue
            if not stripped.startswith("- ") and stripped != "-":
                raise TrainingDataError(
                    path, first + offset, f"{owner}: each example must start with '- ' (got {stripped[:40]!r})"
                )
            text = stripped[1:].strip()
            if not text:
                raise TrainingDataError(path, first + offset, f"{owner}: empty example")
            out.append((first + offset, text))
    elif isinstance(node, SequenceNode):
        for entry in node.value:
            if isinstance(entry, ScalarNode):
                text = str(entry.value).strip()
            elif isinstance(entry, MappingNode):
                fields = {k.value: v for k, v in entry.value}
                text_node = fields.get("text")
                if not isinstance(text_node, ScalarNode):
                    raise TrainingDataError(path, _line(entry), f"{owner}: example entries need a `text:`")
                text = str(text_node.value).strip()
            else:
                raise TrainingDataError(path, _line(entry), f"{owner}: an example must be text")
            if not text:
                raise TrainingDataError(path, _line(entry), f"{owner}: empty example")
            out.append((_line(entry), text))
    else:
        raise TrainingDataError(path, _line(node), f"{owner}: `examples:` must be a `|` block or a list")
    if not out:
        raise TrainingDataError(path, _line(node), f"{owner}: `examples:` is empty")
    return out


def _read_responses(path: Path, node: Node, data: TrainingData) -> None:
    for name, variants_node in _mapping(path, node, "`responses:`").items():
        variants = yaml.safe_load(yaml.serialize(variants_node))
        if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
            raise TrainingDataError(
                path, _line(variants_node), f"response {name!r} must be a list of variants like `- text: ...`"
            )
        data.responses[name] = variants
