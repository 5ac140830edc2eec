"""The sync as a Prefect flow: the engine's one `run`, with files prepared by Prefect tasks.

Prefect adds what it is for: a task per file on a task runner (threads, or the Dask
cluster of the `[cluster]` table, whose workers also embed), the run report as an
artifact, secrets from Secret blocks, and (in `deployments`) schedules and event triggers. Store calls are
retried once, by the engine's store (`store.retry`), so a flow run and `headwater sync`
give the same chunks and the same report.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from headwater.compose import build_engine
from headwater.flows.config import HeadwaterConfig, load_config
from headwater.ingest.config import find_config
from headwater.ingest.engine import SyncEngine
from headwater.ingest.errors import HeadwaterError
from headwater.ingest.planning import Scope
from headwater.ingest.progress import HEARTBEAT_SECONDS, Heartbeat
from headwater.ingest.report import SyncReport
from headwater.ingest.telemetry import configure_from_environment

T = TypeVar("T")

REPORT_ARTIFACT_KEY = "headwater-sync-report"


@task(
    name="load-and-chunk",
    retries=2,
    retry_delay_seconds=2,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def load_and_chunk(fn: Callable[..., Any], args: list[Any]) -> Any:
    """Read, parse and chunk one file. A bad file is a result, not a task failure: parsing
    it again would fail the same way. Retries are for the unexpected (a flaky network
    share, a lost Dask worker)."""
    return fn(*args)


class TaskRunnerExecutor(Executor):
    """A `concurrent.futures.Executor` whose calls run as `load-and-chunk` tasks on a Prefect
    task runner (threads here, or a Dask cluster), so each file shows in the flow run."""

    def __init__(self, runner: TaskRunner[Any], *, local: bool) -> None:
        self.runner = runner
        self.local_workers = 1 if local else 0
        self.files_in_flight = 0
        """Files in flight (0: the engine's default); a cluster keeps more busy."""
        # A task runner's futures are waited on from threads of our own, so the engine
        # can take whichever file finishes first.
        self._waiters = ThreadPoolExecutor(thread_name_prefix="headwater-task-wait")

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        name = _task_name(args)
        future = self.runner.submit(
            load_and_chunk.with_options(task_run_name=name), {"fn": fn, "args": list(args)}
        )
        context = contextvars.copy_context()
        return self._waiters.submit(context.run, future.result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._waiters.shutdown(wait=wait, cancel_futures=cancel_futures)


def _task_name(args: tuple[Any, ...]) -> str:
    file = getattr(args[0], "file", None) if args else None
    return f"load {file.path}" if file is not None else "load"


def task_runner(config: HeadwaterConfig, engine: SyncEngine | None = None) -> TaskRunner[Any]:
    """The `[cluster]` (the one `engine` uses, started or connected now) when the config
    has one, else a thread pool of `load_concurrency`."""
    if not config.cluster.enabled:
        return ThreadPoolTaskRunner(max_workers=config.orchestration.load_concurrency)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        from headwater.ingest.errors import MissingExtraError

        raise MissingExtraError("the [cluster] table in a Prefect flow", "dask") from None
    # The engine's own client started the `local` cluster or checked the address; the
    # tasks go to the same scheduler, whose workers hold the embedding models.
    address = getattr(engine.executor, "address", None) if engine else None
    return DaskTaskRunner(address=address or config.cluster.address)


SLOWEST = 10
"""Files the artifact lists as the slowest to read, parse and chunk."""


def report_markdown(
    report: SyncReport, title: str = "Headwater sync", slowest: int = SLOWEST
) -> str:
    """The run report as the markdown artifact: the counts of `sync --json` in tables whose
    rows say what they count, the failures (file, reason) and the slowest files."""
    data = report.to_dict()
    files, chunks, stages = data["files"], data["chunks"], data["stage_seconds"]
    failed = len(data["failures"]) + len(data["source_errors"])
    lines = [
        f"# {title}",
        "",
        f"Store: `{data['store']}`. Result: {'ok' if data['ok'] else f'{failed} failed'}.",
        "",
        *_table(["", *files], [["files", *files.values()]]),
        "",
        *_table(["", *chunks, "truncated"], [["chunks", *chunks.values(), data["truncated"]]]),
        "",
        *_table(
            ["", *stages, "wall"],
            [["seconds", *(f"{v:.2f}" for v in stages.values()), f"{data['wall_seconds']:.2f}"]],
        ),
        "",
        "Stage seconds add up the time each stage was busy, in every worker; stages run at "
        "the same time (files are parsed while others are embedded), so their sum may "
        "exceed the wall time.",
    ]
    if data["warnings"]:
        lines += ["", "## Warnings", "", *(f"- {w}" for w in data["warnings"])]
    if failed:
        rows = [[f["path"], f["reason"]] for f in data["failures"]]
        rows += [[f"source {n}", r] for n, r in data["source_errors"].items()]
        lines += ["", f"## Failures ({failed})", "", *_table(["file", "reason"], rows)]
    timed = sorted((f for f in report.files if f.seconds > 0), key=lambda f: -f.seconds)
    if timed:
        rows = [[f.source_id, f.status.value, f.chunks, f"{f.seconds:.2f}"] for f in timed]
        lines += [
            "",
            f"## Slowest files ({min(slowest, len(rows))} of {len(rows)} read this run)",
            "",
            *_table(["file", "status", "chunks", "seconds"], rows[:slowest]),
        ]
    return "\n".join(lines)


def _table(header: list[Any], rows: list[list[Any]]) -> list[str]:
    """A markdown table; each row's first cell says what the row holds."""
    out = ["| " + " | ".join(_cell(str(h)) for h in header) + " |", "|---" * len(header) + "|"]
    out += ["| " + " | ".join(_cell(str(c)) for c in row) + " |" for row in rows]
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def load_secrets(config: HeadwaterConfig) -> None:
    """Fill the environment variables named in `orchestration.secret_blocks` from their
    Prefect Secret blocks, for this flow run's process; values are never logged."""
    if not config.orchestration.secret_blocks:
        return
    from prefect.blocks.system import Secret

    for variable, block in config.orchestration.secret_blocks.items():
        try:
            # load() is sync-or-async by context; called from sync code it returns the block.
            secret = cast(Secret, Secret.load(block))
        except ValueError as exc:
            raise HeadwaterError(
                f"orchestration.secret_blocks.{variable}: no Secret block {block!r} ({exc})"
            ) from None
        os.environ[variable] = str(secret.get())


def _log_from_thread(logger: Any, line: str) -> None:
    """`logger.info` from a thread of ours, taking logging's module lock before the handler's:
    a library that configures logging as it is imported during the run (pymilvus does) holds
    the module lock while it waits for each handler's, and Prefect's API handler may want the
    module lock inside its own (to start its log worker): in the other order, both would wait
    forever."""
    with logging._lock:  # type: ignore[attr-defined]
        logger.info(line)


def _what(scope: Scope, config: HeadwaterConfig) -> str:
    if scope.source_ids:
        return f"{len(scope.source_ids)} named document(s)"
    names = [s.name for s in config.sources if scope.covers_source(s.name)]
    return f"source(s) {', '.join(names)}"


def config_file(config_path: str | None) -> str | None:
    """The config file as an absolute path, so a served deployment finds it from any folder."""
    found = find_config(config_path)
    return str(found.resolve()) if found else None


@flow(name="headwater-sync", log_prints=False)
def sync_flow(
    config_path: str | None = None,
    sources: list[str] | None = None,
    paths: list[str] | None = None,
    heartbeat_s: float = HEARTBEAT_SECONDS,
) -> dict[str, Any]:
    """Sync the configured sources (or only `sources`, or only the documents `paths`, given
    as ``source:path`` ids); returns the same object as `headwater sync --json`. Every
    `heartbeat_s` seconds the run's log says how far it is (0: never)."""
    logger = get_run_logger()
    configure_from_environment()  # a served flow run is a process of its own
    config = load_config(config_path)
    load_secrets(config)
    scope = Scope(frozenset(sources or ()), frozenset(paths or ()))
    logger.info("syncing %s into %s", _what(scope, config), config.store.backend)
    heart = Heartbeat(partial(_log_from_thread, logger), heartbeat_s)
    engine = build_engine(config, progress=heart.progress)
    try:
        with heart.beating(), task_runner(config, engine) as runner:
            executor = TaskRunnerExecutor(runner, local=not config.cluster.enabled)
            if config.cluster.enabled:
                executor.files_in_flight = config.cluster.files_in_flight
            try:
                report = engine.run(
                    wait=config.orchestration.lock_wait_s, scope=scope, executor=executor
                )
            finally:
                executor.shutdown()
    finally:
        engine.close()
    for failure in report.failures:
        logger.warning("failed %s: %s", failure.source_id, failure.reason)
    create_markdown_artifact(
        markdown=report_markdown(report),
        key=REPORT_ARTIFACT_KEY,
        description=f"Headwater sync of {Path(config_path).name if config_path else 'config'}",
    )
    return report.to_dict()
