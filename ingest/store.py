"""The `VectorStore` interface every backend implements (see connectors/stores/)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel

from ingest.models import QueryFilter, QueryHit, VectorRecord


class VectorStore(ABC):
    """A collection of chunk vectors with their metadata.

    Implementations take their validated config in the constructor and do no I/O there;
    they connect on first use. Ids are chunk ids (strings). Upserting an id that exists
    replaces it: a store never holds two rows with one id.
    """

    name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    """The pydantic model that validates the backend's ``[store.<name>]`` table."""

    def __init__(self, config: BaseModel, *, collection: str, state_dir: Path) -> None:
        self.config = config
        self.collection = collection
        self.state_dir = state_dir

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data lives, without credentials (safe to log and to key state by)."""

    @abstractmethod
    def ensure_collection(self, dimension: int) -> None:
        """Create the collection if missing; fail if it exists with another dimension."""

    @abstractmethod
    def upsert(self, records: Sequence[VectorRecord]) -> int:
        """Insert or replace records by id; returns how many were written."""

    @abstractmethod
    def delete_ids(self, ids: Iterable[str]) -> int:
        """Delete records by id; returns how many ids were asked for."""

    @abstractmethod
    def delete_source(self, source_id: str) -> int:
        """Delete every record of one document; returns how many were deleted."""

    @abstractmethod
    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        """The subset of `ids` the store holds."""

    @abstractmethod
    def source_ids(self, source_id: str) -> set[str]:
        """Ids of every record of one document."""

    @abstractmethod
    def fetch(self, ids: Iterable[str]) -> list[VectorRecord]:
        """Records (with vectors) for the ids the store holds."""

    @abstractmethod
    def query(
        self, vector: Sequence[float], k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        """The `k` nearest records by cosine similarity (higher score is closer)."""

    @abstractmethod
    def count(self, filters: QueryFilter | None = None) -> int:
        """How many records match (all when no filter)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and files. Safe to call twice."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
