"""LangChain over a Headwater knowledge base: a read-only `VectorStore` and a retriever.

Documents carry Headwater's metadata: ``source`` (the document id, ``source:path``),
``path``, ``page``/``pages``, ``section``, ``file_type``, ``score``... A ``filter`` is
LangChain's dict form (``{"file_type": "pdf"}``, ``{"page": {"$gte": 2}}``, ``$and``,
``$or``, ``$in``...) or a Headwater `QueryFilter`; what Headwater cannot evaluate raises
`UnsupportedFilterError`. Writes raise `ReadOnlyKnowledgeBaseError`: ``headwater sync``
feeds the knowledge base (docs/frameworks.md says why).

Async: the async methods await the knowledge base's async search (`KnowledgeBase.asearch`):
the query is embedded on a worker thread (CPU work), and the store answers natively where
its engine has an async client (a Milvus server, Weaviate), on a worker thread where it
runs in-process (FAISS, Milvus Lite). The event loop is never blocked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import field_validator

from headwater.connectors.retrievers.common import (
    Nothing,
    awaitable,
    langchain_filter,
    refuse_write,
)
from headwater.ingest.errors import MissingExtraError
from headwater.ingest.models import QueryFilter, QueryHit, SearchMode, VectorRecord
from headwater.ingest.search import (
    Mode,
    TextSearch,
    VectorSearch,
    as_filter,
    as_mode,
    flat_metadata,
    hit_metadata,
)

try:
    import numpy as np
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.vectorstores import VectorStore
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError:  # pragma: no cover - depends on the install
    raise MissingExtraError("The LangChain integration", "langchain") from None


def _document(hit: QueryHit) -> Document:
    return Document(page_content=hit.text, metadata=hit_metadata(hit), id=hit.id)


def _no_extra(kwargs: Mapping[str, Any]) -> None:
    # An argument this store does not know would otherwise change nothing, silently.
    if kwargs:
        raise TypeError(
            f"unexpected search argument {', '.join(map(repr, sorted(kwargs)))}: Headwater "
            "takes k, filter, mode (and fetch_k, lambda_mult for MMR, score_threshold "
            "for relevance scores)"
        )


def _dense_filter(kwargs: dict[str, Any]) -> Any:
    """The filter of a relevance-scored search, which ranks in dense mode only."""
    # A threshold needs one scale for every query: cosine similarity, so dense. BM25 and
    # per-query normalised fused scores would make a threshold mean something new each time.
    mode = kwargs.pop("mode", None)
    if mode is not None and as_mode(mode) is not SearchMode.DENSE:
        raise ValueError(
            f"relevance scores (score_threshold) are cosine similarities, from mode "
            f"'dense'; mode {as_mode(mode).value!r} has no fixed scale"
        )
    filter = kwargs.pop("filter", None)
    _no_extra(kwargs)
    return filter


def _relevance(hits: list[QueryHit]) -> list[tuple[Document, float]]:
    return [(_document(h), min(1.0, max(0.0, h.score))) for h in hits]


def _diverse(
    vector: Sequence[float],
    candidates: list[QueryHit],
    records: list[VectorRecord],
    k: int,
    lambda_mult: float,
) -> list[Document]:
    """`k` of the candidates, by maximal marginal relevance on their stored vectors."""
    stored = {r.id: r.vector for r in records}
    kept = [h for h in candidates if h.id in stored]
    chosen = maximal_marginal_relevance(
        np.asarray(vector, dtype=np.float32),
        [list(stored[h.id]) for h in kept],
        lambda_mult=lambda_mult,
        k=k,
    )
    return [_document(kept[i]) for i in chosen]


def _stored(r: VectorRecord) -> Document:
    return Document(page_content=r.chunk.text, metadata=flat_metadata(r.chunk.metadata), id=r.id)


class HeadwaterEmbeddings(Embeddings):
    """The knowledge base's query embedding as LangChain `Embeddings`."""

    def __init__(self, knowledge_base: VectorSearch) -> None:
        self.knowledge_base = knowledge_base

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.knowledge_base.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.knowledge_base.embed_query(text)

    async def aembed_query(self, text: str) -> list[float]:
        return await awaitable(self.knowledge_base, "embed_query")(text)


