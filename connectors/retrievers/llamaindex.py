"""A LlamaIndex retriever over a Headwater knowledge base.

Returns ``NodeWithScore(TextNode)``s carrying Headwater's metadata (``source``, ``path``,
``page``, ``section``...); only source, page and section are shown to the LLM.
"""

from __future__ import annotations

from typing import Any

from headwater.ingest.errors import MissingExtraError
from headwater.ingest.search import Filters, Mode, TextSearch, as_filter, as_mode, hit_metadata

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError:  # pragma: no cover - depends on the install
    raise MissingExtraError("The LlamaIndex retriever", "llamaindex") from None

LLM_METADATA = ("source", "page", "section")
"""Metadata a response synthesizer puts before each chunk; offsets and ids would be noise."""


class HeadwaterRetriever(BaseRetriever):
    """The `k` best chunks for the query, as scored text nodes; `mode` is dense, lexical
    or hybrid (None: the knowledge base's ``search.mode``)."""

    def __init__(
        self,
        knowledge_base: TextSearch,
        k: int = 4,
        filters: Filters = None,
        mode: Mode = None,
        **kwargs: Any,
    ) -> None:
        self.knowledge_base = knowledge_base
        self.k = k
        self.filters = as_filter(filters)
        self.mode = None if mode is None else as_mode(mode)
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Only with a mode: a search(text, k, filters) written before modes keeps working.
        chosen = {} if self.mode is None else {"mode": self.mode}
        hits = self.knowledge_base.search(
            query_bundle.query_str, k=self.k, filters=self.filters, **chosen
        )
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
