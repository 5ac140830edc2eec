"""The `headwater` command: sync, query, status, verify, migrate, eval, serve, watch."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from headwater import __version__
from headwater.config import HeadwaterConfig, load_config
from headwater.ingest.errors import (
    EXIT_CONFIG,
    EXIT_ENVIRONMENT,
    HeadwaterError,
    host_error,
)
from headwater.ingest.models import SearchMode
from headwater.ingest.report import SyncReport
from headwater.ingest.source import is_url, redact_url
from headwater.ingest.telemetry import configure_from_environment

console = Console()
err = Console(stderr=True)
_verbose = False
"""Whether errors show their traceback (-v)."""


class _Commands(TyperGroup):
    """Every error a user can cause ends in one or two lines and its own exit code:
    2 for the config (or the store it names), 3 for the machine (a full disk, a read-only
    state folder, a model that cannot be loaded); 1 stays "files failed" (or drift).
    The traceback is shown only with -v."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except HeadwaterError as exc:
            _fail(exc, getattr(exc, "exit_code", EXIT_CONFIG))
        except (OSError, sqlite3.Error) as exc:
            problem = host_error(exc, getattr(exc, "filename", None) or "the state folder")
            if problem is None:
                raise
            _fail(problem, EXIT_ENVIRONMENT)


def _fail(exc: BaseException, code: int) -> NoReturn:
    """Called in an `except` block: one message, the traceback only with -v."""
    if _verbose:
        err.print_exception(show_locals=False)
    err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


if TYPE_CHECKING:
    from headwater.ingest.evaluation import EvalReport

app = typer.Typer(
    cls=_Commands,
    help="Keep a vector knowledge base in step with your documents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(show: bool) -> None:
    if show:
        print(f"headwater {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log more; show tracebacks of errors.")
    ] = False,
) -> None:
    """Keep a vector knowledge base in step with your documents."""
    global _verbose
    _verbose = verbose
    configure_from_environment()  # spans of syncs, when OTEL_TRACES_EXPORTER asks for them


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Config file (default: $HEADWATER_CONFIG or ./headwater.toml)."
    ),
]


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    global _verbose
    _verbose = _verbose or verbose
    verbose = _verbose

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
    )
    # Client libraries log retries and internals at WARNING; our own messages say what matters.
    for noisy in (
        "pymilvus",
        "unstructured",
        "sentence_transformers",
        "transformers",
        "huggingface_hub",
        "httpx",
    ):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Milvus Lite logs a whole traceback when it cannot open its file; ours says why.
    logging.getLogger("milvus_lite").setLevel(logging.ERROR if verbose else logging.CRITICAL)
    # A [cluster]'s scheduler and nannies narrate every start and stop at INFO; a lost
    # worker is a WARNING, and stays. Set through Dask's config, which distributed reads
    # (and applies) when it is first imported.
    if not verbose:
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        # The hub client sets its own loggers' level when first imported (after this), and
        # would print every retry of an unreachable hub twice; the load error says it all.
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _config(path: Path | None) -> HeadwaterConfig:
    return load_config(path)


@contextmanager
def _progress(disable: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback drawing one bar per stage on stderr (when it is a terminal)."""
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=disable or not err.is_terminal,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield progress


@app.command()
def sync(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON report object.")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait if another sync runs.")] = 0,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Parse again the files that failed on their content and have not changed.",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Bring the store in step with the sources: embed what is new, delete what is gone."""
    from headwater.compose import build_engine

    _setup_logging(verbose)
    cfg = _config(config)
    with _progress(disable=as_json) as progress:
        engine = build_engine(cfg, progress=progress)
        try:
            report = engine.run(wait=wait, retry_failed=retry_failed)
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
        stale = f" (stale: its last good {f.chunks} chunks stay in the store)" if f.stale else ""
        err.print(f"[red]failed[/] {f.source_id}: {f.reason}{stale}", highlight=False)
    for warning in report.warnings():
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)


T = TypeVar("T")

BUSY_WAIT = Annotated[
    float,
    typer.Option("--wait", help="Seconds to wait while a running sync holds a one-process store."),
]


