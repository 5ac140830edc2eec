"""The sync engine: plan, load, chunk, embed what is new, write, then commit the manifest.

Store first, manifest second: a document's manifest row is committed only after the
store accepted its chunks and deletions, so the manifest never claims what the store
lacks. Work is flushed in batches of files so embedding runs on full batches while
memory stays bounded.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from functools import cached_property

from filelock import FileLock, Timeout

from ingest.chunking import Chunker
from ingest.config import HeadwaterConfig
from ingest.embedding import Embedder
from ingest.embedding_cache import EmbeddingCache
from ingest.errors import HeadwaterError
from ingest.faults import fault_point
from ingest.manifest import FailureEntry, Manifest, ManifestEntry
from ingest.models import Chunk, CollectionSpec, FileResult, FileStatus, SourceFile, VectorRecord
from ingest.planning import PlannedFile, Scope, SyncPlan, failure_key, plan
from ingest.prefetch import Prefetch
from ingest.prepare import InProcess, Prepared, PreparedFile, PrepareExecutor, Preparer
from ingest.report import SyncReport
from ingest.retry import RetryingStore
from ingest.source import Source
from ingest.store import VectorStore
from ingest.workers import executor_for

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""Called as progress(stage, done, total)."""

FLUSH_CHUNKS = 512
"""Chunks gathered before a batch is embedded and written."""

PREFETCH_FILES = 8
"""Prepared files kept ready while a batch is embedded: parsing goes on meanwhile, and
memory stays bounded however many files a run has."""


