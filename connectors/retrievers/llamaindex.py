"""LlamaIndex over a Headwater knowledge base: a read-only vector store and a retriever.

Nodes are ``TextNode``s carrying Headwater's metadata (``source``, ``path``, ``page``,
``section``...); only source, page and section are shown to the LLM. Filters are
LlamaIndex ``MetadataFilters`` (EQ, IN, and GT/GTE/LT/LTE on ``page``; AND, and OR over
one field's values) or Headwater's own; what Headwater cannot evaluate raises
`UnsupportedFilterError`. Writes raise `ReadOnlyKnowledgeBaseError` (docs/frameworks.md).

Async: ``aquery``, ``aget_nodes`` and ``aretrieve`` await the knowledge base's async
search (`KnowledgeBase.asearch`): the query is embedded on a worker thread, and the store
answers natively where its engine has an async client (a Milvus server, Weaviate), on a
worker thread where it runs in-process (FAISS, Milvus Lite). The event loop is never
blocked (LlamaIndex's own fallback for both calls the blocking method in the loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from headwater.connectors.retrievers.common import NOTHING, Nothing, awaitable, refuse_write
from headwater.connectors.retrievers.filters import (
    AllOf,
    AnyOf,
    Condition,
    Node,
    to_query_filter,
    unsupported,
)
from headwater.ingest.errors import MissingExtraError
from headwater.ingest.models import QueryFilter, QueryHit, SearchMode, VectorRecord
from headwater.ingest.search import (
    Filters,
    Mode,
    TextSearch,
    VectorSearch,
    as_filter,
    as_mode,
    hit_metadata,
)

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
    from llama_index.core.indices.vector_store import VectorStoreIndex
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle, TextNode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
except ImportError:  # pragma: no cover - depends on the install
    raise MissingExtraError("The LlamaIndex integration", "llamaindex") from None

LLM_METADATA = ("source", "page", "section")
"""Metadata a response synthesizer puts before each chunk; offsets and ids would be noise."""

_OPERATORS = {
    FilterOperator.EQ: "eq",
    FilterOperator.IN: "in",
    FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt",
    FilterOperator.LTE: "lte",
}

_MODES = {
    VectorStoreQueryMode.DEFAULT: SearchMode.DENSE,
    VectorStoreQueryMode.HYBRID: SearchMode.HYBRID,
    VectorStoreQueryMode.TEXT_SEARCH: SearchMode.LEXICAL,
    VectorStoreQueryMode.SPARSE: SearchMode.LEXICAL,
}
"""LlamaIndex query modes Headwater answers (MMR too, by embeddings); others raise."""

DEFAULT_MMR_PREFETCH = 4
"""MMR picks among similarity_top_k x this many candidates (LlamaIndex's own default)."""


def from_metadata_filters(filters: MetadataFilters) -> Node:
    """LlamaIndex's filters as the condition tree `to_query_filter` reads."""
    if filters.condition == FilterCondition.NOT:
        raise unsupported("condition NOT")
    parts: list[Node] = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            parts.append(from_metadata_filters(f))
            continue
        op = _OPERATORS.get(f.operator, f.operator.name.lower())
        parts.append(Condition(f.key, op, f.value))
    nodes = tuple(parts)
    return AnyOf(nodes) if filters.condition == FilterCondition.OR else AllOf(nodes)


def llamaindex_filter(value: MetadataFilters | Filters) -> QueryFilter | Nothing | None:
    """``MetadataFilters``, a `QueryFilter` or Headwater's filter mapping, for a search."""
    if isinstance(value, MetadataFilters):
        if not value.filters:
            return None
        translated = to_query_filter(from_metadata_filters(value))
        return NOTHING if translated is None else translated
    return as_filter(value)


def node_of(hit: QueryHit) -> TextNode:
    metadata = hit_metadata(hit)
    return TextNode(
        id_=hit.id,
        text=hit.text,
        metadata=metadata,
        excluded_llm_metadata_keys=[key for key in metadata if key not in LLM_METADATA],
        excluded_embed_metadata_keys=list(metadata),
    )


def _filter_of(query: VectorStoreQuery) -> QueryFilter | Nothing | None:
    """The query's filter, once its mode and ids are known to be answerable."""
    mode = query.mode
    if query.doc_ids or query.node_ids:
        raise unsupported("by doc_ids or node_ids (use filters on source or path)")
    if mode not in _MODES and mode != VectorStoreQueryMode.MMR:
        known = ", ".join(m.value for m in (*_MODES, VectorStoreQueryMode.MMR))
        raise ValueError(f"query mode {mode.value!r} is not supported: use one of {known}")
    return llamaindex_filter(query.filters)


def _by_vector(query: VectorStoreQuery) -> bool:
    return _MODES[query.mode] is SearchMode.DENSE and query.query_embedding is not None


def _text(query: VectorStoreQuery) -> str:
    if query.query_str is None:
        raise ValueError(f"query mode {query.mode.value!r} needs query_str")
    return query.query_str


def _mode_and_vector(query: VectorStoreQuery) -> dict[str, Any]:
    return {"mode": _MODES[query.mode], "vector": query.query_embedding}


def _result(hits: list[QueryHit]) -> VectorStoreQueryResult:
    return VectorStoreQueryResult(
        nodes=[node_of(h) for h in hits],
        similarities=[h.score for h in hits],
        ids=[h.id for h in hits],
    )


def _mmr_text(query: VectorStoreQuery) -> str:
    if query.query_str is None:
        raise ValueError("query mode 'mmr' needs query_embedding or query_str")
    return query.query_str


def _mmr_fetch(query: VectorStoreQuery, prefetch: Any) -> int:
    k = query.similarity_top_k
    return max(k, int(k * float(prefetch or DEFAULT_MMR_PREFETCH)))


def _mmr_pick(
    query: VectorStoreQuery,
    vector: Sequence[float],
    candidates: list[QueryHit],
    records: list[VectorRecord],
) -> list[QueryHit]:
    """The candidates MMR keeps, by their stored vectors (``mmr_threshold`` is lambda)."""
    stored = {r.id: list(r.vector) for r in records}
    kept = [h for h in candidates if h.id in stored]
    if not kept:
        return []
    _, ids = get_top_k_mmr_embeddings(
        list(vector),
        [stored[h.id] for h in kept],
        similarity_top_k=query.similarity_top_k,
        embedding_ids=[h.id for h in kept],
        mmr_threshold=query.mmr_threshold,
    )
    by_id = {h.id: h for h in kept}
    return [by_id[i] for i in ids]


def _node_ids(node_ids: list[str] | None, filters: MetadataFilters | None) -> list[str]:
    if filters is not None or node_ids is None:
        raise unsupported("listing nodes by filters (give node_ids)")
    return node_ids


def _nodes(records: list[VectorRecord]) -> list[BaseNode]:
    return [node_of(QueryHit(r.id, 0.0, r.chunk.text, r.chunk.metadata)) for r in records]


class HeadwaterEmbedding(BaseEmbedding):
    """The knowledge base's query embedding as a LlamaIndex embed model."""

    _kb: VectorSearch = PrivateAttr()

    def __init__(self, knowledge_base: VectorSearch, **kwargs: Any) -> None:
        super().__init__(model_name="headwater", **kwargs)
        self._kb = knowledge_base

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._kb.embed_query(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._kb.embed_query(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await awaitable(self._kb, "embed_query")(query)


class HeadwaterVectorStore(BasePydanticVectorStore):
    """A read-only LlamaIndex vector store over a Headwater knowledge base.

    ``query`` honours ``query_embedding``, ``query_str``, ``similarity_top_k``, ``filters``
    and the mode: DEFAULT ranks by the embedding (dense), HYBRID and TEXT_SEARCH use
    Headwater's hybrid and lexical (BM25) search on ``query_str``, MMR picks diverse
    results by the stored vectors (``mmr_threshold`` is its lambda).
    """

    stores_text: bool = True
    is_embedding_query: bool = True
    _kb: VectorSearch = PrivateAttr()

    def __init__(self, knowledge_base: VectorSearch, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kb = knowledge_base

    @property
    def client(self) -> VectorSearch:
        return self._kb

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        query_filter = _filter_of(query)
        if isinstance(query_filter, Nothing):
            return _result([])
        k = query.similarity_top_k
        if query.mode == VectorStoreQueryMode.MMR:
            hits = self._mmr(query, query_filter, kwargs.get("mmr_prefetch_factor"))
        elif _by_vector(query):
            assert query.query_embedding is not None
            hits = self._kb.search_by_vector(query.query_embedding, k=k, filters=query_filter)
        else:
            hits = self._kb.search(
                _text(query), k=k, filters=query_filter, **_mode_and_vector(query)
            )
        return _result(hits)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        query_filter = _filter_of(query)
        if isinstance(query_filter, Nothing):
            return _result([])
        k = query.similarity_top_k
        if query.mode == VectorStoreQueryMode.MMR:
            hits = await self._ammr(query, query_filter, kwargs.get("mmr_prefetch_factor"))
        elif _by_vector(query):
            search_by_vector = awaitable(self._kb, "search_by_vector")
            hits = await search_by_vector(query.query_embedding, k=k, filters=query_filter)
        else:
            search = awaitable(self._kb, "search")
            hits = await search(_text(query), k=k, filters=query_filter, **_mode_and_vector(query))
        return _result(hits)

    def _mmr(
        self, query: VectorStoreQuery, query_filter: QueryFilter | None, prefetch: Any
    ) -> list[QueryHit]:
        vector = query.query_embedding or self._kb.embed_query(_mmr_text(query))
        fetch = _mmr_fetch(query, prefetch)
        candidates = self._kb.search_by_vector(vector, k=fetch, filters=query_filter)
        records = self._kb.records([h.id for h in candidates])
        return _mmr_pick(query, vector, candidates, records)

    async def _ammr(
        self, query: VectorStoreQuery, query_filter: QueryFilter | None, prefetch: Any
    ) -> list[QueryHit]:
        vector = query.query_embedding or await awaitable(self._kb, "embed_query")(_mmr_text(query))
        fetch = _mmr_fetch(query, prefetch)
        search_by_vector = awaitable(self._kb, "search_by_vector")
        candidates = await search_by_vector(vector, k=fetch, filters=query_filter)
        records = await awaitable(self._kb, "records")([h.id for h in candidates])
        return _mmr_pick(query, vector, candidates, records)

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return _nodes(self._kb.records(_node_ids(node_ids, filters)))

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return _nodes(await awaitable(self._kb, "records")(_node_ids(node_ids, filters)))

    # Writes: sync feeds the knowledge base.

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        raise refuse_write("add")

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        raise refuse_write("async_add")

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        raise refuse_write("delete")

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        raise refuse_write("adelete")

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        raise refuse_write("delete_nodes")

    def clear(self) -> None:
        raise refuse_write("clear")


def vector_store_index(knowledge_base: VectorSearch, **kwargs: Any) -> VectorStoreIndex:
    """``VectorStoreIndex.from_vector_store`` over the knowledge base, with its own model
    embedding the queries (no LLM or OpenAI key needed to retrieve)."""
    return VectorStoreIndex.from_vector_store(
        HeadwaterVectorStore(knowledge_base),
        embed_model=HeadwaterEmbedding(knowledge_base),
        **kwargs,
    )


class HeadwaterRetriever(BaseRetriever):
    """The `k` (or ``similarity_top_k``) best chunks for the query, as scored text nodes.

    `filters`: LlamaIndex ``MetadataFilters``, a `QueryFilter` or Headwater's mapping
    (``{"file_types": ["pdf"]}``). `mode` is dense, lexical or hybrid (None: the knowledge
    base's ``search.mode``).
    """

    def __init__(
        self,
        knowledge_base: TextSearch,
        k: int | None = None,
        filters: MetadataFilters | Filters = None,
        mode: Mode = None,
        *,
        similarity_top_k: int | None = None,
        **kwargs: Any,
    ) -> None:
        if k is not None and similarity_top_k is not None and k != similarity_top_k:
            raise ValueError(f"k={k} and similarity_top_k={similarity_top_k}: give one")
        self.knowledge_base = knowledge_base
        self.k = k or similarity_top_k or 4
        self.filters = llamaindex_filter(filters)
        self.mode = None if mode is None else as_mode(mode)
        super().__init__(**kwargs)

    @property
    def similarity_top_k(self) -> int:
        return self.k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if isinstance(self.filters, Nothing):
            return []
        hits = self.knowledge_base.search(query_bundle.query_str, **self._request())
        return _scored(hits)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if isinstance(self.filters, Nothing):
            return []
        search = awaitable(self.knowledge_base, "search")
        return _scored(await search(query_bundle.query_str, **self._request()))

    def _request(self) -> dict[str, Any]:
        # Only with a mode: a search(text, k, filters) written before modes keeps working.
        chosen = {} if self.mode is None else {"mode": self.mode}
        return {"k": self.k, "filters": self.filters, **chosen}


def _scored(hits: list[QueryHit]) -> list[NodeWithScore]:
    return [NodeWithScore(node=node_of(h), score=h.score) for h in hits]


__all__ = [
    "HeadwaterEmbedding",
    "HeadwaterRetriever",
    "HeadwaterVectorStore",
    "vector_store_index",
]