def _when_free(cfg: HeadwaterConfig, read: Callable[[], T], wait: float) -> T:
    """Run `read`; while the store is held by another process, retry until `wait` runs out.

    Milvus Lite opens its file in one process at a time; `watch`, `serve` and `sync`
    hold it only while a run is in progress, so a reader waits seconds, not forever.
    """
    from headwater.ingest.errors import StoreBusyError

    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            return read()
        except StoreBusyError as exc:
            if time.monotonic() >= deadline:
                raise HeadwaterError(
                    f"{exc}. A sync (`headwater sync`, `watch` or a `serve` run) holds it "
                    f"while it runs: retry when it ends, or give --wait more seconds "
                    f"(it was {wait:g}). To query while syncs run, use a store that many "
                    "processes can open (the Milvus server, FAISS or Weaviate; see "
                    "`headwater migrate`)."
                ) from None
            if not told:
                err.print(f"{exc}; waiting up to {wait:g}s for it to be released")
                told = True
            time.sleep(0.5)


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="What to search for.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many results.")] = 5,
    source: Annotated[
        str | None, typer.Option("--source", help="Only documents whose path matches this glob.")
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    wait: BUSY_WAIT = 120,
    mode: Annotated[
        SearchMode | None,
        typer.Option(
            "--mode",
            help="dense (embedding similarity), lexical (BM25 over the words) or hybrid "
            "(both, fused). Default: the config's search.mode.",
        ),
    ] = None,
) -> None:
    """Search the store: rank, score, source, page and a snippet per result."""
    from headwater.api import KnowledgeBase, hit_metadata
    from headwater.ingest.models import QueryFilter

    _setup_logging(False)
    cfg = _config(config)
    with KnowledgeBase(cfg) as kb:
        hits = _when_free(
            cfg,
            lambda: kb.search(text, k=k, filters=QueryFilter(source_glob=source), mode=mode),
            wait,
        )
    if as_json:
        print(
            json.dumps(
                [
                    {"rank": i, **hit_metadata(h), "score": round(h.score, 4), "text": h.text}
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
        where += f"\n{', '.join(m.element_types)} · chars {m.start}-{m.end}"
        table.add_row(str(i), f"{h.score:.3f}", where, pages, snippet)
    console.print(table)


@app.command()
def migrate(
    to: Annotated[
        Path, typer.Option("--to", help="Config file of the store to copy into.", exists=True)
    ],
    config: ConfigOption = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Records per read and write.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON report object.")] = False,
) -> None:
    """Copy every chunk with its vector into another store (no embedding), verify, and
    record the manifest for it: then sync with the --to config."""
    from headwater.compose import build_state
    from headwater.ingest.migrate import migrate as run_migration

    _setup_logging(False)
    source, destination = build_state(_config(config)), build_state(load_config(to))
    with _progress(disable=as_json) as progress:
        report = run_migration(source, destination, batch_size=batch_size, progress=progress)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    console.print(
        f"copied {report.copied} chunks from {report.source} to {report.destination} "
        f"in {report.seconds:.2f}s; 0 embedded"
    )
    if report.removed_from_destination:
        console.print(
            f"removed {report.removed_from_destination} stale chunks from the destination"
        )
    console.print(
        f"verified: destination holds {report.destination_count} chunks; manifest records "
        f"{report.documents} documents and {report.failures} failed files (not parsed "
        f"again until they change) for it. Use --config {to} from now on."
    )


@app.command()
def verify(
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Delete unrecorded chunks; forget incomplete documents."),
    ] = False,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON report object.")] = False,
) -> None:
    """Compare the manifest with the store, document by document; exit 1 on drift.

    After --repair, run `headwater sync`: it reloads the documents that were missing
    chunks and embeds only what the store lacks.
    """
    from headwater.compose import build_state
    from headwater.ingest.verify import verify as run_verify

    _setup_logging(False)
    state = build_state(_config(config))
    try:
        report = run_verify(state, repair=repair)
    finally:
        state.close()
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        console.print(
            f"manifest: {report.manifest_chunks} chunks; store: {report.store_chunks} chunks"
        )
        for d in report.drift:
            console.print(f"[yellow]drift[/] {d.source_id}: {d.missing} missing, {d.extra} extra")
        if report.ok:
            console.print("in step: every document's chunks match")
        elif report.repaired:
            console.print(
                "repaired: extra chunks deleted; run `headwater sync` to restore the rest"
            )
    raise typer.Exit(0 if report.ok or report.repaired else 1)


@app.command()
def status(config: ConfigOption = None, wait: BUSY_WAIT = 120) -> None:
    """What is configured and what the manifest and store hold."""
    from headwater.compose import build_state

    _setup_logging(False)
    cfg = _config(config)
    state = build_state(cfg)
    try:
        running = state.sync_running()
        docs, chunks = state.manifest.counts()
        last = state.manifest.last_commit()
        stored = _when_free(cfg, state.store.count, wait)
    finally:
        state.close()
    console.print(f"store: {state.describe}")
    console.print(f"model: {cfg.embedding.model} (device {cfg.embedding.device})")
    console.print(f"state: {cfg.state_dir}")
    for s in cfg.sources:
        where = redact_url(s.path) if is_url(s.path) else cfg.resolve(s.path)
        console.print(f"source {s.name}: {where} include={s.include} exclude={s.exclude}")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last)) if last else "never"
    console.print(f"manifest: {docs} documents, {chunks} chunks; last change {when}")
    if running:
        console.print("sync: one is running now (the figures may change when it ends)")
    console.print(
        f"store holds: {stored} chunks"
        + ("" if stored == chunks else "  [yellow](differs from manifest)[/]")
    )


