"""The `nightdesk` command: run the server, train the bot, chat in the terminal, run workers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.config import SettingsError, load_settings
from bot.conversation_tests import register as register_conversation_tests
from bot.kb_cli import app as kb_app
from handoff.config import FILE_NAME as HANDOFF_FILE
from handoff.config import HandoffConfigError, load_handoff_config
from nlu.cli import app as nlu_app

app = typer.Typer(
    name="nightdesk",
    help="Nightdesk: a self-hosted, chatbot-first auto-responder for cross-border e-commerce support.\n\n"
    "Start with `nightdesk run --project examples/demo-store --demo` and open http://127.0.0.1:8000.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)

ProjectOpt = Annotated[Path, typer.Option("--project", "-p", help="the bot project folder (nlu data, kb/, domain.yml)")]


def _settings(serving: bool = True, **overrides: object):  # type: ignore[no-untyped-def]
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
        # The runtime reads these again at start; checked here so a mistake reads as one message, not a traceback.
        load_handoff_config(settings.project / HANDOFF_FILE)
        if serving:
            check_seller_file(settings.project)
    except (SettingsError, HandoffConfigError, ValueError) as exc:
        console.print(f"[red]Nightdesk cannot start:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    return settings


def check_seller_file(project: Path) -> None:
    """The seller's legal and shipping data (invoices, returns, shipping estimates) must be there to serve."""
    from actions.seller import SellerProfile

    path = project / "store" / "seller.yml"
    if not path.exists():
        raise ValueError(f"{path} is missing: the actions need the seller's legal details, VAT numbers, return "
                         "address and shipping table; copy examples/demo-store/store/seller.yml and edit it")
    SellerProfile.load(path)


def _one_thread_per_process() -> None:
    # Two BLAS/torch threads on a 2-core machine stall encoding plus scikit-learn now and then.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@app.command()
def run(
    project: ProjectOpt = Path("examples/demo-store"),
    host: Annotated[str | None, typer.Option(help="interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="load the project's demo store, KB and staff logins")] = False,
    train_first: Annotated[bool, typer.Option("--train/--no-train", help="train first if the model is stale")] = True,
) -> None:
    """Serve the API, the widget, the agent console and the KB editor (embedded workers included)."""
    _one_thread_per_process()
    settings = _settings(project=project, host=host, port=port)
    demo = demo or settings.demo
    if train_first:
        _train(settings)
    if demo:
        from bot.demo import load_demo

        asyncio.run(load_demo(settings))
    import uvicorn

    from bot.app import create_app

    url = settings.effective_public_url
    console.print(f"[bold]Nightdesk[/bold] on {url}")
    console.print(f"  storefront demo page  {url}/demo")
    console.print(f"  agent console         {url}/console")
    console.print(f"  KB editor             {url}/kb")
    if demo:
        from bot.demo import DEMO_LOGINS

        for login, password, roles in DEMO_LOGINS:
            console.print(f"  login {login} / {password}  ({', '.join(roles)})")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning",
                ws_ping_interval=20, ws_ping_timeout=20)


def _train(settings) -> bool:  # type: ignore[no-untyped-def]
    from nlu.model import needs_training, train_model
    from nlu.training_data import TrainingDataError

    data = settings.project / "data"
    config = _nlu_config(settings)
    if not data.exists():
        console.print(f"[yellow]no training data in {data}; serving without a trained model[/yellow]")
        return False
    out = settings.effective_model_dir
    try:
        if not needs_training([data], config, out):
            console.print(f"model up to date: {out}")
            return False
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description:<32}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("training the bot", total=1.0)
            train_model([data], config, out,
                        progress=lambda stage, fraction: bar.update(task, description=stage, completed=fraction))
    except (TrainingDataError, ValueError) as exc:
        # The file, line and what is wrong, not a traceback: the seller fixes their data and runs it again.
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"trained model written to {out}")
    return True


def _nlu_config(settings):  # type: ignore[no-untyped-def]
    from nlu.model import NLUConfig

    return NLUConfig(languages=list(settings.languages), fallback_language=settings.fallback_language)


@app.command()
def train(
    project: ProjectOpt = Path("examples/demo-store"),
    force: Annotated[bool, typer.Option(help="retrain even when nothing changed")] = False,
) -> None:
    """Train the bot's NLU model from <project>/data (only when data or config changed)."""
    _one_thread_per_process()
    settings = _settings(serving=False, project=project)
    if force:
        import shutil

        shutil.rmtree(settings.effective_model_dir, ignore_errors=True)
    _train(settings)


@app.command()
def worker(project: ProjectOpt = Path("examples/demo-store")) -> None:
    """Run engine workers only (scale-out: share DATABASE_URL and REDIS_URL with the API processes)."""
    _one_thread_per_process()
    settings = _settings(project=project)
    if not settings.redis_url:
        console.print("[red]a separate worker needs REDIS_URL (the embedded Redis belongs to one process)[/red]")
        raise typer.Exit(2)
    from bot.standalone import run_workers

    asyncio.run(run_workers(settings, engine_workers=max(settings.workers, 1), senders=0))


@app.command()
def sender(project: ProjectOpt = Path("examples/demo-store")) -> None:
    """Run senders only (scale-out)."""
    settings = _settings(project=project)
    if not settings.redis_url:
        console.print("[red]a separate sender needs REDIS_URL (the embedded Redis belongs to one process)[/red]")
        raise typer.Exit(2)
    from bot.standalone import run_workers

    asyncio.run(run_workers(settings, engine_workers=0, senders=1))


@app.command()
def chat(
    project: ProjectOpt = Path("examples/demo-store"),
    debug: Annotated[bool, typer.Option("--debug", help="print the decision trace of every turn")] = False,
    language: Annotated[str | None, typer.Option(help="your locale hint, e.g. de-DE")] = None,
) -> None:
    """Talk to the bot in the terminal (like `rasa shell`). Ctrl-D or /quit to leave."""
    _one_thread_per_process()
    settings = _settings(project=project)
    from bot.terminal import chat_loop

    asyncio.run(chat_loop(settings, debug=debug, locale=language))


app.add_typer(nlu_app, name="nlu", help="Train, predict and evaluate the NLU without a server.")
app.add_typer(kb_app, name="kb", help="Import, export, check, list and search the knowledge base without a server.")
register_conversation_tests(app)  # `nightdesk test`


def main() -> None:
    app()


if __name__ == "__main__":
    main()
