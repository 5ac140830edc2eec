"""The `headwater` command: sync, query, status."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ingest.config import HeadwaterConfig, load_config
from ingest.errors import HeadwaterError
from ingest.report import SyncReport

app = typer.Typer(
    help="Keep a vector knowledge base in step with your documents.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Config file (default: $HEADWATER_CONFIG or ./headwater.toml)."
    ),
]


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
    )
    # Client libraries log retries and internals at WARNING; our own messages say what matters.
    for noisy in ("pymilvus", "unstructured", "sentence_transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _config(path: Path | None) -> HeadwaterConfig:
    return load_config(path)


@app.command()
def sync(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON report object.")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait if another sync runs.")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Bring the store in step with the sources: embed what is new, delete what is gone."""
    from ingest.sync import SyncEngine

    _setup_logging(verbose)
    cfg = _config(config)
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json or not err.is_terminal,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        engine = SyncEngine(cfg, progress=progress)
        try:
            report = engine.run(wait=wait)
        finally:
            engine.close()
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_summary(report)
    raise typer.Exit(0 if report.ok else 1)


def _print_summary(report: SyncReport) -> None:
    files, chunks = report.file_counts(), report.chunk_counts()
    console.print(
        "files: "
        + ", ".join(f"{n} {k}" for k, n in files.items())
        + f"\nchunks: {chunks['embedded']} embedded, {chunks['written']} written, "
        f"{chunks['deleted']} deleted"
    )
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in report.stage_seconds.items())
    console.print(f"time: {report.wall_seconds:.2f}s ({stages})")
    for name, reason in report.source_errors.items():
        err.print(f"[red]source {name} not listed:[/] {reason}")
    for f in report.failures:
        err.print(f"[red]failed[/] {f.source_id}: {f.reason}")


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="What to search for.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many results.")] = 5,
    source: Annotated[
        str | None, typer.Option("--source", help="Only documents whose path matches this glob.")
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Search the store: rank, score, source, page and a snippet per result."""
    from connectors.registry import create_store
    from ingest.embedding import Embedder
    from ingest.models import QueryFilter

    _setup_logging(False)
    cfg = _config(config)
    store = create_store(cfg)
    try:
        vector = Embedder(cfg.embedding).embed_query(text)
        hits = store.query(vector, k=k, filters=QueryFilter(source_glob=source))
    finally:
        store.close()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "rank": i,
                        "score": round(h.score, 4),
                        "id": h.id,
                        "source": h.metadata.source_id,
                        "path": h.metadata.path,
                        "pages": list(h.metadata.pages),
                        "section": h.metadata.section,
                        "text": h.text,
                    }
                    for i, h in enumerate(hits, 1)
                ],
                indent=2,
            )
        )
        return
    if not hits:
        console.print("no results (has `headwater sync` run?)")
        return
    table = Table(show_lines=True)
    for col in ("#", "score", "source", "page", "text"):
        table.add_column(col, overflow="fold")
    for i, h in enumerate(hits, 1):
        m = h.metadata
        pages = ",".join(map(str, m.pages)) or "-"
        snippet = " ".join(h.text.split())
        snippet = snippet[:220] + ("…" if len(snippet) > 220 else "")
        where = m.path + (f"\n§ {m.section}" if m.section else "")
        table.add_row(str(i), f"{h.score:.3f}", where, pages, snippet)
    console.print(table)


@app.command()
def status(config: ConfigOption = None) -> None:
    """What is configured and what the manifest and store hold."""
    from ingest.sync import SyncEngine

    _setup_logging(False)
    cfg = _config(config)
    engine = SyncEngine(cfg)
    try:
        docs, chunks = engine.manifest.counts()
        last = engine.manifest.last_commit()
        stored = engine.store.count()
    finally:
        engine.close()
    console.print(
        f"store: {cfg.store.backend} {engine.store.location} (collection {cfg.store.collection})"
    )
    console.print(f"model: {cfg.embedding.model} (device {cfg.embedding.device})")
    console.print(f"state: {cfg.state_dir}")
    for s in cfg.sources:
        console.print(
            f"source {s.name}: {cfg.resolve(s.path)} include={s.include} exclude={s.exclude}"
        )
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last)) if last else "never"
    console.print(f"manifest: {docs} documents, {chunks} chunks; last change {when}")
    console.print(
        f"store holds: {stored} chunks"
        + ("" if stored == chunks else "  [yellow](differs from manifest)[/]")
    )


def main() -> None:
    try:
        app()
    except HeadwaterError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
