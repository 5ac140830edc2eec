"""LangChain over a Headwater knowledge base: a read-only `VectorStore` and a retriever.

Documents carry Headwater's metadata: ``source`` (the document id, ``source:path``),
``path``, ``page``/``pages``, ``section``, ``file_type``, ``score``... A ``filter`` is
LangChain's dict form (``{"file_type": "pdf"}``, ``{"page": {"$gte": 2}}``, ``$and``,
``$or``, ``$in``...) or a Headwater `QueryFilter`; what Headwater cannot evaluate raises
`UnsupportedFilterError`. Writes raise `ReadOnlyKnowledgeBaseError`: ``headwater sync``
feeds the knowledge base (docs/frameworks.md says why).

Async: Headwater's stores and its embedding model are synchronous (FAISS and Milvus Lite
run in-process, the model is CPU/GPU bound), so the async methods run the same search in a
worker thread (`asyncio.to_thread`): the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import field_validator

from headwater.connectors.retrievers.common import Nothing, langchain_filter, refuse_write
from headwater.ingest.errors import MissingExtraError
from headwater.ingest.models import QueryFilter, QueryHit, SearchMode
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


class HeadwaterEmbeddings(Embeddings):
    """The knowledge base's query embedding as LangChain `Embeddings`."""

    def __init__(self, knowledge_base: VectorSearch) -> None:
        self.knowledge_base = knowledge_base

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.knowledge_base.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.knowledge_base.embed_query(text)


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
        chosen = self.mode if mode is None else as_mode(mode)
        return self.knowledge_base.search(
            query, k=k, filters=query_filter, mode=chosen, vector=vector
        )

    def _search_by_vector(self, vector: Sequence[float], k: int, filter: Any) -> list[QueryHit]:
        query_filter = langchain_filter(filter)
        if isinstance(query_filter, Nothing):
            return []
        return self.knowledge_base.search_by_vector(vector, k=k, filters=query_filter)

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
        hits = self._search(query, k, filter, SearchMode.DENSE)
        return [(_document(h), min(1.0, max(0.0, h.score))) for h in hits]

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

    def _mmr(
        self, vector: Sequence[float], candidates: list[QueryHit], k: int, lambda_mult: float
    ) -> list[Document]:
        if not candidates:
            return []
        stored = {r.id: r.vector for r in self.knowledge_base.records([h.id for h in candidates])}
        kept = [h for h in candidates if h.id in stored]
        chosen = maximal_marginal_relevance(
            np.asarray(vector, dtype=np.float32),
            [list(stored[h.id]) for h in kept],
            lambda_mult=lambda_mult,
            k=k,
        )
        return [_document(kept[i]) for i in chosen]

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return [
            Document(page_content=r.chunk.text, metadata=flat_metadata(r.chunk.metadata), id=r.id)
            for r in self.knowledge_base.records(list(ids))
        ]

    # Async: the same searches in a worker thread (the stores are synchronous).

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return await asyncio.to_thread(self.similarity_search, query, k, **kwargs)

    async def asimilarity_search_with_score(
        self, *args: Any, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return await asyncio.to_thread(self.similarity_search_with_score, *args, **kwargs)

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        return await asyncio.to_thread(self.similarity_search_by_vector, embedding, k, **kwargs)

    async def _asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return await asyncio.to_thread(
            self._similarity_search_with_relevance_scores, query, k, **kwargs
        )

    async def amax_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        return await asyncio.to_thread(
            self.max_marginal_relevance_search, query, k, fetch_k, lambda_mult, **kwargs
        )

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        return await asyncio.to_thread(
            self.max_marginal_relevance_search_by_vector,
            embedding,
            k,
            fetch_k,
            lambda_mult,
            **kwargs,
        )

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await asyncio.to_thread(self.get_by_ids, ids)

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
        k = kwargs.pop("k", self.k)
        mode = kwargs.pop("mode", self.mode)
        query_filter = self._filter_of(kwargs)
        _no_extra(kwargs)
        if isinstance(query_filter, Nothing):
            return []
        # Only with a mode: a search(text, k, filters) written before modes keeps working.
        chosen = {} if mode is None else {"mode": as_mode(mode)}
        hits = self.knowledge_base.search(query, k=k, filters=query_filter, **chosen)
        return [_document(h) for h in hits]

    def _filter_of(self, kwargs: dict[str, Any]) -> QueryFilter | Nothing | None:
        # A call's filter replaces the retriever's, in whichever form it comes.
        given = {key: kwargs.pop(key) for key in ("filter", "filters") if key in kwargs}
        if not given:
            given = {"filter": self.filter, "filters": self.filters}
        lc, own = given.get("filter"), given.get("filters")
        if lc is not None and own is not None:
            raise ValueError("give filter (LangChain's form) or filters (Headwater's), not both")
        return langchain_filter(lc) if lc is not None else as_filter(own)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        sync_manager = run_manager.get_sync()
        return await asyncio.to_thread(
            self._get_relevant_documents, query, run_manager=sync_manager, **kwargs
        )
