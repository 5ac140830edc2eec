"""Read, hash, load and chunk one planned file: the part of a sync that fans out.

A `Preparer` holds its sources and settings and opens nothing until used, so it pickles
to worker processes and Dask workers. Every executor (a thread here, the parser pool, a
Prefect task runner, a Dask cluster) calls `prepare_one`, so the chunks are the same
wherever a file was parsed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from headwater.ingest.chunking.config import ChunkingConfig
from headwater.ingest.config import LoadingConfig
from headwater.ingest.embedding import EmbeddingContext
from headwater.ingest.errors import LoadError
from headwater.ingest.faults import fault_file
from headwater.ingest.ids import chunk_ids, content_hash, settings_key
from headwater.ingest.loading import load_document
from headwater.ingest.models import Chunk, Document, Element, FileResult, FileStatus, SourceFile
from headwater.ingest.planning import PlannedFile
from headwater.ingest.source import Source

if TYPE_CHECKING:
    from headwater.ingest.chunking import Chunker
    from headwater.ingest.embedding import Embedder

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
    started: float = field(default=0.0, compare=False)
    """When its preparation began (`time.time()`), for its trace spans."""
    warnings: tuple[str, ...] = ()
    """What loading left out (see `Document.warnings`)."""


Prepared = PreparedFile | FileResult
"""What preparing a file gives: its chunks, or a FAILED result naming the reason."""


class Preparer:
    """Turns planned files into chunks. Opens nothing until the first file.

    It pickles as its sources and settings, so any executor can ship it to a worker
    process or a Dask worker; chunkers (and their tokenizers) are built there once per
    process and settings, not once per file.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        chunking: Mapping[str, ChunkingConfig],
        loading: LoadingConfig,
        model: str,
        *,
        embedder: Embedder | None = None,
        context: EmbeddingContext = "none",
    ) -> None:
        self.sources = {s.name: s for s in sources}
        self.chunking = dict(chunking)
        """Source name -> its chunking settings."""
        self.loading = loading
        self.model = model
        self.context: EmbeddingContext = context
        """What the model reads in front of each chunk (embedding.context)."""
        self._embedder = embedder
        self._chunkers: dict[str, Chunker] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The embedder (a loaded model) and the chunkers (tokenizers) stay here; the far
        # side builds its own, once per process (see `_shared_chunkers`).
        return {k: v for k, v in self.__dict__.items() if k not in ("_embedder", "_chunkers")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _embedder=None, _chunkers=None)

    @property
    def chunkers(self) -> dict[str, Chunker]:
        if self._chunkers is None:
            if self._embedder is None:
                chunkers = _shared_chunkers(self.model, self.chunking)
            else:
                chunkers = _build_chunkers(self.model, self.chunking, self._embedder)
            if self.context != "none":
                chunkers = {n: ContextChunker(c, self.context) for n, c in chunkers.items()}
            self._chunkers = chunkers
        return self._chunkers

    def warm_up(self, text: str = "Warm up.") -> int:
        """Build the chunkers in this process and chunk `text` with each, so tokenizers and
        splitters load now, not on the first file (a watcher does it in each parser
        process); returns the chunks made."""
        made = 0
        for name, chunker in self.chunkers.items():
            file = SourceFile(name, "warm-up.txt", "", len(text), "")
            document = Document(file, "txt", "", [Element(text, "NarrativeText")])
            with _CHUNKING:
                made += len(chunker.chunk(document))
        return made

    def prepare(self, item: PlannedFile) -> PreparedFile:
        """Raises LoadError for a file that cannot be read or parsed."""
        t0, started = time.perf_counter(), time.time()
        fault_file(item.file.path)
        try:
            data = self.sources[item.file.source].read_bytes(item.file)
        except OSError as exc:
            raise LoadError(item.file.path, f"cannot read: {exc.strerror or exc}") from exc
        digest = content_hash(data)
        prev = item.previous
        if prev and prev.content_hash == digest and prev.chunker == item.chunker:
            return PreparedFile(
                item,
                digest,
                same_content=True,
                seconds={"load": time.perf_counter() - t0},
                started=started,
            )
        try:
            document = load_document(item.file, data, self.loading)
        except LoadError as exc:
            raise LoadError(exc.path, exc.reason, permanent=True) from exc
        t1 = time.perf_counter()
        with _CHUNKING:
            chunks = self.chunkers[item.file.source].chunk(document)
        seconds = {"load": t1 - t0, "chunk": time.perf_counter() - t1}
        return PreparedFile(
            item,
            digest,
            tuple(chunks),
            seconds=seconds,
            warnings=document.warnings,
            started=started,
        )

    def prepare_one(self, item: PlannedFile) -> Prepared:
        """Like `prepare`, but a bad file comes back as a FAILED result."""
        t0 = time.perf_counter()
        try:
            return self.prepare(item)
        except LoadError as exc:
            # The time went into the load stage even though no chunks came of it.
            spent = time.perf_counter() - t0
            failed = failure(item, exc.reason, permanent=exc.permanent)
            return replace(failed, load_seconds=spent, seconds=spent)


class ContextChunker:
    """A chunker whose chunks are embedded after a context (embedding.context): the
    context is part of its settings key and chunk ids, so switching it re-embeds."""

    def __init__(self, inner: Chunker, context: EmbeddingContext) -> None:
        self.inner = inner
        self.context = context

    @property
    def settings_key(self) -> str:
        return settings_key({"chunker": self.inner.settings_key, "context": self.context})

    def chunk(self, document: Document) -> list[Chunk]:
        chunks = self.inner.chunk(document)
        ids = chunk_ids(document.source_id, self.settings_key, [c.text for c in chunks])
        return [replace(c, id=i) for c, i in zip(chunks, ids, strict=True)]


_CHUNKING = threading.Lock()
"""Chunkers share one Hugging Face fast tokenizer, which raises "Already borrowed" when
threads use it at once (a thread-pool task runner); parsing stays parallel."""

_SHARED: dict[tuple[str, str], dict[str, Chunker]] = {}
_SHARED_LOCK = threading.Lock()


def _build_chunkers(
    model: str, chunking: Mapping[str, ChunkingConfig], embedder: Embedder | None
) -> dict[str, Chunker]:
    from headwater.ingest.chunking import create_chunker

    return {name: create_chunker(cfg, model, embedder=embedder) for name, cfg in chunking.items()}


def _shared_chunkers(model: str, chunking: Mapping[str, ChunkingConfig]) -> dict[str, Chunker]:
    """Chunkers without a shared embedder, built once per process and settings: executors
    that pickle the preparer with every file (pebble, Dask) do not rebuild tokenizers."""
    key = (model, json.dumps({k: v.model_dump(mode="json") for k, v in sorted(chunking.items())}))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = _build_chunkers(model, chunking, None)
        return _SHARED[key]


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
