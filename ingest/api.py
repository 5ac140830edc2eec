"""The Python API: open a configured knowledge base, search it, sync it. No Prefect needed.

```python
from ingest.api import KnowledgeBase

with KnowledgeBase.open("headwater.toml") as kb:
    for hit in kb.search("How many vacation days?", k=3, filters={"file_types": ["pdf"]}):
        print(hit.score, hit.metadata.source_id, hit.metadata.page, hit.text[:80])
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.config import HeadwaterConfig, load_config
from ingest.errors import StoreError
from ingest.models import QueryFilter, QueryHit

if TYPE_CHECKING:
    from ingest.embedding import Embedder
    from ingest.report import SyncReport
    from ingest.store import VectorStore

Filters = QueryFilter | Mapping[str, Any] | None
"""A `QueryFilter`, or its fields as a mapping (``{"source_glob": "policies/*"}``)."""


def as_filter(filters: Filters) -> QueryFilter | None:
    """`filters` as a `QueryFilter`; a mapping's unknown keys raise, naming them."""
    if filters is None or isinstance(filters, QueryFilter):
        return filters
    return QueryFilter.from_mapping(filters)


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
        from ingest.embedding import Embedder

        return self._embedder or Embedder(self.config.embedding)

    @cached_property
    def store(self) -> VectorStore:
        from connectors.registry import create_store

        return self._store or create_store(self.config)

    def search(self, text: str, k: int = 5, filters: Filters = None) -> list[QueryHit]:
        """The `k` chunks closest to `text` (highest score first) that pass `filters`."""
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        query_filter = as_filter(filters)
        self._check_model()
        vector = self.embedder.embed_query(text)
        return self.store.query(vector, k=k, filters=query_filter)

    def _check_model(self) -> None:
        # Vectors of another model with the same size would rank nonsense without an error.
        if self._model_checked:
            return
        spec = self.store.collection_spec()
        model = self.config.embedding.model
        if spec is not None and spec.model and spec.model != model:
            raise StoreError(
                f"collection {self.store.collection!r} at {self.store.location} holds vectors "
                f"of {spec.model!r}; the config's embedding.model is {model!r}"
            )
        self._model_checked = True

    def sync(self, *, wait: float = 0) -> SyncReport:
        """Bring the store in step with the configured sources (see `headwater sync`)."""
        from ingest.sync import SyncEngine

        engine = SyncEngine(self.config, store=self.store, embedder=self.embedder)
        try:
            return engine.run(wait=wait)
        finally:
            # The store stays open for searches; only the engine's manifest is closed.
            engine.manifest.close()

    def close(self) -> None:
        """Release the store (safe to call twice)."""
        if "store" in self.__dict__:
            self.store.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
