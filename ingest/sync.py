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
from ingest.errors import HeadwaterError
from ingest.manifest import Manifest, ManifestEntry
from ingest.models import Chunk, CollectionSpec, FileResult, FileStatus, SourceFile, VectorRecord
from ingest.planning import PlannedFile, SyncPlan, plan
from ingest.prepare import InProcess, Prepared, PreparedFile, PrepareExecutor, Preparer
from ingest.report import SyncReport
from ingest.source import Source
from ingest.store import VectorStore

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""Called as progress(stage, done, total)."""

FLUSH_CHUNKS = 512
"""Chunks gathered before a batch is embedded and written."""


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
        self.store = store or create_store(config)
        self.embedder = embedder or Embedder(config.embedding)
        self.preparer = Preparer(config, sources=sources, embedder=self.embedder)
        self.executor: PrepareExecutor = executor or InProcess()
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

    def close(self) -> None:
        self.store.close()
        self.manifest.close()

    # -- stages --------------------------------------------------------------------

    def plan(self, report: SyncReport | None = None) -> SyncPlan:
        listings: dict[str, list[SourceFile]] = {}
        errors: dict[str, str] = {}
        for source in self.sources:
            try:
                listings[source.name] = list(source.list_files())
            except Exception as exc:
                errors[source.name] = str(exc)
                log.error("listing source %s failed: %s", source.name, exc)
        keys = {name: c.settings_key for name, c in self.chunkers.items()}
        result = plan(listings, self.manifest.entries(), keys, errors)
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
            chunks = list(to_embed.values())
            texts = [c.text for c in chunks]
            with report.timed("embed"):
                self.progress("embed", 0, len(chunks))
                # The model cuts longer input silently; count it so the report can say so.
                cut = self.embedder.truncated(texts)
                truncated = {c.id for c, over in zip(chunks, cut, strict=True) if over}
                report.model_max_tokens = self.embedder.max_tokens
                vectors = self.embedder.embed(texts)
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

    def run(self, *, wait: float = 0) -> SyncReport:
        """One full sync. Raises SyncLockedError if another sync holds the state folder."""
        with self.exclusive(wait):
            return self._run()

    def _run(self) -> SyncReport:
        report, the_plan = self.begin()
        self.ingest(self.prepare_all(the_plan.to_load, report), report)
        return self.finish(the_plan, report)

    def begin(self) -> tuple[SyncReport, SyncPlan]:
        """Start a run: list the sources and plan against the manifest."""
        report = SyncReport(store=f"{self.config.store.backend}:{self.store.location}")
        with report.timed("list_plan"):
            the_plan = self.plan(report)
        for f in the_plan.unchanged:
            report.add(FileResult(f.source_id, f.path, FileStatus.UNCHANGED))
        if the_plan.to_load:
            # Before any file is parsed: a collection made for another model fails the run now.
            self.store.ensure_collection(self.collection_spec)
        return report, the_plan

    def prepare_all(self, items: Sequence[PlannedFile], report: SyncReport) -> Iterator[Prepared]:
        """Prepare files with the engine's executor; failures come back as results."""
        self.progress("load", 0, len(items))
        for done, result in enumerate(self.executor.map(self.preparer, items), 1):
            if isinstance(result, PreparedFile):
                for stage, seconds in result.seconds.items():
                    report.stage_seconds[stage] += seconds
            self.progress("load", done, len(items))
            yield result

    def ingest(self, prepared: Iterable[Prepared], report: SyncReport) -> None:
        """Write prepared files in batches of about FLUSH_CHUNKS chunks."""
        batch: list[PreparedFile] = []
        pending = 0
        for p in prepared:
            if isinstance(p, FileResult):
                report.add(p)
                continue
            batch.append(p)
            pending += len(p.chunks)
            if pending >= FLUSH_CHUNKS:
                self.apply(batch, report)
                batch, pending = [], 0
        if batch:
            self.apply(batch, report)

    def finish(self, the_plan: SyncPlan, report: SyncReport) -> SyncReport:
        """Delete what disappeared and close the report."""
        self.remove(the_plan.deleted, report)
        report.stop_clock()
        return report
