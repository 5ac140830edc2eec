"""The sync as a Prefect flow: per-file load-and-chunk tasks, batched embed-and-write tasks.

The flow is the engine's own run (`SyncEngine.begin/prepare_all/ingest/finish`) with two
seams filled by Prefect: files are prepared by tasks on a task runner (threads, or a Dask
cluster when `orchestration.dask_address` is set), and each batch is embedded and written
by a task that retries with backoff. So a flow run and `headwater sync` give the same
chunks and the same report.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from ingest.config import HeadwaterConfig, find_config, load_config
from ingest.errors import HeadwaterError
from ingest.models import FileResult, FileStatus
from ingest.planning import PlannedFile, Scope
from ingest.prepare import Prepared, PreparedFile, Preparer
from ingest.report import SyncReport
from ingest.sync import SyncEngine

REPORT_ARTIFACT_KEY = "headwater-sync-report"


@task(
    name="load-and-chunk",
    retries=2,
    retry_delay_seconds=2,
    cache_policy=NO_CACHE,
    persist_result=False,
    task_run_name="load {item.file.path}",
)
def load_and_chunk(preparer: Preparer, item: PlannedFile) -> Prepared:
    """A bad file is a result, not a task failure: parsing it again would fail the same way.
    Retries are for the unexpected (a flaky network share, a lost Dask worker)."""
    return preparer.prepare_one(item)


@task(
    name="embed-and-write",
    retries=3,
    retry_delay_seconds=[2, 8, 30],
    cache_policy=NO_CACHE,
    persist_result=False,
)
def embed_and_write(engine: SyncEngine, batch: list[PreparedFile], report: SyncReport) -> None:
    """Embed what the store lacks, write, commit. Safe to retry: `apply` skips chunks the
    store already holds and the manifest is committed only after the write."""
    engine.apply(batch, report)


class TaskRunnerExecutor:
    """A `PrepareExecutor` that runs `load_and_chunk` tasks on a Prefect task runner.

    Files go out a round at a time so the flow embeds one round while holding at most
    `round_size` parsed files.
    """

    def __init__(self, runner: TaskRunner[Any], round_size: int) -> None:
        self.runner = runner
        self.round_size = round_size

    def map(self, preparer: Preparer, items: Sequence[PlannedFile]) -> Iterator[Prepared]:
        for start in range(0, len(items), self.round_size):
            group = items[start : start + self.round_size]
            futures = [
                self.runner.submit(load_and_chunk, {"preparer": preparer, "item": item})
                for item in group
            ]
            yield from _results(futures, group)


def _results(
    futures: list[PrefectFuture[Prepared]], items: Sequence[PlannedFile]
) -> list[Prepared]:
    wait(futures)
    out: list[Prepared] = []
    for future, item in zip(futures, items, strict=True):
        try:
            out.append(future.result())
        except Exception as exc:  # retries exhausted: report the file, keep the run going
            out.append(
                FileResult(
                    item.file.source_id,
                    item.file.path,
                    FileStatus.FAILED,
                    reason=f"{type(exc).__name__}: {exc}",
                )
            )
    return out


def task_runner(config: HeadwaterConfig) -> TaskRunner[Any]:
    """Dask when the config names a scheduler, else a thread pool of `load_concurrency`."""
    address = config.orchestration.dask_address
    if address:
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            from ingest.errors import MissingExtraError

            raise MissingExtraError("orchestration.dask_address", "dask") from None
        return DaskTaskRunner(address=address)
    return ThreadPoolTaskRunner(max_workers=config.orchestration.load_concurrency)


def report_markdown(report: SyncReport, title: str = "Headwater sync") -> str:
    """The run report as the markdown artifact: the counts and failures of `sync --json`."""
    data = report.to_dict()
    files, chunks = data["files"], data["chunks"]
    lines = [
        f"# {title}",
        "",
        f"Store: `{data['store']}`. Result: {'ok' if data['ok'] else 'with failures'}.",
        "",
        "| files | " + " | ".join(files) + " |",
        "|---|" + "---|" * len(files),
        "| | " + " | ".join(str(v) for v in files.values()) + " |",
        "",
        "| chunks | " + " | ".join(chunks) + " | truncated |",
        "|---|" + "---|" * (len(chunks) + 1),
        "| | " + " | ".join(str(v) for v in chunks.values()) + f" | {data['truncated']} |",
        "",
        "| stage | " + " | ".join(data["stage_seconds"]) + " | wall |",
        "|---|" + "---|" * (len(data["stage_seconds"]) + 1),
        "| seconds | "
        + " | ".join(f"{v:.2f}" for v in data["stage_seconds"].values())
        + f" | {data['wall_seconds']:.2f} |",
    ]
    if data["warnings"]:
        lines += ["", "## Warnings", "", *(f"- {w}" for w in data["warnings"])]
    if data["failures"] or data["source_errors"]:
        lines += ["", "## Failures", "", "| file | reason |", "|---|---|"]
        lines += [f"| {f['path']} | {_cell(f['reason'])} |" for f in data["failures"]]
        lines += [
            f"| source {name} | {_cell(reason)} |" for name, reason in data["source_errors"].items()
        ]
    return "\n".join(lines)


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


def config_file(config_path: str | None) -> str | None:
    """The config file as an absolute path, so a served deployment finds it from any folder."""
    found = find_config(config_path)
    return str(found.resolve()) if found else None


@flow(name="headwater-sync", log_prints=False)
def sync_flow(
    config_path: str | None = None,
    sources: list[str] | None = None,
    paths: list[str] | None = None,
) -> dict[str, Any]:
    """Sync the configured sources (or only `sources`, or only the documents `paths`, given
    as ``source:path`` ids); returns the same object as `headwater sync --json`."""
    logger = get_run_logger()
    config = load_config(config_path)
    load_secrets(config)
    scope = Scope(frozenset(sources or ()), frozenset(paths or ()))
    engine = SyncEngine(config)
    try:
        with engine.exclusive(wait=config.orchestration.lock_wait_s):
            report, the_plan = engine.begin(scope)
            logger.info(
                "%d to load, %d unchanged, %d deleted",
                len(the_plan.to_load),
                len(the_plan.unchanged),
                len(the_plan.deleted),
            )
            with task_runner(config) as runner:
                engine.executor = TaskRunnerExecutor(runner, config.orchestration.batch_files)
                engine.ingest(
                    engine.prepare_all(the_plan.to_load, report),
                    report,
                    apply=lambda batch, r: embed_and_write(engine, batch, r),
                )
            engine.finish(the_plan, report)
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
