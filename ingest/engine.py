"""The sync engine: plan, prepare, diff, write, commit; `run` is the whole of it.

Store first, manifest second: a batch's manifest rows are committed, in one transaction,
only after the store accepted its chunks and deletions, so the manifest never claims
what the store lacks. Files are prepared on an executor while the previous batch is
embedded and written, and at most a bounded number are held at once.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import islice

from headwater.ingest.config import LoadingConfig
from headwater.ingest.diff import WritePlan, fresh_ids, plan_writes
from headwater.ingest.embedding import Embedder, cpu_cores, embedding_input
from headwater.ingest.embedding_cache import EmbeddingCache
from headwater.ingest.errors import HeadwaterError
from headwater.ingest.executors import BoundedMap, InProcessExecutor, in_flight, local_workers
from headwater.ingest.faults import fault_point
from headwater.ingest.manifest import FailureEntry, Listed, ManifestEntry
from headwater.ingest.models import (
    Chunk,
    CollectionSpec,
    DocumentId,
    FileResult,
    FileStatus,
    VectorRecord,
)
from headwater.ingest.planning import (
    PlannedFile,
    Scope,
    SyncPlan,
    deleted,
    failure_key,
    plan_listed,
)
from headwater.ingest.prepare import Prepared, PreparedFile, Preparer, failure
from headwater.ingest.report import SyncReport
from headwater.ingest.source import ListsNamedFiles, Source
from headwater.ingest.state import KnowledgeState
from headwater.ingest.telemetry import Tracing, now

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""Called as progress(stage, done, total)."""

FLUSH_CHUNKS = 512
"""Chunks gathered before a batch is embedded and written."""

REMOVE_BATCH = 500
"""Deleted documents whose chunks are looked up, deleted and forgotten together."""

PLAN_BATCH = 1000
"""Listed files compared with the manifest per query while planning."""

PREFETCH_FILES = 8
"""Files submitted to the executor and not yet written: parsing goes on while a batch is
embedded, and memory stays bounded however many files a run has."""


@dataclass
class Batch:
    """Prepared files and failures, written and committed together."""

    files: list[PreparedFile] = field(default_factory=list)
    failures: list[tuple[PlannedFile, FileResult]] = field(default_factory=list)
    chunks: int = 0


def loading_key(loading: LoadingConfig) -> str:
    """Digest of the loading settings: a file that failed on its content is tried again
    when they change."""
    return hashlib.blake2b(loading.model_dump_json().encode(), digest_size=8).hexdigest()