def _flows(what: str) -> None:
    """Prefect lives in flows/ and the `prefect` extra; say how to get it when missing."""
    import importlib.util

    if importlib.util.find_spec("prefect") is None:
        from headwater.ingest.errors import MissingExtraError

        raise MissingExtraError(what, "prefect")


@app.command()
def serve(config: ConfigOption = None) -> None:
    """Serve the config's Prefect deployments (schedules, file-event trigger) until Ctrl-C.

    Needs PREFECT_API_URL (a `prefect server start` on this machine, or your server/Cloud).
    """
    _flows("`headwater serve`")
    from headwater.flows.deployments import serve as serve_deployments
    from headwater.flows.sync import config_file

    _setup_logging(False)
    cfg = _config(config)
    path = config_file(str(config) if config else None)
    if path is None:
        raise HeadwaterError("`headwater serve` needs a config file: pass --config")
    serve_deployments(cfg, path)


@app.command()
def watch(
    config: ConfigOption = None,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="Run the syncs here even when PREFECT_API_URL is set (no events).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON report per batch.")] = False,
) -> None:
    """Watch the local source folders; ingest created, changed and deleted files.

    With PREFECT_API_URL set, each batch is sent as a Prefect event that the
    `headwater serve` file-event deployment turns into a run; otherwise the run happens here.
    """
    from headwater.flows.watch import EventEmitter, InProcessRunner, batches

    _setup_logging(False)
    cfg = _config(config)
    use_prefect = False
    if not in_process:
        import importlib.util

        if importlib.util.find_spec("prefect") is not None:
            from headwater.flows.deployments import api_url

            use_prefect = bool(api_url())
    if use_prefect:
        from headwater.flows.deployments import require_api
        from headwater.flows.sync import config_file

        require_api()
        path = config_file(str(config) if config else None)
        if path is None:
            raise HeadwaterError("`headwater watch` sends events for a config file: pass --config")
        emit = EventEmitter(path)
        err.print(f"watching; each batch goes to Prefect as an event about {path}")
        for ids in batches(cfg):
            emit(ids)
            err.print(f"sent {len(ids)} changed file(s): {', '.join(ids[:5])}")
        return
    run = InProcessRunner(cfg)
    try:
        run.warm_up()  # the model, tokenizers and parser processes, before the first event
        err.print("watching; syncing each batch in this process (no PREFECT_API_URL)")
        for ids in batches(cfg):
            try:
                report = run(ids)
            except HeadwaterError as exc:
                err.print(f"[red]error:[/] {exc}; the next batch or `headwater sync` catches up")
                continue
            if as_json:
                print(json.dumps(report.to_dict()), flush=True)
            else:
                _print_summary(report)
    finally:
        run.close()


