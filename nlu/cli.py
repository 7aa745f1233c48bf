"""`nightdesk nlu ...` (or `python -m nlu.cli ...`): train, predict and evaluate NLU models offline."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nlu.training_data import TrainingDataError, load_training_data
from nlu.types import ParseResult

if TYPE_CHECKING:
    from nlu.model import NLUModel

app = typer.Typer(help="Train, try and evaluate the NLU (intents, entities, language, sentiment).", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)  # no hard wraps: paths in messages stay copyable
OUT_OF_SCOPE = "out_of_scope"


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


def _load(model: Path) -> NLUModel:
    from nlu.model import ModelFormatError, NLUModel  # the ML stack loads when a command needs it, not for --help

    try:
        return NLUModel.load(model)
    except ModelFormatError as exc:
        raise _fail(str(exc)) from None


@app.command()
def train(
    data: Annotated[list[Path], typer.Option("--data", help="nlu.yml file or Rasa data/ folder (repeatable)")],
    out: Annotated[Path, typer.Option("--out", help="folder to write the model to")] = Path("models/nlu"),
    encoder: Annotated[
        str | None, typer.Option("--encoder", help="use-multilingual, sentence-transformers or both joined by +")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML or JSON file with NLU settings")] = None,
    force: Annotated[bool, typer.Option("--force", help="retrain even if data and config are unchanged")] = False,
) -> None:
    """Train a model from Rasa-format data (skipped when data and config are unchanged)."""
    from nlu.model import NLUConfig, needs_training, train_model

    raw: dict[str, Any] = {}
    if config is not None:
        import yaml

        loaded = yaml.safe_load(config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise typer.BadParameter(f"{config} must hold a mapping of NLU settings")
        raw = loaded.get("nlu", loaded)
    if encoder:
        raw["encoder"] = encoder
    try:
        cfg = NLUConfig.from_dict(raw)
        if not force and not needs_training(data, cfg, out):
            console.print(f"[green]model in {out} is up to date[/green] (data and config unchanged)")
            return
        with Progress(TextColumn("{task.description:<40}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("starting", total=1.0)
            path = train_model(data, cfg, out, progress=lambda stage, f: bar.update(task, description=stage, completed=f))
    except (TrainingDataError, ValueError) as exc:
        raise _fail(str(exc)) from None
    manifest = json.loads((path / "nlu_model.json").read_text())
    metrics = manifest["metrics"]["intent"]
    console.print(
        f"[green]trained[/green] {path}: {len(manifest['intents'])} intents, {manifest['examples']} examples, "
        f"cross-validated accuracy {metrics['cv_accuracy']:.3f}, out-of-scope threshold {metrics['threshold']:.3f}"
    )


def _as_json(result: ParseResult) -> dict[str, Any]:
    return {
        "text": result.text,
        "language": result.language,
        **({"foreign_language": result.foreign_language} if result.foreign_language else {}),
        **({"corrected": result.corrected} if result.corrected else {}),
        "intent": result.intent,
        "confidence": round(result.confidence, 4),
        "ranking": [{"name": s.name, "confidence": round(s.confidence, 4)} for s in result.ranking[:5]],
        "entities": [
            {"entity": e.entity, "value": e.value, "text": e.text, "start": e.start, "end": e.end,
             "extractor": e.extractor, **({"role": e.role} if e.role else {}), **e.extra}
            for e in result.entities
        ],
        "sentiment": {"labels": list(result.sentiment.labels), "scores": result.sentiment.scores},
    }


@app.command()
def predict(model: Annotated[Path, typer.Option("--model", help="trained model folder")]) -> None:
    """Read one message per line on stdin; write one JSON object per line."""
    nlu = _load(model)
    previous: str | None = None
    for line in sys.stdin:
        text = line.rstrip("\n")
        if not text.strip():
            continue
        result = nlu.parse(text, previous_language=previous)
        previous = result.language
        sys.stdout.write(json.dumps(_as_json(result), ensure_ascii=False) + "\n")
        sys.stdout.flush()


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option("--model", help="trained model folder")],
    data: Annotated[Path, typer.Option("--data", help="test data in Rasa nlu.yml format")],
    out: Annotated[Path | None, typer.Option("--out", help="also write the report as JSON here")] = None,
) -> None:
    """Accuracy, per-intent precision/recall/F1, most confused pairs, out-of-scope precision/recall."""
    nlu = _load(model)
    try:
        test = load_training_data(data)
    except TrainingDataError as exc:
        raise _fail(str(exc)) from None
    if not test.examples:
        raise _fail(f"{data} has no intent examples to evaluate")
    results = nlu.parse_batch([e.text for e in test.examples])
    gold = [e.intent for e in test.examples]
    pred = [r.intent or OUT_OF_SCOPE for r in results]
    report = evaluation_report(gold, pred)
    table = Table(title=f"intents ({len(gold)} examples, accuracy {report['accuracy']:.3f})")
    for column in ("intent", "precision", "recall", "f1", "support"):
        table.add_column(column)
    for name, row in report["per_intent"].items():
        table.add_row(name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"]))
    Console().print(table)
    if report["confused_pairs"]:
        Console().print("most confused (gold -> predicted):")
        for pair in report["confused_pairs"]:
            Console().print(f"  {pair['gold']} -> {pair['predicted']}: {pair['count']}")
    if "out_of_scope" in report:
        oos = report["out_of_scope"]
        Console().print(f"out of scope: precision {oos['precision']:.3f}, recall {oos['recall']:.3f}")
    if out:
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False))


def evaluation_report(gold: list[str], pred: list[str]) -> dict[str, Any]:
    labels = sorted(set(gold) | set(pred))
    per_intent: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, pred, strict=True))
        n_pred = sum(p == label for p in pred)
        n_gold = sum(g == label for g in gold)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_intent[label] = {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}
    confused = Counter((g, p) for g, p in zip(gold, pred, strict=True) if g != p)
    report: dict[str, Any] = {
        "accuracy": sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold),
        "per_intent": per_intent,
        "confused_pairs": [{"gold": g, "predicted": p, "count": c} for (g, p), c in confused.most_common(10)],
    }
    if OUT_OF_SCOPE in gold:
        row = per_intent[OUT_OF_SCOPE]
        report["out_of_scope"] = {"precision": row["precision"], "recall": row["recall"]}
    return report


if __name__ == "__main__":
    app()
