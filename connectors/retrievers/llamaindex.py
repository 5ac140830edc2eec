"""A LlamaIndex retriever over a Headwater knowledge base.

Returns ``NodeWithScore(TextNode)``s carrying Headwater's metadata (``source``, ``path``,
``page``, ``section``...); only source, page and section are shown to the LLM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.api import Filters, KnowledgeBase, as_filter, hit_metadata
from ingest.config import HeadwaterConfig
from ingest.errors import MissingExtraError

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError:  # pragma: no cover - depends on the install
    raise MissingExtraError("The LlamaIndex retriever", "llamaindex") from None

LLM_METADATA = ("source", "page", "section")
"""Metadata a response synthesizer puts before each chunk; offsets and ids would be noise."""


class HeadwaterRetriever(BaseRetriever):
    """The `k` chunks closest to the query, as scored text nodes."""

    def __init__(
        self, knowledge_base: KnowledgeBase, k: int = 4, filters: Filters = None, **kwargs: Any
    ) -> None:
        self.knowledge_base = knowledge_base
        self.k = k
        self.filters = as_filter(filters)
        super().__init__(**kwargs)

    @classmethod
    def from_config(
        cls, config: str | Path | HeadwaterConfig | None = None, **kwargs: Any
    ) -> HeadwaterRetriever:
        """A retriever over the knowledge base a config file describes (opened lazily)."""
        return cls(KnowledgeBase.open(config), **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.knowledge_base.search(query_bundle.query_str, k=self.k, filters=self.filters)
        nodes = []
        for h in hits:
            metadata = hit_metadata(h)
            node = TextNode(
                id_=h.id,
                text=h.text,
                metadata=metadata,
                excluded_llm_metadata_keys=[key for key in metadata if key not in LLM_METADATA],
                excluded_embed_metadata_keys=list(metadata),
            )
            nodes.append(NodeWithScore(node=node, score=h.score))
        return nodes
