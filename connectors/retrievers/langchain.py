"""A LangChain retriever over a Headwater knowledge base.

Returns LangChain ``Document``s whose metadata is Headwater's: ``source`` (the document
id, ``source:path``), ``path``, ``page``/``pages``, ``section``, ``file_type``, ``score``...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import field_validator

from headwater.ingest.errors import MissingExtraError
from headwater.ingest.models import QueryFilter, SearchMode
from headwater.ingest.search import TextSearch, as_filter, as_mode, hit_metadata

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError:  # pragma: no cover - depends on the install
    raise MissingExtraError("The LangChain retriever", "langchain") from None


class HeadwaterRetriever(BaseRetriever):
    """The `k` best chunks for the query, as Documents. ``invoke(q, k=3, filters=...,
    mode="hybrid")`` overrides `k`, `filters` and `mode` for one call."""

    knowledge_base: TextSearch
    k: int = 4
    filters: QueryFilter | None = None
    mode: SearchMode | None = None
    """dense, lexical or hybrid; None: the knowledge base's ``search.mode``."""

    @field_validator("filters", mode="before")
    @classmethod
    def _filters_from_mapping(cls, value: Any) -> Any:
        return as_filter(value) if isinstance(value, Mapping) else value

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        mode = kwargs.get("mode", self.mode)
        # Only with a mode: a search(text, k, filters) written before modes keeps working.
        chosen = {} if mode is None else {"mode": as_mode(mode)}
        hits = self.knowledge_base.search(
            query, k=kwargs.get("k", self.k), filters=kwargs.get("filters", self.filters), **chosen
        )
        return [Document(page_content=h.text, metadata=hit_metadata(h), id=h.id) for h in hits]
