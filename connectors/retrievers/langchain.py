"""A LangChain retriever over a Headwater knowledge base.

Returns LangChain ``Document``s whose metadata is Headwater's: ``source`` (the document
id, ``source:path``), ``path``, ``page``/``pages``, ``section``, ``file_type``, ``score``...
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import field_validator

from ingest.api import KnowledgeBase, as_filter, hit_metadata
from ingest.config import HeadwaterConfig
from ingest.errors import MissingExtraError
from ingest.models import QueryFilter

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError:  # pragma: no cover - depends on the install
    raise MissingExtraError("The LangChain retriever", "langchain") from None


class HeadwaterRetriever(BaseRetriever):
    """The `k` chunks closest to the query, as Documents. ``invoke(q, k=3, filters=...)``
    overrides `k` and `filters` for one call."""

    knowledge_base: KnowledgeBase
    k: int = 4
    filters: QueryFilter | None = None

    @field_validator("filters", mode="before")
    @classmethod
    def _filters_from_mapping(cls, value: Any) -> Any:
        return as_filter(value) if isinstance(value, Mapping) else value

    @classmethod
    def from_config(
        cls, config: str | Path | HeadwaterConfig | None = None, **kwargs: Any
    ) -> HeadwaterRetriever:
        """A retriever over the knowledge base a config file describes (opened lazily)."""
        return cls(knowledge_base=KnowledgeBase.open(config), **kwargs)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        hits = self.knowledge_base.search(
            query, k=kwargs.get("k", self.k), filters=kwargs.get("filters", self.filters)
        )
        return [Document(page_content=h.text, metadata=hit_metadata(h), id=h.id) for h in hits]
