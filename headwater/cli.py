"""The `headwater` command: sync, query, status, verify, migrate, eval, serve, watch."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
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
from typer.core import TyperCommand, TyperGroup

from headwater import __version__
from headwater.config import HeadwaterConfig, load_config
from headwater.ingest.errors import (
    EXIT_CONFIG,
    EXIT_ENVIRONMENT,
    HeadwaterError,
    host_error,
)
from headwater.ingest.logs import Routing
from headwater.ingest.models import SearchMode
from headwater.ingest.progress import HEARTBEAT_SECONDS, Heartbeat
from headwater.ingest.report import SyncReport
from headwater.ingest.source import is_url, redact_url
from headwater.ingest.telemetry import configure_from_environment

console = Console()
err = Console(stderr=True, soft_wrap=True)
note = Console(stderr=True, soft_wrap=True)
"""What a run narrates on stderr (its start, heartbeats, warnings); silent with --quiet."""


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"

    @property
    def number(self) -> int:
        return int(getattr(logging, self.name.upper()))


@dataclass
class _Output:
    """What the common options asked for; set while the command line is parsed."""

    level: LogLevel | None = None
    verbose: bool = False
    quiet: bool = False

    @property
    def log_level(self) -> int:
        if self.level is not None:
            return self.level.number
        if self.verbose:
            return logging.INFO
        return logging.ERROR if self.quiet else logging.WARNING

    @property
    def tracebacks(self) -> bool:
        return self.log_level <= logging.INFO

    routing: Routing | None = None

    def reset(self) -> None:
        """Back to the defaults, and the logging as it was before the command."""
        self.level, self.verbose, self.quiet = None, False, False
        note.quiet = console.quiet = False
        if self.routing is not None:
            self.routing.undo()
            self.routing = None


_out = _Output()

COMMON_OPTIONS = ("verbose", "log_level", "quiet")
"""The options every command takes, before or after its name (`headwater sync --quiet`)."""


class _CleanHelp:
    """Flags show no `<bool>` in the help: a flag takes no value to describe."""

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class _Command(_CleanHelp, TyperCommand):
    pass


class _Commands(_CleanHelp, TyperGroup):
    """Every error a user can cause ends in one or two lines and its own exit code:
    2 for the config (or the store it names), 3 for the machine (a full disk, a read-only
    state folder, a model that cannot be loaded); 1 stays "files failed" (or drift).
    The traceback is shown only with -v."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The common options are declared once, on the callback; each command takes them
        # too. Their values go to `_out` through their callbacks, not to the functions.
        common = [p for p in self.params if p.name in COMMON_OPTIONS]
        for param in common:
            param.expose_value = False
        for command in self.commands.values():
            command.params.extend(common)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # One process may run several command lines (tests, an embedding application):
        # each starts from the defaults. The logging stays routed until then, for what
        # libraries log while the process exits.
        _out.reset()
        return super().parse_args(ctx, args)

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
    if _out.tracebacks:
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
    context_settings={"help_option_names": ["-h", "--help"]},
)
command = partial(app.command, cls=_Command)


def _version(show: bool) -> None:
    if show:
        print(f"headwater {__version__}")
        raise typer.Exit()


def _set_verbose(value: bool) -> None:
    _out.verbose = _out.verbose or value


def _set_quiet(value: bool) -> None:
    _out.quiet = _out.quiet or value


def _set_level(value: LogLevel | None) -> None:
    if value is not None:
        _out.level = value


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
        bool,
        typer.Option(
            "--verbose",
            "-v",
            callback=_set_verbose,
            help="Log more (--log-level info, other libraries' warnings included) and show "
            "the traceback of an error.",
        ),
    ] = False,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level",
            callback=_set_level,
            metavar="LEVEL",
            case_sensitive=False,
            help="debug, info, warning (the default) or error. Other libraries' messages "
            "(pdfminer, pypdf, gRPC) are the debug log: info shows their warnings, debug all.",
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            callback=_set_quiet,
            help="Print only errors, and what was asked for (query results, --json).",
        ),
    ] = False,
) -> None:
    """Keep a vector knowledge base in step with your documents."""
    configure_from_environment()  # spans of syncs, when OTEL_TRACES_EXPORTER asks for them


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Config file (default: $HEADWATER_CONFIG or ./headwater.toml)."
    ),
]


def _setup_logging(*, narrates: bool = False) -> None:
    """Route log records at the level the common options asked for: Headwater's own at
    their level, other libraries' (and gRPC's C core) only in the debug log. With --quiet,
    a command that `narrates` (its stdout tells what it did) prints only errors."""
    from rich.logging import RichHandler

    from headwater.ingest.logs import route_logs

    level = _out.log_level
    note.quiet = _out.quiet
    console.quiet = _out.quiet and narrates
    if _out.routing is not None:
        _out.routing.undo()
    _out.routing = route_logs(level, RichHandler(console=err, show_path=False, show_time=False))
    # Milvus Lite logs a whole traceback when it cannot open its file; ours says why.
    logging.getLogger("milvus_lite").setLevel(
        logging.DEBUG if level <= logging.DEBUG else logging.CRITICAL
    )
    if level > logging.INFO:
        # A [cluster]'s scheduler and nannies narrate every start and stop at INFO; a lost
        # worker is a WARNING, and stays. Set through Dask's config, which distributed reads
        # (and applies) when it is first imported.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        # The hub client sets its own loggers' level when first imported (after this), and
        # would print every retry of an unreachable hub twice; the load error says it all.
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _config(path: Path | None) -> HeadwaterConfig:
    return load_config(path)


