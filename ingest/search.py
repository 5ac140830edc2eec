"""What searching a knowledge base takes and gives, for the API and the framework adapters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Protocol, runtime_checkable

from headwater.ingest.models import QueryFilter, QueryHit

Filters = QueryFilter | Mapping[str, Any] | None
"""A `QueryFilter`, or its fields as a mapping (``{"source_glob": "policies/*"}``)."""


@runtime_checkable
class TextSearch(Protocol):
    """Anything that ranks stored chunks for a text (`headwater.KnowledgeBase` does)."""

    def search(self, text: str, k: int = 5, filters: Filters = None) -> list[QueryHit]: ...


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
    m = hit.metadata
    flat = asdict(m)
    flat.update(
        source=m.source_id,
        source_name=m.source,
        page=m.page,
        pages=list(m.pages),
        element_types=list(m.element_types),
    )
    return {"id": hit.id, "score": hit.score, **flat}
