"""The sync as a Prefect flow: per-file load-and-chunk tasks with retries, batched writes."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, wait

from ingest.config import load_config
from ingest.models import FileResult, FileStatus
from ingest.planning import PlannedFile
from ingest.prepare import Prepared, PreparedFile
from ingest.report import SyncReport
from ingest.sync import SyncEngine


@task(
    name="load-and-chunk",
    retries=2,
    retry_delay_seconds=2,
    cache_policy=NO_CACHE,
    persist_result=False,
    task_run_name="load {item.file.path}",
)
def load_and_chunk(engine: SyncEngine, item: PlannedFile) -> Prepared:
    """A bad file is a result, not a task failure: parsing it again would fail the same way.
    Retries are for the unexpected (a flaky network share, a killed worker)."""
    return engine.preparer.prepare_one(item)


@task(
    name="embed-and-write",
    retries=3,
    retry_delay_seconds=[2, 8, 30],
    cache_policy=NO_CACHE,
    persist_result=False,
)
def embed_and_write(engine: SyncEngine, batch: list[PreparedFile], report: SyncReport) -> None:
    engine.ingest(batch, report)


def _collect(
    futures: list[PrefectFuture[PreparedFile | FileResult]], items: list[PlannedFile]
) -> list[PreparedFile | FileResult]:
    wait(futures)
    out: list[PreparedFile | FileResult] = []
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


def report_markdown(report: SyncReport) -> str:
    files, chunks = report.file_counts(), report.chunk_counts()
    lines = [
        "# Headwater sync",
        "",
        "| files | " + " | ".join(files) + " |",
        "|---|" + "---|" * len(files),
        "| | " + " | ".join(str(v) for v in files.values()) + " |",
        "",
        f"Chunks: {chunks['embedded']} embedded, {chunks['written']} written, "
        f"{chunks['deleted']} deleted. Wall time {report.wall_seconds:.1f}s.",
    ]
    if report.warnings():
        lines += ["", "## Warnings", "", *(f"- {w}" for w in report.warnings())]
    if report.failures:
        lines += ["", "## Failures", "", "| file | reason |", "|---|---|"]
        lines += [f"| {f.source_id} | {f.reason} |" for f in report.failures]
    return "\n".join(lines)


@flow(name="headwater-sync", log_prints=False)
def sync_flow(config_path: str | None = None, batch_files: int = 32) -> dict[str, Any]:
    """Sync every configured source once; returns the same object as `headwater sync --json`."""
    logger = get_run_logger()
    engine = SyncEngine(load_config(config_path))
    try:
        with engine.exclusive():
            report, the_plan = engine.begin()
            items = the_plan.to_load
            logger.info(
                "%d to load, %d unchanged, %d deleted",
                len(items),
                len(the_plan.unchanged),
                len(the_plan.deleted),
            )
            for start in range(0, len(items), batch_files):
                group = items[start : start + batch_files]
                futures = [load_and_chunk.submit(engine, item) for item in group]
                prepared = []
                for result in _collect(futures, group):
                    if isinstance(result, FileResult):
                        report.add(result)
                    else:
                        prepared.append(result)
                if prepared:
                    embed_and_write(engine, prepared, report)
            engine.finish(the_plan, report)
    finally:
        engine.close()
    create_markdown_artifact(markdown=report_markdown(report), key="headwater-sync-report")
    return report.to_dict()