def meta_hash(chunk: Chunk) -> str:
    """Digest of what a stored row says besides its vector; a change means rewrite it."""
    payload = json.dumps([chunk.text, asdict(chunk.metadata)], sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


class SyncLockedError(HeadwaterError):
    pass


class SyncEngine:
    """Keeps one store in step with the configured sources. Opens nothing until used."""

    def __init__(
        self,
        config: HeadwaterConfig,
        *,
        store: VectorStore | None = None,
        embedder: Embedder | None = None,
        sources: Sequence[Source] | None = None,
        progress: Progress | None = None,
        executor: PrepareExecutor | None = None,
    ) -> None:
        from connectors.registry import create_store

        self.config = config
        self.store: VectorStore = RetryingStore(store or create_store(config), config.store.retry)
        self.embedder = embedder or Embedder(config.embedding)
        self.embedding_cache = (
            EmbeddingCache(
                config.state_dir / "embeddings.sqlite",
                config.embedding.model,
                config.embedding.cache_max_entries,
            )
            if config.embedding.cache
            else None
        )
        self.preparer = Preparer(config, sources=sources, embedder=self.embedder)
        # Workers rebuild sources from the config, so sources handed in as objects are
        # read here, in this process.
        self.executor: PrepareExecutor = executor or (
            InProcess() if sources is not None else executor_for(config.loading)
        )
        self.progress = progress or (lambda stage, done, total: None)

    @property
    def sources(self) -> list[Source]:
        return list(self.preparer.sources.values())

    # -- state ---------------------------------------------------------------------

    @property
    def target(self) -> str:
        """What the manifest rows describe: this store, collection and model."""
        return (
            f"{self.config.store.backend}|{self.store.location}|{self.store.collection}|"
            f"{self.config.embedding.model}"
        )

    @property
    def collection_spec(self) -> CollectionSpec:
        """What this engine's vectors are (loads the model to learn the dimension)."""
        return CollectionSpec(self.embedder.dimension, self.config.embedding.model)

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest(self.config.state_dir / "manifest.sqlite", self.target)

    @property
    def chunkers(self) -> dict[str, Chunker]:
        return self.preparer.chunkers

    def lock(self, timeout: float = 0) -> FileLock:
        """An exclusive lock on the state folder, so two syncs never interleave."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(self.config.state_dir / "sync.lock", timeout=timeout)

    def sync_running(self) -> bool:
        """Whether some process holds the state folder's sync lock right now."""
        lock = self.lock()
        try:
            lock.acquire()
        except Timeout:
            return True
        lock.release()
        return False

    def close(self) -> None:
        self.store.close()
        self.manifest.close()
        if self.embedding_cache is not None:
            self.embedding_cache.close()

    # -- stages --------------------------------------------------------------------

    @cached_property
    def loading_key(self) -> str:
        """Digest of the loading settings: a file that failed on its content is tried again
        when they change."""
        raw = self.config.loading.model_dump_json().encode()
        return hashlib.blake2b(raw, digest_size=8).hexdigest()

    def plan(
        self,
        report: SyncReport | None = None,
        scope: Scope | None = None,
        *,
        retry_failed: bool = False,
    ) -> SyncPlan:
        """List the sources (those in `scope`) and compare with the manifest. Files that
        failed on their content and have not changed are not planned for loading, unless
        `retry_failed`."""
        scope = scope or Scope()
        listings: dict[str, list[SourceFile]] = {}
        errors: dict[str, str] = {}
        for source in self.sources:
            if not scope.covers_source(source.name):
                continue
            try:
                listings[source.name] = [
                    f for f in source.list_files() if scope.covers(f.source, f.source_id)
                ]
            except Exception as exc:
                errors[source.name] = str(exc)
                log.error("listing source %s failed: %s", source.name, exc)
        keys = {name: c.settings_key for name, c in self.chunkers.items()}
        entries = {
            sid: e for sid, e in self.manifest.entries().items() if scope.covers(e.source, sid)
        }
        failures = {
            sid: f
            for sid, f in self.manifest.failures().items()
            if scope.covers(sid.partition(":")[0], sid)
        }
        listed = {f.source_id for files in listings.values() for f in files}
        gone = [s for s in failures if s.partition(":")[0] in listings and s not in listed]
        if gone:  # failed files that were deleted or excluded since
            self.manifest.forget_failures(gone)
        result = plan(
            listings,
            entries,
            keys,
            errors,
            failures={} if retry_failed else failures,
            loading=self.loading_key,
        )
        if report is not None:
            report.source_errors.update(errors)
        return result

    def apply(self, batch: Sequence[PreparedFile], report: SyncReport) -> None:
        """Embed what the store lacks, write, delete what vanished, then commit."""
        changed = [p for p in batch if not p.same_content]
        for p in batch:
            if p.same_content:
                self.manifest.touch(p.planned.file.source_id, p.planned.file.fingerprint)
                report.add(
                    FileResult(
                        p.planned.file.source_id,
                        p.planned.file.path,
                        FileStatus.UNCHANGED,
                        chunks=p.planned.previous.chunk_count if p.planned.previous else 0,
                    )
                )
        if not changed:
            return

        previous = {
            p.planned.file.source_id: self.manifest.chunk_hashes(p.planned.file.source_id)
            for p in changed
        }
        hashes = {c.id: meta_hash(c) for p in changed for c in p.chunks}
        fresh = {
            c.id for p in changed for c in p.chunks if c.id not in previous[c.metadata.source_id]
        }
        with report.timed("write"):
            held = self.store.existing_ids(fresh) if fresh else set()
        to_embed: dict[str, Chunk] = {}
        to_rewrite: dict[str, Chunk] = {}
        for p in changed:
            prev = previous[p.planned.file.source_id]
            for c in p.chunks:
                if c.id in fresh and c.id not in held:
                    to_embed[c.id] = c
                elif c.id in held or prev.get(c.id) != hashes[c.id]:
                    # Stored already, but its page/position/section moved: rewrite the
                    # row with the stored vector instead of embedding again.
                    to_rewrite[c.id] = c

        records: list[VectorRecord] = []
        if to_rewrite:
            with report.timed("write"):
                stored = {r.id: r.vector for r in self.store.fetch(to_rewrite)}
            for cid, c in to_rewrite.items():
                if cid in stored:
                    records.append(VectorRecord(c, stored[cid]))
                else:
                    to_embed[cid] = c
        truncated: set[str] = set()
        if to_embed:
            fault_point("embed")
            chunks = list(to_embed.values())
            texts = [c.text for c in chunks]
            with report.timed("embed"):
                self.progress("embed", 0, len(chunks))
                # The model cuts longer input silently; count it so the report can say so.
                counts = self.embedder.token_counts(texts)
                limit = self.embedder.max_tokens
                truncated = {
                    c.id for c, n in zip(chunks, counts, strict=True) if limit and n > limit
                }
                report.model_max_tokens = limit
                if self.embedding_cache is None:
                    vectors = self.embedder.embed(texts, counts)
                else:
                    # Text embedded before (moved from another file, or cut the same way
                    # by another strategy) is written, not embedded, and not counted so.
                    vectors, reused = self.embedding_cache.embed(self.embedder, texts, counts)
                    for i in reused:
                        del to_embed[chunks[i].id]
                self.progress("embed", len(chunks), len(chunks))
            records.extend(VectorRecord(c, v) for c, v in zip(chunks, vectors, strict=True))

        with report.timed("write"):
            if records:
                self.store.upsert(records)
            vanished: dict[str, set[str]] = {}
            for p in changed:
                sid = p.planned.file.source_id
                keep = {c.id for c in p.chunks}
                # The store's own list catches rows a killed run wrote but never committed.
                gone = (set(previous[sid]) | self.store.source_ids(sid)) - keep
                if gone:
                    self.store.delete_ids(gone)
                vanished[sid] = gone

        fault_point("commit")  # the store holds the batch; the manifest does not yet
        with report.timed("commit"):
            self.manifest.commit(
                (
                    ManifestEntry(
                        source_id=p.planned.file.source_id,
                        source=p.planned.file.source,
                        path=p.planned.file.path,
                        fingerprint=p.planned.file.fingerprint,
                        content_hash=p.content_hash,
                        chunker=p.planned.chunker,
                        chunk_count=len(p.chunks),
                    ),
                    {c.id: hashes[c.id] for c in p.chunks},
                )
                for p in changed
            )
        embedded = set(to_embed)
        written = {r.id for r in records}
        for p in changed:
            ids = {c.id for c in p.chunks}
            report.add(
                FileResult(
                    p.planned.file.source_id,
                    p.planned.file.path,
                    FileStatus.ADDED if p.planned.is_new else FileStatus.CHANGED,
                    chunks=len(p.chunks),
                    embedded=len(ids & embedded),
                    written=len(ids & written),
                    deleted=len(vanished[p.planned.file.source_id]),
                    truncated=len(ids & truncated),
                )
            )

    def remove(self, entries: Iterable[ManifestEntry], report: SyncReport) -> None:
        """Delete the vectors of documents that disappeared, then forget them."""
        for entry in entries:
            with report.timed("write"):
                self.store.delete_source(entry.source_id)
            with report.timed("commit"):
                self.manifest.remove([entry.source_id])
            report.add(
                FileResult(
                    entry.source_id,
                    entry.path,
                    FileStatus.DELETED,
                    chunks=entry.chunk_count,
                    deleted=entry.chunk_count,
                )
            )

    # -- the whole run -------------------------------------------------------------

    @contextmanager
    def exclusive(self, wait: float = 0) -> Iterator[None]:
        """Hold the state folder's lock, or raise SyncLockedError after `wait` seconds."""
        lock = self.lock(timeout=wait)
        try:
            lock.acquire()
        except Timeout:
            raise SyncLockedError(
                f"another sync is running on {self.config.state_dir} "
                f"(lock file {self.config.state_dir / 'sync.lock'}); wait for it to finish"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def run(
        self, *, wait: float = 0, scope: Scope | None = None, retry_failed: bool = False
    ) -> SyncReport:
        """One sync (of `scope`, default everything). Raises SyncLockedError if another
        sync holds the state folder for longer than `wait` seconds."""
        with self.exclusive(wait):
            report, the_plan = self.begin(scope, retry_failed=retry_failed)
            self.ingest(self.prepare_all(the_plan.to_load, report), report)
            return self.finish(the_plan, report)

    def begin(
        self, scope: Scope | None = None, *, retry_failed: bool = False
    ) -> tuple[SyncReport, SyncPlan]:
        """Start a run: list the sources and plan against the manifest."""
        report = SyncReport(store=f"{self.config.store.backend}:{self.store.location}")
        with report.timed("list_plan"):
            the_plan = self.plan(report, scope, retry_failed=retry_failed)
        for f in the_plan.unchanged:
            report.add(FileResult(f.source_id, f.path, FileStatus.UNCHANGED))
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
        if the_plan.to_load:
            # Before any file is parsed: a collection made for another model fails the run now.
            self.store.ensure_collection(self.collection_spec)
        return report, the_plan

    def prepare_all(self, items: Sequence[PlannedFile], report: SyncReport) -> Iterator[Prepared]:
        """Prepare files with the engine's executor; failures come back as results."""
        self.progress("load", 0, len(items))
        # Files are prepared in a thread, ahead of the batches being embedded here; the
        # encoder leaves the preparing side its cores while it works.
        results = Prefetch(self.executor.map(self.preparer, items), PREFETCH_FILES)
        parsers = int(getattr(self.executor, "workers", 1) or 1)
        self.embedder.busy_parsers = lambda: parsers if results.working else 0
        planned = {item.file.source_id: item for item in items}
        try:
            for done, result in enumerate(results, 1):
                if isinstance(result, PreparedFile):
                    for stage, seconds in result.seconds.items():
                        report.stage_seconds[stage] += seconds
                elif result.permanent and result.reason:
                    # Remembered, so the same bytes are not parsed again only to fail again.
                    item = planned[result.source_id]
                    key = failure_key(item.chunker, self.loading_key)
                    self.manifest.record_failures(
                        [FailureEntry(result.source_id, item.file.fingerprint, key, result.reason)]
                    )
                self.progress("load", done, len(items))
                yield result
        finally:
            results.close()
            self.embedder.busy_parsers = None

    def ingest(
        self,
        prepared: Iterable[Prepared],
        report: SyncReport,
        apply: Callable[[list[PreparedFile], SyncReport], None] | None = None,
    ) -> None:
        """Write prepared files in batches of about FLUSH_CHUNKS chunks, each with `apply`
        (default `self.apply`; the Prefect flow passes a retried task)."""
        apply = apply or self.apply
        batch: list[PreparedFile] = []
        pending = 0
        for p in prepared:
            fault_point("load")
            if isinstance(p, FileResult):
                report.add(p)
                continue
            batch.append(p)
            pending += len(p.chunks)
            if pending >= FLUSH_CHUNKS:
                apply(batch, report)
                batch, pending = [], 0
        if batch:
            apply(batch, report)

    def finish(self, the_plan: SyncPlan, report: SyncReport) -> SyncReport:
        """Delete what disappeared and close the report."""
        self.remove(the_plan.deleted, report)
        report.stop_clock()
        return report
