"""Read, hash, load and chunk one planned file: the part of a sync that fans out.

A `Preparer` holds only the config until it is used, so it pickles to worker processes
and Dask workers, which build their own sources and chunkers there. Every way of running
the preparation (in this process, a process pool, a Dask cluster) calls `prepare_one`,
so the chunks are the same wherever a file was parsed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from ingest.config import HeadwaterConfig
from ingest.errors import LoadError
from ingest.ids import content_hash
from ingest.loading import load_document
from ingest.models import Chunk, FileResult, FileStatus
from ingest.planning import PlannedFile
from ingest.source import Source

if TYPE_CHECKING:
    from ingest.chunking import Chunker
    from ingest.embedding import Embedder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedFile:
    """A planned file after reading: its chunks, or proof its content did not change."""

    planned: PlannedFile
    content_hash: str
    chunks: tuple[Chunk, ...] = ()
    same_content: bool = False
    seconds: dict[str, float] = field(default_factory=dict, compare=False)
    """Time spent per stage ("load", "chunk") wherever the file was prepared."""


Prepared = PreparedFile | FileResult
"""What preparing a file gives: its chunks, or a FAILED result naming the reason."""


class Preparer:
    """Turns planned files into chunks. Opens nothing until the first file."""

    def __init__(
        self,
        config: HeadwaterConfig,
        *,
        sources: Sequence[Source] | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.config = config
        self._sources = list(sources) if sources is not None else None
        self._embedder = embedder
        # Chunkers share one Hugging Face fast tokenizer, which raises "Already borrowed"
        # when threads use it at once (the flow's thread-pool tasks); parsing stays parallel.
        self._chunking = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Only the config travels; sources, chunkers and models are rebuilt on the far side.
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    @cached_property
    def sources(self) -> dict[str, Source]:
        from connectors.registry import create_source

        found = self._sources or [create_source(self.config, s) for s in self.config.sources]
        return {s.name: s for s in found}

    @cached_property
    def chunkers(self) -> dict[str, Chunker]:
        from ingest.chunking import create_chunker

        model = self.config.embedding.model
        return {
            s.name: create_chunker(s.chunking, model, embedder=self._embedder)
            for s in self.config.sources
        }

    def prepare(self, item: PlannedFile) -> PreparedFile:
        """Raises LoadError for a file that cannot be read or parsed."""
        t0 = time.perf_counter()
        try:
            data = self.sources[item.file.source].read_bytes(item.file)
        except OSError as exc:
            raise LoadError(item.file.path, f"cannot read: {exc.strerror or exc}") from exc
        digest = content_hash(data)
        prev = item.previous
        if prev and prev.content_hash == digest and prev.chunker == item.chunker:
            return PreparedFile(
                item, digest, same_content=True, seconds={"load": time.perf_counter() - t0}
            )
        try:
            document = load_document(item.file, data, self.config.loading)
        except LoadError as exc:
            raise LoadError(exc.path, exc.reason, permanent=True) from exc
        t1 = time.perf_counter()
        with self._chunking:
            chunks = self.chunkers[item.file.source].chunk(document)
        seconds = {"load": t1 - t0, "chunk": time.perf_counter() - t1}
        return PreparedFile(item, digest, tuple(chunks), seconds=seconds)

    def prepare_one(self, item: PlannedFile) -> Prepared:
        """Like `prepare`, but a bad file comes back as a FAILED result."""
        try:
            return self.prepare(item)
        except LoadError as exc:
            return failure(item, exc.reason, permanent=exc.permanent)


def failure(item: PlannedFile, reason: str, *, permanent: bool = False) -> FileResult:
    """A FAILED result; a file ingested before is stale: its last good chunks stay stored."""
    log.info("%s: %s", item.file.source_id, reason)
    prev = item.previous
    return FileResult(
        item.file.source_id,
        item.file.path,
        FileStatus.FAILED,
        chunks=prev.chunk_count if prev else 0,
        reason=reason,
        stale=prev is not None,
        permanent=permanent,
    )


class PrepareExecutor(Protocol):
    """Runs `Preparer.prepare_one` over planned files, here or elsewhere.

    Results may come back in any order; each names its file.
    """

    def map(self, preparer: Preparer, items: Sequence[PlannedFile]) -> Iterable[Prepared]: ...


class InProcess:
    """Prepare files one after another in this process."""

    def map(self, preparer: Preparer, items: Sequence[PlannedFile]) -> Iterator[Prepared]:
        for item in items:
            yield preparer.prepare_one(item)