class SyncEngine:
    """Keeps one store in step with the sources its preparer reads. Opens nothing until used.

    Built from the config by `headwater.compose.build_engine`; each part arrives built.
    """

    def __init__(
        self,
        *,
        state: KnowledgeState,
        preparer: Preparer,
        embedder: Embedder,
        loading_key: str,
        embedding_cache: EmbeddingCache | None = None,
        executor: Executor | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.state = state
        self.preparer = preparer
        self.embedder = embedder
        self.loading_key = loading_key
        self.embedding_cache = embedding_cache
        self.executor = executor
        self.progress = progress or (lambda stage, done, total: None)
        self._busy_parsers: Callable[[], int] = _no_parsers
        self._tracing = Tracing()

    @property
    def sources(self) -> list[Source]:
        return list(self.preparer.sources.values())

    @cached_property
    def collection_spec(self) -> CollectionSpec:
        """What this engine's vectors are (loads the model to learn the dimension)."""
        return CollectionSpec(self.embedder.dimension, self.state.model)

    def close(self, *, store: bool = True) -> None:
        """Release what the engine opened; `store=False` leaves the store open for a
        caller that shares it (the API keeps searching it)."""
        if store:
            self.state.close()
        else:
            self.state.manifest.close()
        if self.embedding_cache is not None:
            self.embedding_cache.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True)

    # -- the whole run -------------------------------------------------------------

    def run(
        self,
        *,
        wait: float = 0,
        scope: Scope | None = None,
        retry_failed: bool = False,
        executor: Executor | None = None,
    ) -> SyncReport:
        """One sync of `scope` (default everything), preparing files on `executor` (default
        the engine's own). Raises SyncLockedError if another sync holds the state folder
        for longer than `wait` seconds."""
        # A tracer provider set since the engine was built (by the application) is used.
        self._tracing = tracing = Tracing()
        where = {"backend": self.state.backend, "collection": self.state.store.collection}
        with self.state.exclusive(wait), tracing.span("sync", **where) as root:
            report = SyncReport(store=f"{self.state.backend}:{self.state.store.location}")
            with report.timed("list_plan"), tracing.span("plan") as span:
                the_plan = self.plan(report, scope, retry_failed=retry_failed)
                span.set_attributes(_plan_attributes(the_plan))
            self._report_planned(the_plan, report)
            if the_plan.to_load:
                # Before any file is parsed: a collection made for another model fails now.
                self.state.store.ensure_collection(self.collection_spec)
                for batch in self._batches(the_plan.to_load, executor, report):
                    self.write(batch, report)
            self._remove(the_plan.deleted, report)
            if the_plan.to_load or the_plan.deleted:
                # Searchable at full speed when the run ends, here and in the next process
                # to open the store, instead of at that process's first search.
                with report.timed("write"):
                    self.state.store.flush()
            report.stop_clock()
            root.set_attributes(_report_attributes(report))
            return report

    def plan(
        self,
        report: SyncReport | None = None,
        scope: Scope | None = None,
        *,
        retry_failed: bool = False,
    ) -> SyncPlan:
        """List the sources (those in `scope`) and compare with the manifest, a batch of
        listed files per manifest query. Files that failed on their content and have not
        changed are not planned for loading, unless `retry_failed`.

        What it holds grows with the files to load and delete, not with the corpus:
        unchanged files are counted, and the ids listed wait in the manifest's database."""
        scope = scope or Scope()
        manifest = self.state.manifest
        failures = {
            sid: f
            for sid, f in manifest.failures().items()
            if scope.covers(DocumentId.parse(sid).source, sid)
        }
        result, errors, listed_sources = SyncPlan(), {}, set()
        with manifest.listing() as listed:
            for source in self.sources:
                if not scope.covers_source(source.name):
                    continue
                try:
                    part = self._plan_source(
                        source, scope, listed, {} if retry_failed else failures
                    )
                except sqlite3.Error:
                    raise  # the manifest's own trouble, not the source's
                except Exception as exc:
                    # Nothing of a source listed in part is planned: neither loads nor deletions.
                    errors[source.name] = str(exc)
                    log.error("listing source %s failed: %s", source.name, exc)
                    continue
                result.extend(part)
                listed_sources.add(source.name)
            unlisted = listed.unlisted(scope.source_ids)
            result.deleted = deleted(
                (e for e in unlisted if scope.covers(e.source, e.source_id)), errors
            )
            # Failed files that were deleted or excluded since.
            gone = listed.missing(
                [s for s in failures if DocumentId.parse(s).source in listed_sources]
            )
        if gone:
            manifest.forget_failures(gone)
        if report is not None:
            report.source_errors.update(errors)
        return result

    def _plan_source(
        self,
        source: Source,
        scope: Scope,
        listed: Listed,
        failures: dict[str, FailureEntry],
    ) -> SyncPlan:
        """The plan for one source's listed files, PLAN_BATCH files per manifest query."""
        chunker = self.preparer.chunkers[source.name].settings_key
        paths = scope.paths_of(source.name)
        # A run about a few files (a watcher's batch) looks at those files, not the source.
        listing = (
            source.list_named(paths)
            if paths is not None and isinstance(source, ListsNamedFiles)
            else source.list_files()
        )
        files = (f for f in listing if scope.covers(f.source, f.source_id))
        part = SyncPlan()
        while batch := list(islice(files, PLAN_BATCH)):
            ids = [f.source_id for f in batch]
            listed.add(ids)
            entries = self.state.manifest.entries_of(ids)
            part.extend(plan_listed(batch, entries, chunker, failures, self.loading_key))
        return part

    # -- stages --------------------------------------------------------------------

    def _report_planned(self, the_plan: SyncPlan, report: SyncReport) -> None:
        report.unopened += the_plan.unchanged
        for known in the_plan.known_failures:
            prev = known.previous
            report.add(
                FileResult(
                    known.file.source_id,
                    known.file.path,
                    FileStatus.FAILED,
                    chunks=prev.chunk_count if prev else 0,
                    reason=f"{known.reason} (unchanged since it failed; not parsed again)",
                    stale=prev is not None,
                    permanent=True,
                )
            )

    def _batches(
        self, items: Sequence[PlannedFile], executor: Executor | None, report: SyncReport
    ) -> Iterator[Batch]:
        """Prepared files in batches of about FLUSH_CHUNKS chunks; failures ride along."""
        owned = executor is None and self.executor is None
        runner = executor or self.executor or InProcessExecutor()
        parsers = local_workers(runner)
        work = BoundedMap(
            runner, self.preparer.prepare_one, items, in_flight(runner, PREFETCH_FILES)
        )
        # While files are being parsed on this machine, the encoder leaves them a core each.
        self._busy_parsers = lambda: min(work.running, parsers)
        self.progress("load", 0, len(items))
        batch = Batch()
        try:
            for done, (item, future) in enumerate(work, 1):
                fault_point("load")
                result = _outcome(item, future)
                self._trace_prepared(item, result)
                if isinstance(result, PreparedFile):
                    for stage, seconds in result.seconds.items():
                        report.stage_seconds[stage] += seconds
                    batch.files.append(result)
                    batch.chunks += len(result.chunks)
                else:
                    # A file that failed after parsing for a while still took load time.
                    report.stage_seconds["load"] += result.load_seconds or 0.0
                    batch.failures.append((item, result))
                self.progress("load", done, len(items))
                if batch.chunks >= FLUSH_CHUNKS:
                    yield batch
                    batch = Batch()
            if batch.files or batch.failures:
                yield batch
        finally:
            work.close()
            self._busy_parsers = _no_parsers
            if owned:
                runner.shutdown(wait=True)

    def _trace_prepared(self, item: PlannedFile, result: Prepared) -> None:
        """Load and chunk spans of one file, timed where it was prepared."""
        file = item.file.source_id
        if isinstance(result, FileResult):
            start = now() - result.seconds
            self._tracing.past("load", start, result.seconds, result.reason, file=file)
            return
        load = result.seconds.get("load", 0.0)
        status = "unchanged" if result.same_content else "loaded"
        self._tracing.past("load", result.started, load, file=file, status=status)
        if "chunk" in result.seconds:
            self._tracing.past(
                "chunk",
                result.started + load,
                result.seconds["chunk"],
                file=file,
                chunks=len(result.chunks),
            )

    def _cpu_threads(self) -> int | None:
        """The encoder's thread budget now: a core less per file being parsed here."""
        busy = self._busy_parsers()
        return max(1, cpu_cores() - busy) if busy else None

    def write(self, batch: Batch, report: SyncReport) -> None:
        """Execute one batch: diff against manifest and store, embed what is new, write,
        delete what vanished, then commit manifest rows, touches and failures at once."""
        state = self.state
        changed = [p for p in batch.files if not p.same_content]
        touched = [p for p in batch.files if p.same_content]
        # One lookup per batch, not per file, in the manifest and in the store: per-file
        # round trips would make a sync of many small files as slow as its store is large.
        previous = state.manifest.chunk_hashes_of(p.planned.file.source_id for p in changed)
        fresh = fresh_ids(changed, previous)
        with report.timed("write"):
            held = state.store.existing_ids(fresh) if fresh else set()
            stored = state.store.ids_by_source(previous) if previous else {}
        plan = plan_writes(changed, previous, held, stored)
        records, embedded, truncated = self._vectors(plan, report)
        with report.timed("write"):
            if records:
                with self._tracing.span("upsert", records=len(records)):
                    state.store.upsert(records)
            if plan.delete:
                with self._tracing.span("delete", chunks=len(plan.delete)):
                    state.store.delete_ids(plan.delete)

        fault_point("commit")  # the store holds the batch; the manifest does not yet
        with (
            report.timed("commit"),
            self._tracing.span(
                "commit", documents=len(plan.documents), failures=len(batch.failures)
            ),
        ):
            state.manifest.commit_batch(
                documents=[(d.entry, d.hashes) for d in plan.documents],
                touched=[(p.planned.file.source_id, p.planned.file.fingerprint) for p in touched],
                failures=[
                    FailureEntry(
                        item.file.source_id,
                        item.file.fingerprint,
                        failure_key(item.chunker, self.loading_key),
                        result.reason or "",
                    )
                    for item, result in batch.failures
                    # Remembered, so the same bytes are not parsed again only to fail again.
                    if result.permanent and result.reason
                ],
            )
        self._report_batch(batch, plan, records, embedded, truncated, report)

    def _vectors(
        self, plan: WritePlan, report: SyncReport
    ) -> tuple[list[VectorRecord], set[str], set[str]]:
        """Records to write: rewrites with their stored vectors, the rest embedded.

        Returns the records, the ids embedded (not taken from the cache), and the ids the
        model read only in part."""
        to_embed = dict(plan.embed)
        records: list[VectorRecord] = []
        if plan.rewrite:
            with report.timed("write"):
                stored = {r.id: r.vector for r in self.state.store.fetch(plan.rewrite)}
            for cid, c in plan.rewrite.items():
                if cid in stored:
                    records.append(VectorRecord(c, stored[cid]))
                else:
                    to_embed[cid] = c
        if not to_embed:
            return records, set(), set()
        fault_point("embed")
        chunks: list[Chunk] = list(to_embed.values())
        texts = [embedding_input(c, self.preparer.context) for c in chunks]
        embedded = set(to_embed)
        with report.timed("embed"), self._tracing.span("embed", chunks=len(chunks)) as span:
            self.progress("embed", 0, len(chunks))
            # The model cuts longer input silently; count it so the report can say so.
            counts = self.embedder.token_counts(texts)
            limit = self.embedder.max_tokens
            truncated = {c.id for c, n in zip(chunks, counts, strict=True) if limit and n > limit}
            report.model_max_tokens = limit
            if self.embedding_cache is None:
                vectors = self.embedder.embed(texts, counts, threads=self._cpu_threads)
            else:
                # Text embedded before (moved from another file, or cut the same way by
                # another strategy) is written, not embedded, and not counted so.
                vectors, reused = self.embedding_cache.embed(
                    self.embedder, texts, counts, threads=self._cpu_threads
                )
                embedded -= {chunks[i].id for i in reused}
                span.set_attribute("headwater.chunks.cached", len(reused))
            self.progress("embed", len(chunks), len(chunks))
        records.extend(VectorRecord(c, v) for c, v in zip(chunks, vectors, strict=True))
        return records, embedded, truncated

    def _report_batch(
        self,
        batch: Batch,
        plan: WritePlan,
        records: list[VectorRecord],
        embedded: set[str],
        truncated: set[str],
        report: SyncReport,
    ) -> None:
        for _, result in batch.failures:
            report.add(result)
        for p in batch.files:
            if p.same_content:
                prev = p.planned.previous
                report.add(
                    FileResult(
                        p.planned.file.source_id,
                        p.planned.file.path,
                        FileStatus.UNCHANGED,
                        chunks=prev.chunk_count if prev else 0,
                        seconds=sum(p.seconds.values()),
                    )
                )
        written = {r.id for r in records}
        for d in plan.documents:
            ids = set(d.hashes)
            report.add(
                FileResult(
                    d.entry.source_id,
                    d.entry.path,
                    FileStatus.CHANGED if d.file.planned.previous else FileStatus.ADDED,
                    chunks=len(ids),
                    embedded=len(ids & embedded),
                    written=len(ids & written),
                    deleted=len(d.deleted),
                    truncated=len(ids & truncated),
                    warnings=d.file.warnings,
                    seconds=sum(d.file.seconds.values()),
                )
            )

    def _remove(self, entries: Sequence[ManifestEntry], report: SyncReport) -> None:
        """Delete the vectors of documents that disappeared, then forget them, a batch of
        documents per store call and manifest transaction."""
        for start in range(0, len(entries), REMOVE_BATCH):
            batch = entries[start : start + REMOVE_BATCH]
            sids = [e.source_id for e in batch]
            with (
                report.timed("write"),
                self._tracing.span(
                    "delete", files=len(batch), chunks=sum(e.chunk_count for e in batch)
                ),
            ):
                stored = self.state.store.ids_by_source(sids)
                gone = {cid for ids in stored.values() for cid in ids}
                if gone:
                    self.state.store.delete_ids(gone)
            with report.timed("commit"):
                self.state.manifest.remove(sids)
            for entry in batch:
                self._report_removed(entry, report)

    @staticmethod
    def _report_removed(entry: ManifestEntry, report: SyncReport) -> None:
        report.add(
            FileResult(
                entry.source_id,
                entry.path,
                FileStatus.DELETED,
                chunks=entry.chunk_count,
                deleted=entry.chunk_count,
            )
        )


