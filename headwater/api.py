"""The Python API: open a configured knowledge base, search it, sync it. No Prefect needed.

```python
from headwater import KnowledgeBase

with KnowledgeBase.open("headwater.toml") as kb:
    for hit in kb.search("How many vacation days?", k=3, filters={"file_types": ["pdf"]}):
        print(hit.score, hit.metadata.source_id, hit.metadata.page, hit.text[:80])
    kb.search("GDPR article 17", mode="hybrid")  # dense + BM25, fused; or "lexical"
```
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.compose import build_embedder, build_engine, build_query_encoder, build_store
from headwater.config import HeadwaterConfig, load_config
from headwater.ingest.errors import StoreError
from headwater.ingest.models import CollectionSpec, QueryFilter, QueryHit, SearchMode, VectorRecord
from headwater.ingest.query_encoder import QueryEncoder
from headwater.ingest.search import (
    Filters,
    Mode,
    as_filter,
    as_mode,
    asearch_store,
    hit_metadata,
    search_store,
)
from headwater.ingest.store import LexicalSearchUnsupportedError

if TYPE_CHECKING:
    from headwater.ingest.embedding import Embedder
    from headwater.ingest.query_encoder import QueryEmbedder
    from headwater.ingest.report import SyncReport
    from headwater.ingest.store import VectorStore


log = logging.getLogger(__name__)


class KnowledgeBase:
    """A configured store and embedding model. Opens nothing until the first search or sync.

    Close it (or use it as a context manager) to release the store; the store may be a
    file another process wants (Milvus Lite).
    """

    def __init__(
        self,
        config: HeadwaterConfig,
        *,
        embedder: Embedder | None = None,
        store: VectorStore | None = None,
    ) -> None:
        self.config = config
        self._embedder = embedder
        self._store = store
        self._model_checked = False
        self._warned_dense = False
        self._searched = False

    @classmethod
    def open(
        cls,
        config: str | Path | HeadwaterConfig | None = None,
        *,
        embedder: Embedder | None = None,
    ) -> KnowledgeBase:
        """From a config file (default: $HEADWATER_CONFIG or ./headwater.toml) or object."""
        cfg = config if isinstance(config, HeadwaterConfig) else load_config(config)
        return cls(cfg, embedder=embedder)

    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder or build_embedder(self.config)

    @cached_property
    def query_encoder(self) -> QueryEmbedder:
        """What encodes queries: a model handed in, else ``embedding.query_runtime``'s
        choice (ONNX Runtime without torch when the model's export matches it)."""
        if self._embedder is not None:
            return self._embedder
        return build_query_encoder(self.config, lambda: self.embedder)

    @cached_property
    def store(self) -> VectorStore:
        return self._store or build_store(self.config)

    def search(
        self,
        text: str,
        k: int = 5,
        filters: Filters = None,
        mode: Mode = None,
        *,
        vector: Sequence[float] | None = None,
    ) -> list[QueryHit]:
        """The `k` best chunks for `text` (highest score first) that pass `filters`.

        `mode`: "dense" (embedding similarity), "lexical" (BM25 over the words; loads no
        model) or "hybrid" (both, fused as ``[search]`` says); None: ``search.mode``.
        Scores are comparable only within one mode. `vector`: `text`'s embedding when the
        caller already has it (from `embed_query`).
        """
        query_filter, chosen = self._plan(k, filters, mode)
        # Cached: a dense fallback after a failed hybrid reuses the vector.
        embed = cache(
            self._embedder_for(text, ahead=chosen is not SearchMode.LEXICAL)
            if vector is None
            else lambda _query: list(vector)
        )
        self._check_model()
        fusion = self.config.search.fusion_settings()

        def run(how: SearchMode) -> list[QueryHit]:
            # lexical loads no model
            return search_store(
                self.store, text, embed, k=k, filters=query_filter, mode=how, fusion=fusion
            )

        try:
            return run(chosen)
        except LexicalSearchUnsupportedError as exc:
            self._dense_instead(exc, mode)
            return run(SearchMode.DENSE)

    async def asearch(
        self,
        text: str,
        k: int = 5,
        filters: Filters = None,
        mode: Mode = None,
        *,
        vector: Sequence[float] | None = None,
    ) -> list[QueryHit]:
        """`search`, awaitable, with the same arguments and hits. The query is embedded on
        a worker thread (CPU work); the store answers through its async calls: natively on
        a Milvus server and Weaviate, on a worker thread for FAISS and Milvus Lite."""
        query_filter, chosen = self._plan(k, filters, mode)
        embedding: dict[str, asyncio.Future[list[float]]] = {}

        async def embed(query: str) -> list[float]:
            if vector is not None:
                return list(vector)
            # Kept: a dense fallback after a failed hybrid awaits the same embedding.
            if query not in embedding:
                embedding[query] = asyncio.ensure_future(asyncio.to_thread(self.embed_query, query))
            return await embedding[query]

        await self._acheck_model()
        fusion = self.config.search.fusion_settings()

        async def run(how: SearchMode) -> list[QueryHit]:
            return await asearch_store(
                self.store, text, embed, k=k, filters=query_filter, mode=how, fusion=fusion
            )

        try:
            return await run(chosen)
        except LexicalSearchUnsupportedError as exc:
            self._dense_instead(exc, mode)
            return await run(SearchMode.DENSE)

    def _plan(self, k: int, filters: Filters, mode: Mode) -> tuple[QueryFilter | None, SearchMode]:
        _check_k(k)
        return as_filter(filters), as_mode(mode, self.config.search.mode)

    def _dense_instead(self, exc: LexicalSearchUnsupportedError, mode: Mode) -> None:
        if mode is not None or "mode" in self.config.search.model_fields_set:
            raise exc  # asked for by name: say why it cannot be had
        # Hybrid by default only: a store without full-text search (Milvus 2.3/2.4, a
        # collection from Headwater 0.2) still answers, by embeddings as before.
        if not self._warned_dense:
            log.warning("searching by embeddings only (search.mode = 'dense'): %s", exc)
            self._warned_dense = True

    def search_by_vector(
        self, vector: Sequence[float], k: int = 5, filters: Filters = None
    ) -> list[QueryHit]:
        """The `k` chunks nearest to `vector` (an embedding of the configured model)."""
        _check_k(k)
        query_filter = as_filter(filters)
        self._check_model()
        return self.store.query(vector, k=k, filters=query_filter)

    async def asearch_by_vector(
        self, vector: Sequence[float], k: int = 5, filters: Filters = None
    ) -> list[QueryHit]:
        """`search_by_vector`, awaitable (see `asearch`)."""
        _check_k(k)
        query_filter = as_filter(filters)
        await self._acheck_model()
        return await self.store.aquery(vector, k=k, filters=query_filter)

    def records(self, ids: Sequence[str]) -> list[VectorRecord]:
        """The stored chunks with their vectors, for the ids the store holds."""
        return self.store.fetch(ids)

    async def arecords(self, ids: Sequence[str]) -> list[VectorRecord]:
        """`records`, awaitable (see `asearch`)."""
        return await self.store.afetch(ids)

    def embed_query(self, text: str) -> list[float]:
        """`text` embedded as `search` embeds a query."""
        return self.query_encoder.embed_query(text)

    async def aembed_query(self, text: str) -> list[float]:
        """`embed_query` on a worker thread: the model's CPU work stays off the event loop."""
        return await asyncio.to_thread(self.embed_query, text)

    def _embedder_for(self, text: str, *, ahead: bool) -> Callable[[str], list[float]]:
        """Encodes queries; on the first search with a ready ONNX export, `text` is encoded
        in a thread while the store opens. Cold, both take a few hundred milliseconds, and
        loading the ONNX session releases the GIL, so on two cores they overlap. Torch is
        never loaded ahead: a search that fails on the store must not wait for a model."""
        first, self._searched = not self._searched, True
        encoder = self.query_encoder
        if not (first and ahead and isinstance(encoder, QueryEncoder) and encoder.prepared()):
            return encoder.embed_query
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="headwater-query")
        pending = pool.submit(self.query_encoder.embed_query, text)
        pool.shutdown(wait=False)

        def embed(query: str) -> list[float]:
            if query == text:
                return pending.result()
            return self.query_encoder.embed_query(query)

        return embed

    def _check_model(self) -> None:
        # Vectors of another model with the same size would rank nonsense without an error.
        if not self._model_checked:
            self._model_is(self.store.collection_spec())

    async def _acheck_model(self) -> None:
        if not self._model_checked:
            self._model_is(await self.store.acollection_spec())

    def _model_is(self, spec: CollectionSpec | None) -> None:
        model = self.config.embedding.vector_space
        if spec is not None and spec.model and spec.model != model:
            raise StoreError(
                f"collection {self.store.collection!r} at {self.store.location} holds vectors "
                f"of {spec.model!r}; the config's embedding.model is {model!r}"
            )
        self._model_checked = True

    def sync(self, *, wait: float = 0) -> SyncReport:
        """Bring the store in step with the configured sources (see `headwater sync`)."""
        engine = build_engine(self.config, store=self.store, embedder=self.embedder)
        try:
            return engine.run(wait=wait)
        finally:
            engine.close(store=False)  # the store stays open for searches

    def close(self) -> None:
        """Release the store (safe to call twice)."""
        if "store" in self.__dict__:
            self.store.close()

    async def aclose(self) -> None:
        """`close`, awaitable: also closes the store's async client of this event loop."""
        if "store" in self.__dict__:
            await self.store.aclose()

    async def __aenter__(self) -> KnowledgeBase:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def as_langchain_retriever(self, **kwargs: Any) -> Any:
        """A LangChain retriever over this knowledge base (needs the `langchain` extra)."""
        from headwater.connectors.retrievers.langchain import HeadwaterRetriever

        return HeadwaterRetriever(knowledge_base=self, **kwargs)

    def as_langchain_vectorstore(self, **kwargs: Any) -> Any:
        """A read-only LangChain VectorStore over this knowledge base (`langchain` extra)."""
        from headwater.connectors.retrievers.langchain import HeadwaterVectorStore

        return HeadwaterVectorStore(self, **kwargs)

    def as_llamaindex_index(self, **kwargs: Any) -> Any:
        """A LlamaIndex VectorStoreIndex over this knowledge base (`llamaindex` extra)."""
        from headwater.connectors.retrievers.llamaindex import vector_store_index

        return vector_store_index(self, **kwargs)

    def as_llamaindex_retriever(self, **kwargs: Any) -> Any:
        """A LlamaIndex retriever over this knowledge base (needs the `llamaindex` extra)."""
        from headwater.connectors.retrievers.llamaindex import HeadwaterRetriever

        return HeadwaterRetriever(self, **kwargs)


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")


__all__ = ["Filters", "KnowledgeBase", "Mode", "as_filter", "hit_metadata"]
