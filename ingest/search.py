"""What searching a knowledge base takes and gives, for the API and the framework adapters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from headwater.ingest.models import (
    ChunkMetadata,
    Fusion,
    FusionMethod,
    QueryFilter,
    QueryHit,
    SearchMode,
    VectorRecord,
)

if TYPE_CHECKING:
    from headwater.ingest.store import VectorStore

Filters = QueryFilter | Mapping[str, Any] | None
"""A `QueryFilter`, or its fields as a mapping (``{"source_glob": "policies/*"}``)."""

Mode = SearchMode | str | None
"""A `SearchMode` or its name (``"hybrid"``); None: the config's ``search.mode``."""


class SearchConfig(BaseModel):
    """The ``[search]`` table: how queries rank chunks unless a query says otherwise."""

    model_config = ConfigDict(extra="forbid")

    mode: SearchMode = Field(
        SearchMode.HYBRID,
        description="dense: by embedding similarity. lexical: by BM25 full-text relevance of "
        "the query's words. hybrid (default; best recall and IoU in "
        "benchmarks/results/retrieval_eval.md): both rankings fused (see `fusion`); left "
        "unset, a store without full-text search (Milvus 2.3/2.4) answers dense with a "
        "warning. `headwater query --mode` and search(mode=...) override it per query.",
    )
    fusion: FusionMethod = Field(
        FusionMethod.WEIGHTED,
        description="hybrid: weighted (default: each ranking's scores scaled to 0..1, mixed "
        "by `alpha`; the better of the two in benchmarks/results/retrieval_eval.md) or rrf "
        "(reciprocal rank fusion, by rank only).",
    )
    rrf_k: int = Field(
        60, ge=1, description="rrf: the constant in 1 / (rrf_k + rank); larger flattens ranks."
    )
    alpha: float = Field(
        0.5,
        ge=0,
        le=1,
        description="weighted fusion: weight of the dense ranking (1: dense only, 0: lexical "
        "only). Weaviate applies it in its own hybrid query.",
    )
    candidates: int = Field(
        4, ge=1, description="hybrid: each ranking is cut at candidates x k before fusing."
    )

    def fusion_settings(self) -> Fusion:
        return Fusion(self.fusion, self.rrf_k, self.alpha, self.candidates)


def as_mode(mode: Mode, default: SearchMode = SearchMode.DENSE) -> SearchMode:
    """`mode` as a `SearchMode`; an unknown name raises, listing the known ones."""
    if mode is None:
        return default
    try:
        return SearchMode(mode)
    except ValueError:
        known = ", ".join(m.value for m in SearchMode)
        raise ValueError(f"search mode {mode!r}: use one of {known}") from None


@runtime_checkable
class TextSearch(Protocol):
    """Anything that ranks stored chunks for a text (`headwater.KnowledgeBase` does)."""

    def search(
        self, text: str, k: int = 5, filters: Filters = None, mode: Mode = None
    ) -> list[QueryHit]: ...


@runtime_checkable
class VectorSearch(TextSearch, Protocol):
    """What the framework vector stores need: text and vector search, the stored vectors
    (for maximal marginal relevance) and the query embedding (`headwater.KnowledgeBase`)."""

    def search(
        self,
        text: str,
        k: int = 5,
        filters: Filters = None,
        mode: Mode = None,
        *,
        vector: Sequence[float] | None = None,
    ) -> list[QueryHit]: ...

    def search_by_vector(
        self, vector: Sequence[float], k: int = 5, filters: Filters = None
    ) -> list[QueryHit]: ...

    def records(self, ids: Sequence[str]) -> list[VectorRecord]: ...

    def embed_query(self, text: str) -> list[float]: ...


def as_filter(filters: Filters) -> QueryFilter | None:
    """`filters` as a `QueryFilter`; a mapping's unknown keys raise, naming them."""
    if filters is None or isinstance(filters, QueryFilter):
        return filters
    return QueryFilter.from_mapping(filters)


def hit_metadata(hit: QueryHit) -> dict[str, Any]:
    """A hit's id, score and metadata as flat values, the shape frameworks and JSON want.

    ``source`` is the document id (``source:path``), as LangChain's loaders and
    ``headwater query --json`` use it; the source's configured name is ``source_name``.
    """
    return {"id": hit.id, "score": hit.score, **flat_metadata(hit.metadata)}


def flat_metadata(m: ChunkMetadata) -> dict[str, Any]:
    """A chunk's metadata as `hit_metadata` gives it, without id and score."""
    flat = asdict(m)
    flat.update(
        source=m.source_id,
        source_name=m.source,
        page=m.page,
        pages=list(m.pages),
        element_types=list(m.element_types),
    )
    return flat


def search_store(
    store: VectorStore,
    text: str,
    embed: Callable[[str], Sequence[float]],
    *,
    k: int,
    filters: QueryFilter | None,
    mode: SearchMode,
    fusion: Fusion,
) -> list[QueryHit]:
    """Rank `store`'s chunks for `text` in `mode`; `embed` is called only when needed."""
    if mode is SearchMode.LEXICAL:
        return store.lexical_query(text, k=k, filters=filters)
    if mode is SearchMode.HYBRID:
        return store.hybrid_search(text, embed, k=k, filters=filters, fusion=fusion)
    return store.query(embed(text), k=k, filters=filters)


async def asearch_store(
    store: VectorStore,
    text: str,
    embed: Callable[[str], Awaitable[Sequence[float]]],
    *,
    k: int,
    filters: QueryFilter | None,
    mode: SearchMode,
    fusion: Fusion,
) -> list[QueryHit]:
    """`search_store`, awaitable, with `embed` awaitable; the store's calls are its async
    ones (native where its engine has an async client)."""
    if mode is SearchMode.LEXICAL:
        return await store.alexical_query(text, k=k, filters=filters)
    if mode is SearchMode.HYBRID:
        return await store.ahybrid_search(text, embed, k=k, filters=filters, fusion=fusion)
    return await store.aquery(await embed(text), k=k, filters=filters)