class HeadwaterVectorStore(VectorStore):
    """A read-only LangChain `VectorStore` over a Headwater knowledge base.

    `mode` (dense, hybrid or lexical; None: the knowledge base's ``search.mode``) ranks the
    text searches; any search takes ``mode=`` for one call. Searches by vector, MMR's
    candidates by vector, and relevance scores are dense: cosine similarity.
    """

    def __init__(self, knowledge_base: VectorSearch, *, mode: Mode = None) -> None:
        self.knowledge_base = knowledge_base
        self.mode = None if mode is None else as_mode(mode)

    @property
    def embeddings(self) -> Embeddings:
        return HeadwaterEmbeddings(self.knowledge_base)

    # Searching

    def _search(
        self, query: str, k: int, filter: Any, mode: Mode, vector: Sequence[float] | None = None
    ) -> list[QueryHit]:
        query_filter = langchain_filter(filter)
        if isinstance(query_filter, Nothing):
            return []
        return self.knowledge_base.search(
            query, k=k, filters=query_filter, mode=self._mode(mode), vector=vector
        )

    async def _asearch(
        self, query: str, k: int, filter: Any, mode: Mode, vector: Sequence[float] | None = None
    ) -> list[QueryHit]:
        query_filter = langchain_filter(filter)
        if isinstance(query_filter, Nothing):
            return []
        search = awaitable(self.knowledge_base, "search")
        return await search(query, k=k, filters=query_filter, mode=self._mode(mode), vector=vector)

    def _mode(self, mode: Mode) -> SearchMode | None:
        return self.mode if mode is None else as_mode(mode)

    def _search_by_vector(self, vector: Sequence[float], k: int, filter: Any) -> list[QueryHit]:
        query_filter = langchain_filter(filter)
        if isinstance(query_filter, Nothing):
            return []
        return self.knowledge_base.search_by_vector(vector, k=k, filters=query_filter)

    async def _asearch_by_vector(
        self, vector: Sequence[float], k: int, filter: Any
    ) -> list[QueryHit]:
        query_filter = langchain_filter(filter)
        if isinstance(query_filter, Nothing):
            return []
        search = awaitable(self.knowledge_base, "search_by_vector")
        return await search(vector, k=k, filters=query_filter)

    def similarity_search(
        self, query: str, k: int = 4, filter: Any = None, *, mode: Mode = None, **kwargs: Any
    ) -> list[Document]:
        _no_extra(kwargs)
        return [_document(h) for h in self._search(query, k, filter, mode)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Any = None, *, mode: Mode = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents with the mode's score (higher is better): cosine similarity in dense
        mode, BM25 in lexical, the fused score in hybrid."""
        _no_extra(kwargs)
        return [(_document(h), h.score) for h in self._search(query, k, filter, mode)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        _no_extra(kwargs)
        return [_document(h) for h in self._search_by_vector(embedding, k, filter)]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        _no_extra(kwargs)
        return [(_document(h), h.score) for h in self._search_by_vector(embedding, k, filter)]

    def _similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        hits = self._search(query, k, _dense_filter(kwargs), SearchMode.DENSE)
        return _relevance(hits)

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        *,
        mode: Mode = None,
        **kwargs: Any,
    ) -> list[Document]:
        """`k` of the `fetch_k` best chunks (ranked in `mode`), picked for relevance to the
        query and difference from each other, on their stored vectors."""
        _no_extra(kwargs)
        vector = self.knowledge_base.embed_query(query)
        candidates = self._search(query, max(k, fetch_k), filter, mode, vector)
        return self._mmr(vector, candidates, k, lambda_mult)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        _no_extra(kwargs)
        candidates = self._search_by_vector(embedding, max(k, fetch_k), filter)
        return self._mmr(embedding, candidates, k, lambda_mult)

    async def _asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        hits = await self._asearch(query, k, _dense_filter(kwargs), SearchMode.DENSE)
        return _relevance(hits)

    def _mmr(
        self, vector: Sequence[float], candidates: list[QueryHit], k: int, lambda_mult: float
    ) -> list[Document]:
        if not candidates:
            return []
        records = self.knowledge_base.records([h.id for h in candidates])
        return _diverse(vector, candidates, records, k, lambda_mult)

    async def _ammr(
        self, vector: Sequence[float], candidates: list[QueryHit], k: int, lambda_mult: float
    ) -> list[Document]:
        if not candidates:
            return []
        records = await awaitable(self.knowledge_base, "records")([h.id for h in candidates])
        return _diverse(vector, candidates, records, k, lambda_mult)

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return [_stored(r) for r in self.knowledge_base.records(list(ids))]

    # Async: the knowledge base's async search (native where the store's engine has it).

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: Any = None, *, mode: Mode = None, **kwargs: Any
    ) -> list[Document]:
        _no_extra(kwargs)
        return [_document(h) for h in await self._asearch(query, k, filter, mode)]

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: Any = None, *, mode: Mode = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        _no_extra(kwargs)
        return [(_document(h), h.score) for h in await self._asearch(query, k, filter, mode)]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[Document]:
        _no_extra(kwargs)
        return [_document(h) for h in await self._asearch_by_vector(embedding, k, filter)]

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        *,
        mode: Mode = None,
        **kwargs: Any,
    ) -> list[Document]:
        _no_extra(kwargs)
        vector = await awaitable(self.knowledge_base, "embed_query")(query)
        candidates = await self._asearch(query, max(k, fetch_k), filter, mode, vector)
        return await self._ammr(vector, candidates, k, lambda_mult)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[Document]:
        _no_extra(kwargs)
        candidates = await self._asearch_by_vector(embedding, max(k, fetch_k), filter)
        return await self._ammr(embedding, candidates, k, lambda_mult)

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        records = await awaitable(self.knowledge_base, "records")(list(ids))
        return [_stored(r) for r in records]

    # Writes: sync feeds the knowledge base.

    def add_texts(
        self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> list[str]:
        raise refuse_write("add_texts")

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        raise refuse_write("add_documents")

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        raise refuse_write("aadd_documents")

    async def aadd_texts(
        self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> list[str]:
        raise refuse_write("aadd_texts")

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        raise refuse_write("delete")

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        raise refuse_write("adelete")

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> HeadwaterVectorStore:
        raise refuse_write("from_texts")


class HeadwaterRetriever(BaseRetriever):
    """The `k` best chunks for the query, as Documents. ``invoke(q, k=3, filter=...,
    mode="hybrid")`` overrides `k`, the filter and `mode` for one call.

    ``filter`` is LangChain's dict form (or a `QueryFilter`); ``filters`` is Headwater's own
    (``{"file_types": ["pdf"], "source_glob": "policies/*"}``); give one.
    """

    knowledge_base: TextSearch
    k: int = 4
    filter: Mapping[str, Any] | QueryFilter | None = None
    filters: QueryFilter | None = None
    mode: SearchMode | None = None
    """dense, lexical or hybrid; None: the knowledge base's ``search.mode``."""

    @field_validator("filters", mode="before")
    @classmethod
    def _filters_from_mapping(cls, value: Any) -> Any:
        return as_filter(value) if isinstance(value, Mapping) else value

    @field_validator("filter")
    @classmethod
    def _filter_is_supported(cls, value: Any) -> Any:
        langchain_filter(value)  # an unsupported filter fails here, not at the first query
        return value

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        request = self._request(kwargs)
        if request is None:
            return []
        hits = self.knowledge_base.search(query, **request)
        return [_document(h) for h in hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        request = self._request(kwargs)
        if request is None:
            return []
        hits = await awaitable(self.knowledge_base, "search")(query, **request)
        return [_document(h) for h in hits]

    def _request(self, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """A call's search arguments; None when its filter lets nothing through."""
        k = kwargs.pop("k", self.k)
        mode = kwargs.pop("mode", self.mode)
        query_filter = self._filter_of(kwargs)
        _no_extra(kwargs)
        if isinstance(query_filter, Nothing):
            return None
        # Only with a mode: a search(text, k, filters) written before modes keeps working.
        chosen = {} if mode is None else {"mode": as_mode(mode)}
        return {"k": k, "filters": query_filter, **chosen}

    def _filter_of(self, kwargs: dict[str, Any]) -> QueryFilter | Nothing | None:
        # A call's filter replaces the retriever's, in whichever form it comes.
        given = {key: kwargs.pop(key) for key in ("filter", "filters") if key in kwargs}
        if not given:
            given = {"filter": self.filter, "filters": self.filters}
        lc, own = given.get("filter"), given.get("filters")
        if lc is not None and own is not None:
            raise ValueError("give filter (LangChain's form) or filters (Headwater's), not both")
        return langchain_filter(lc) if lc is not None else as_filter(own)