def _no_parsers() -> int:
    return 0


def _plan_attributes(the_plan: SyncPlan) -> dict[str, int]:
    return {
        "headwater.files.to_load": len(the_plan.to_load),
        "headwater.files.unchanged": the_plan.unchanged,
        "headwater.files.deleted": len(the_plan.deleted),
        "headwater.files.known_failures": len(the_plan.known_failures),
    }


def _report_attributes(report: SyncReport) -> dict[str, int | float | bool]:
    """The sync span's totals: what `sync --json` counts."""
    out: dict[str, int | float | bool] = {"headwater.ok": report.ok}
    out |= {f"headwater.files.{k}": v for k, v in report.file_counts().items()}
    out |= {f"headwater.chunks.{k}": v for k, v in report.chunk_counts().items()}
    out["headwater.chunks.truncated"] = report.truncated
    out |= {f"headwater.seconds.{k}": round(v, 3) for k, v in report.stage_seconds.items()}
    return out


def _outcome(item: PlannedFile, future: Future[Prepared]) -> Prepared:
    """A finished preparation's result; an exception (a broken limit, a parser bug, a lost
    worker after the runner's retries) fails only its file."""
    try:
        result: Prepared = future.result()
        return result
    except HeadwaterError as exc:
        # A worker that hit its time limit spent it on the file: the load stage's time.
        return replace(failure(item, str(exc)), load_seconds=getattr(exc, "seconds", None))
    except Exception as exc:
        return failure(item, f"parser failed: {type(exc).__name__}: {exc}")
