"""The `VectorStore` interface every backend implements (see connectors/stores/)."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from headwater.ingest.errors import StoreError
from headwater.ingest.fusion import fuse
from headwater.ingest.models import CollectionSpec, Fusion, QueryFilter, QueryHit, VectorRecord
from headwater.ingest.precision import model_of, precision_mismatch


class LexicalSearchUnsupportedError(StoreError):
    """The store (or its version, or this collection) has no full-text index: lexical and
    hybrid search are not available; dense search still is."""


class VectorStore(ABC):
    """A collection of chunk vectors with their metadata.

    Implementations take their validated config in the constructor and do no I/O there;
    they connect on first use. Ids are chunk ids (strings). Upserting an id that exists
    replaces it: a store never holds two rows with one id. Writes need the collection,
    made by `ensure_collection`; reads of a missing collection find nothing.
    """

    name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    """The pydantic model that validates the backend's ``[store.<name>]`` table."""

    def __init__(self, config: BaseModel, *, collection: str, state_dir: Path) -> None:
        self.config = config
        self.collection = collection
        self.state_dir = state_dir

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data lives, without credentials (safe to log and to key state by)."""

    @abstractmethod
    def collection_spec(self) -> CollectionSpec | None:
        """What the existing collection was made for; None when there is no collection."""

    @abstractmethod
    def create_collection(self, spec: CollectionSpec) -> None:
        """Create the (missing) collection, recording `spec` with it."""

    def ensure_collection(self, spec: CollectionSpec) -> None:
        """Create the collection if missing; fail if it was made for another size or model."""
        existing = self.collection_spec()
        if existing is None:
            self.create_collection(spec)
            return
        where = f"collection {self.collection!r} at {self.location}"
        if existing.dimension != spec.dimension:
            raise StoreError(
                f"{where} holds {existing.dimension}-dimensional vectors but "
                f"{spec.model or 'the embedding model'} makes {spec.dimension}: use another "
                "store.collection for this model, or delete the collection"
            )
        if existing.model and spec.model and existing.model != spec.model:
            if model_of(existing.model) == model_of(spec.model):
                raise StoreError(precision_mismatch(where, existing.model, spec.model))
            raise StoreError(
                f"{where} was made with model {existing.model!r}, not {spec.model!r}: vectors "
                "from two models are not comparable; use another store.collection, or "
                "`headwater migrate` into a fresh one"
            )

    def check_vectors(self, records: Sequence[VectorRecord]) -> None:
        """Fail before writing anything if a vector does not fit the collection."""
        spec = self.collection_spec()
        if spec is None:
            raise StoreError(
                f"collection {self.collection!r} at {self.location} does not exist: "
                "ensure_collection() makes it"
            )
        for r in records:
            if len(r.vector) != spec.dimension:
                raise StoreError(
                    f"{r.chunk.metadata.source_id}: vector of chunk {r.id} has {len(r.vector)} "
                    f"dimensions, collection {self.collection!r} expects {spec.dimension}"
                )

    @abstractmethod
    def upsert(self, records: Sequence[VectorRecord]) -> int:
        """Insert or replace records by id; returns how many were written."""

    @abstractmethod
    def delete_ids(self, ids: Iterable[str]) -> int:
        """Delete records by id; returns how many ids were asked for."""

    @abstractmethod
    def delete_source(self, source_id: str) -> int:
        """Delete every record of one document; returns how many were deleted."""

    @abstractmethod
    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        """The subset of `ids` the store holds."""

    @abstractmethod
    def source_ids(self, source_id: str) -> set[str]:
        """Ids of every record of one document."""

    def ids_by_source(self, source_ids: Iterable[str]) -> dict[str, set[str]]:
        """Ids of every record of each document (an empty set for one with none). Backends
        answer in one call per many documents where they can: a sync asks this for every
        batch of files, and a call per file would grow with the store."""
        return {sid: self.source_ids(sid) for sid in dict.fromkeys(source_ids)}

    @abstractmethod
    def fetch(self, ids: Iterable[str]) -> list[VectorRecord]:
        """Records (with vectors) for the ids the store holds."""

    @abstractmethod
    def scan(self, batch_size: int = 1000) -> Iterator[list[VectorRecord]]:
        """Every record with its vector, in batches of at most `batch_size`."""

    @abstractmethod
    def query(
        self, vector: Sequence[float], k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        """The `k` nearest records by cosine similarity (higher score is closer)."""

    def lexical_query(
        self, text: str, k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        """The `k` records whose text best matches the words of `text` (BM25; higher score
        is better). A query with no words finds nothing. Stores without a full-text index
        raise `LexicalSearchUnsupportedError`."""
        raise LexicalSearchUnsupportedError(
            f"the {self.name} store at {self.location} has no full-text index: "
            "lexical and hybrid search are not available, use mode 'dense'"
        )

    def hybrid_query(
        self,
        vector: Sequence[float],
        text: str,
        k: int = 5,
        filters: QueryFilter | None = None,
        fusion: Fusion = Fusion(),
    ) -> list[QueryHit]:
        """The top `k` of the dense and lexical rankings fused (see `headwater.ingest.fusion.fuse`).
        A store whose engine fuses natively may override it."""
        depth = max(k, k * fusion.candidates)
        lexical = self.lexical_query(text, k=depth, filters=filters)
        dense = self.query(vector, k=depth, filters=filters)
        return fuse(dense, lexical, k, fusion)

    def hybrid_search(
        self,
        text: str,
        embed: Callable[[str], Sequence[float]],
        k: int = 5,
        filters: QueryFilter | None = None,
        fusion: Fusion = Fusion(),
    ) -> list[QueryHit]:
        """`hybrid_query` for a text not embedded yet, as a user's query comes in.

        The lexical ranking runs on a worker thread while `embed` runs here, so hybrid costs
        the longer of the two rather than their sum; the store is used by one thread at a
        time. A store whose engine fuses natively overrides it to embed first.
        """
        depth = max(k, k * fusion.candidates)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lexical") as pool:
            pending = pool.submit(self.lexical_query, text, depth, filters)
            vector = embed(text)
            lexical = pending.result()
        dense = self.query(vector, k=depth, filters=filters)
        return fuse(dense, lexical, k, fusion)

    # -- async reads ---------------------------------------------------------------
    # The defaults run the sync method on a worker thread (`asyncio.to_thread`): right for
    # the embedded engines (FAISS, Milvus Lite), which have no async API and do their work
    # in this process, so a thread is what keeps the event loop free. A store whose engine
    # has an async client (a Milvus server, Weaviate) overrides them with native calls.

    async def acollection_spec(self) -> CollectionSpec | None:
        """`collection_spec`, awaitable."""
        return await asyncio.to_thread(self.collection_spec)

    async def aquery(
        self, vector: Sequence[float], k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        """`query`, awaitable."""
        return await asyncio.to_thread(self.query, vector, k, filters)

    async def alexical_query(
        self, text: str, k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        """`lexical_query`, awaitable."""
        return await asyncio.to_thread(self.lexical_query, text, k, filters)

    async def ahybrid_search(
        self,
        text: str,
        embed: Callable[[str], Awaitable[Sequence[float]]],
        k: int = 5,
        filters: QueryFilter | None = None,
        fusion: Fusion = Fusion(),
    ) -> list[QueryHit]:
        """`hybrid_search`, awaitable, with `embed` awaitable (the model's CPU work belongs
        on a worker thread): the text is embedded while `alexical_query` searches its
        words, then `aquery` and the fusion, as in the sync one. A store whose
        `hybrid_search` fuses natively overrides this too."""
        depth = max(k, k * fusion.candidates)
        vector, lexical = await asyncio.gather(
            embed(text), self.alexical_query(text, depth, filters)
        )
        dense = await self.aquery(vector, depth, filters)
        return fuse(dense, lexical, k, fusion)

    async def afetch(self, ids: Iterable[str]) -> list[VectorRecord]:
        """`fetch`, awaitable."""
        return await asyncio.to_thread(self.fetch, list(ids))

    async def aclose(self) -> None:
        """`close`, awaitable; a store with async clients closes this loop's client here."""
        await asyncio.to_thread(self.close)

    @abstractmethod
    def count(self, filters: QueryFilter | None = None) -> int:
        """How many records match (all when no filter)."""

    def flush(self) -> None:
        """Make everything written so far durable and searchable at full speed, for this
        process and for a reader that opens the store next (Milvus Lite seals and indexes
        the rows it holds in memory; FAISS saves its index file). A sync calls it once, at
        its end, when it wrote anything; a no-op where writes need nothing more."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release connections and files; persist what is pending. Safe to call twice."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