@app.command("eval")
def evaluate(
    questions: Annotated[
        Path,
        typer.Option(
            "--questions",
            "-q",
            help="Questions with reference passages: a JSON file (references as excerpts "
            "and/or start/end offsets) or the benchmark's CSV (question, references, corpus_id).",
            exists=True,
        ),
    ],
    k: Annotated[
        int | None,
        typer.Option("--k", "-k", min=1, metavar="N", help="Chunks per question (default eval.k)."),
    ] = None,
    strategies: Annotated[
        list[str] | None,
        typer.Option(
            "--strategies",
            "-s",
            metavar="NAMES",
            help="Variants to compare, by name: the config's eval.strategies tables and the "
            "built-ins (recursive, token, headers, elements-title, elements-page, semantic); "
            "comma-separated or repeated. Default: the configured ones, else the built-ins.",
        ),
    ] = None,
    convention: Annotated[
        str,
        typer.Option(
            "--convention",
            help="How retrieved characters count: 'headwater' (true spans, overlaps once) or "
            "'chroma' (the Chroma report's metric, to set figures beside published ones).",
        ),
    ] = "headwater",
    skip_missing: Annotated[
        bool,
        typer.Option("--skip-missing", help="Run without references that are not found."),
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", metavar="FILE", help="Write a chart of recall against IoU (.svg, .png)."
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the table as Markdown.")
    ] = False,
) -> None:
    """Compare chunking variants: build each into a scratch store, retrieve the top k
    chunks per question, and score them against the reference passages."""
    from headwater.compose import build_evaluation
    from headwater.ingest.evaluation import CONVENTIONS, EvalError, select_variants, write_plot

    _setup_logging(False)
    if convention not in CONVENTIONS:
        raise EvalError(f"--convention must be one of {', '.join(CONVENTIONS)}, not {convention!r}")
    cfg = _config(config)
    names = [n.strip() for arg in strategies or [] for n in arg.split(",") if n.strip()]
    variants = select_variants(cfg.eval, names)
    with _progress(disable=as_json or markdown) as progress:
        evaluation = build_evaluation(
            cfg,
            variants,
            k=k or cfg.eval.k,
            progress=progress,
            convention=convention,
            skip_missing=skip_missing,
        )
        report = evaluation.run(questions)
    if plot is not None:
        write_plot(report, plot)
    for path, reason in report.failures.items():
        err.print(f"[yellow]not loaded[/] {escape(path)}: {escape(reason)}", highlight=False)
    for m in report.missing:
        err.print(f"[yellow]reference skipped[/] {escape(str(m))}", highlight=False)
    for s in report.strategies:
        for path, reason in s.chunk_failures.items():
            err.print(
                f"[yellow]not chunked[/] {escape(s.name)}: {escape(path)}: {escape(reason)}",
                highlight=False,
            )
    for name, reason in report.failed.items():
        err.print(f"[red]variant failed[/] {escape(name)}: {escape(reason)}", highlight=False)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    elif markdown:
        print(report.markdown())
    else:
        _print_eval(report)
    if not report.strategies:
        raise typer.Exit(1)


def _print_eval(report: EvalReport) -> None:
    table = Table(
        title=f"{report.questions} questions, {report.documents} documents, top {report.k}, "
        f"{report.convention} convention",
        caption="recall, IoU, precision (%): characters of the reference passages vs. the "
        "retrieved chunks, averaged over questions; hit rate, MRR, nDCG: a chunk is relevant "
        f"when it overlaps a reference. Embedded now: {report.embedded} texts.",
    )
    for col in report.HEADER:
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for row in report.rows():
        table.add_row(*row)
    # Twelve columns do not fit the 80 characters rich assumes for a pipe or a file.
    out = console if console.is_terminal else Console(width=140)
    out.print(table)
    if len({d for s in report.strategies for d in s.by_document}) > 1:
        per_doc = Table(title="per document")
        for col in report.FIGURES_HEADER:
            per_doc.add_column(col, justify="left" if col in ("strategy", "document") else "right")
        for row in report.figure_rows():
            per_doc.add_row(*row)
        out.print(per_doc)
    for s in report.strategies:
        out.print(f"  {s.name}: {s.settings}", highlight=False, soft_wrap=True, markup=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