def _heartbeat(every: float) -> Heartbeat:
    """Heartbeat lines on stderr (none with --quiet)."""

    def say(line: str) -> None:
        note.print(f"[dim]…[/] {line}", highlight=False)

    return Heartbeat(say, 0 if _out.quiet else every)


@contextmanager
def _progress(
    disable: bool, heartbeat: float = HEARTBEAT_SECONDS
) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback drawing one bar per stage on stderr when it is a terminal;
    otherwise (and with --json) a heartbeat line on stderr every `heartbeat` seconds."""
    bars = not disable and err.is_terminal and not _out.quiet
    with (
        _heartbeat(0 if bars else heartbeat).beating() as tally,
        Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not bars,
        ) as bar,
    ):
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            tally.update(stage, done, total)
            # A stage reported batch by batch (embed) shows its count over the run.
            done, total = tally.counts(stage)
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield progress


def _starting(cfg: HeadwaterConfig) -> str:
    """What the first seconds of a sync are spent on, before any bar moves."""
    workers = cfg.loading.workers
    parsers = (
        f"starting {workers} parser worker{'s' if workers != 1 else ''}"
        if workers
        else "parsing in this process"
    )
    sources = len(cfg.sources)
    return (
        f"Listing {sources} source{'s' if sources != 1 else ''}, loading the embedding model "
        f"({cfg.embedding.model}) and {parsers}…"
    )


@command()
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
    heartbeat: Annotated[
        float,
        typer.Option("--heartbeat", hidden=True, help="Seconds between heartbeat lines."),
    ] = HEARTBEAT_SECONDS,
) -> None:
    """Bring the store in step with the sources: embed what is new, delete what is gone."""
    from headwater.compose import build_engine

    _setup_logging(narrates=True)
    cfg = _config(config)
    note.print(_starting(cfg), highlight=False)
    with _progress(disable=as_json, heartbeat=heartbeat) as progress:
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
    """The counts and times on stdout, failures on stderr; with --quiet, only failures."""
    files, chunks = report.file_counts(), report.chunk_counts()
    console.print(
        "files: "
        + ", ".join(f"{n} {k}" for k, n in files.items())
        + f"\nchunks: {chunks['embedded']} embedded, {chunks['written']} written, "
        f"{chunks['deleted']} deleted"
    )
    console.print(report.times(), highlight=False, soft_wrap=True)
    for name, reason in report.source_errors.items():
        err.print(f"[red]source {name} not listed:[/] {reason}")
    for f in report.failures:
        stale = f" (stale: its last good {f.chunks} chunks stay in the store)" if f.stale else ""
        err.print(f"[red]failed[/] {f.source_id}: {f.reason}{stale}", highlight=False)
    for warning in report.warnings():
        note.print(f"[yellow]warning:[/] {warning}", highlight=False)


def listed(args: list[str]) -> list[str]:
    """Values given comma-separated, repeated, or both: `-t pdf,docx -t md`."""
    return [v.strip() for arg in args for v in arg.split(",") if v.strip()]


def parse_file_types(args: list[str]) -> tuple[str, ...]:
    """`--file-type` values as stored: lower case, without a leading dot."""
    return tuple(dict.fromkeys(v.lower().lstrip(".") for v in listed(args)))


def parse_pages(args: list[str]) -> tuple[int, ...]:
    """`--page` values: page numbers and ranges (`4-6`), 1-based."""
    out: list[int] = []
    for value in listed(args):
        first, _, last = value.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise typer.BadParameter(
                f"{value!r} is not a page number or a range like 4-6", param_hint="--page"
            ) from None
        if low < 1 or high < low:
            raise typer.BadParameter(
                f"{value!r}: pages count from 1, a range from low to high",
                param_hint="--page",
            )
        out.extend(range(low, high + 1))
    return tuple(dict.fromkeys(out))


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
                note.print(f"{exc}; waiting up to {wait:g}s for it to be released")
                told = True
            time.sleep(0.5)


@command()
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
    file_type: Annotated[
        list[str] | None,
        typer.Option(
            "--file-type",
            "-t",
            metavar="TYPES",
            help="Only documents of these types (pdf, docx, md, ...): comma-separated or repeated.",
        ),
    ] = None,
    page: Annotated[
        list[str] | None,
        typer.Option(
            "--page",
            "-p",
            metavar="PAGES",
            help="Only chunks on these pages (1-based; 3, 2,5 or 4-6): comma-separated or "
            "repeated.",
        ),
    ] = None,
) -> None:
    """Search the store: rank, score, source, page and a snippet per result."""
    from headwater.api import KnowledgeBase, hit_metadata
    from headwater.ingest.models import QueryFilter

    _setup_logging()
    filters = QueryFilter(
        source_glob=source,
        file_types=parse_file_types(file_type or []),
        pages=parse_pages(page or []),
    )
    cfg = _config(config)
    with KnowledgeBase(cfg) as kb:
        hits = _when_free(cfg, lambda: kb.search(text, k=k, filters=filters, mode=mode), wait)
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


@command()
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

    _setup_logging(narrates=True)
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


@command()
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

    _setup_logging(narrates=True)
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


@command()
def status(
    config: ConfigOption = None,
    wait: BUSY_WAIT = 120,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """What is configured and what the manifest and store hold."""
    from headwater.compose import build_state

    _setup_logging()
    cfg = _config(config)
    state = build_state(cfg)
    try:
        running = state.sync_running()
        docs, chunks = state.manifest.counts()
        last = state.manifest.last_commit()
        failed = len(state.manifest.failures())
        stored = _when_free(cfg, state.store.count, wait)
    finally:
        state.close()
    sources = [
        {
            "name": s.name,
            "path": redact_url(s.path) if is_url(s.path) else str(cfg.resolve(s.path)),
            "include": s.include,
            "exclude": s.exclude,
        }
        for s in cfg.sources
    ]
    if as_json:
        print(
            json.dumps(
                {
                    "store": state.describe,
                    "model": cfg.embedding.model,
                    "device": cfg.embedding.device,
                    "state_dir": str(cfg.state_dir),
                    "sources": sources,
                    "manifest": {
                        "documents": docs,
                        "chunks": chunks,
                        "failed_files": failed,
                        "last_change": _iso(last) if last else None,
                    },
                    "sync_running": running,
                    "store_chunks": stored,
                    "in_step": stored == chunks,
                },
                indent=2,
            )
        )
        return
    console.print(f"store: {state.describe}")
    console.print(f"model: {cfg.embedding.model} (device {cfg.embedding.device})")
    console.print(f"state: {cfg.state_dir}")
    for src in sources:
        console.print(
            f"source {src['name']}: {src['path']} include={src['include']} exclude={src['exclude']}"
        )
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last)) if last else "never"
    console.print(f"manifest: {docs} documents, {chunks} chunks; last change {when}")
    if failed:
        console.print(f"failed: {failed} file(s) remembered as failing on their content")
    if running:
        console.print("sync: one is running now (the figures may change when it ends)")
    console.print(
        f"store holds: {stored} chunks"
        + ("" if stored == chunks else "  [yellow](differs from manifest)[/]")
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


def _flows(what: str) -> None:
    """Prefect lives in flows/ and the `prefect` extra; say how to get it when missing."""
    import importlib.util

    if importlib.util.find_spec("prefect") is None:
        from headwater.ingest.errors import MissingExtraError

        raise MissingExtraError(what, "prefect")


@command()
def serve(config: ConfigOption = None) -> None:
    """Serve the config's Prefect deployments (schedules, file-event trigger) until Ctrl-C.

    Needs PREFECT_API_URL (a `prefect server start` on this machine, or your server/Cloud).
    """
    _flows("`headwater serve`")
    from headwater.flows.deployments import serve as serve_deployments
    from headwater.flows.sync import config_file

    _setup_logging()
    cfg = _config(config)
    path = config_file(str(config) if config else None)
    if path is None:
        raise HeadwaterError("`headwater serve` needs a config file: pass --config")
    serve_deployments(cfg, path)


@command()
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
    heartbeat: Annotated[
        float,
        typer.Option("--heartbeat", hidden=True, help="Seconds between heartbeat lines."),
    ] = HEARTBEAT_SECONDS,
) -> None:
    """Watch the local source folders; ingest created, changed and deleted files.

    With PREFECT_API_URL set, each batch is sent as a Prefect event that the
    `headwater serve` file-event deployment turns into a run; otherwise the run happens here.
    """
    from headwater.flows.watch import EventEmitter, InProcessRunner, batches

    _setup_logging(narrates=True)
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
        note.print(f"watching; each batch goes to Prefect as an event about {path}")
        for ids in batches(cfg):
            emit(ids)
            note.print(f"sent {len(ids)} changed file(s): {', '.join(ids[:5])}")
        return
    # A long batch (a folder dropped in) says where it is, as `sync` does off a terminal.
    heart = _heartbeat(heartbeat)
    run = InProcessRunner(cfg, progress=heart.progress)
    try:
        run.warm_up()  # the model, tokenizers and parser processes, before the first event
        note.print("watching; syncing each batch in this process (no PREFECT_API_URL)")
        for ids in batches(cfg):
            try:
                with heart.beating():
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


@command("eval")
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

    _setup_logging()
    if convention not in CONVENTIONS:
        raise EvalError(f"--convention must be one of {', '.join(CONVENTIONS)}, not {convention!r}")
    cfg = _config(config)
    names = listed(strategies or [])
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
