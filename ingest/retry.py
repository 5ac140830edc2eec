"""Store calls retried with exponential backoff, then one clear error.

A sync writes to the store first and commits the manifest after, so a store call that
finally fails leaves the manifest describing only what was written: the next run picks
up the rest. Errors that retrying cannot fix (ours: a wrong vector size, a collection
made for another model, a store open elsewhere) are raised at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from headwater.ingest.config import RetryConfig
from headwater.ingest.errors import (
    HeadwaterError,
    StoreUnavailableError,
    host_error,
    is_disk_full,
    is_read_only,
    redact,
)
from headwater.ingest.faults import fault_point
from headwater.ingest.models import CollectionSpec, Fusion, QueryFilter, QueryHit, VectorRecord
from headwater.ingest.store import VectorStore

log = logging.getLogger(__name__)

T = TypeVar("T")


def _transient(exc: BaseException) -> bool:
    """Whether trying again may help: anything but our own errors, which say what to fix,
    and a full disk or a read-only file, which waiting does not fix."""
    if is_disk_full(exc) or is_read_only(exc):
        return False
    return isinstance(exc, StoreUnavailableError) or not isinstance(exc, HeadwaterError)


class RetryingStore(VectorStore):
    """Wraps a store; each call is tried `config.attempts` times with backoff."""

    def __init__(self, inner: VectorStore, config: RetryConfig) -> None:
        super().__init__(inner.config, collection=inner.collection, state_dir=inner.state_dir)
        self.inner = inner
        self.retry = config
        self.name = inner.name  # type: ignore[misc]
        self.config_model = inner.config_model  # type: ignore[misc]

    @property
    def location(self) -> str:
        return self.inner.location

    def __getattr__(self, name: str) -> object:
        # Backend-specific attributes (a Milvus store's uri...) read through.
        return getattr(self.inner, name)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        cfg = self.retry

        def note(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "store %s: %s failed (try %d of %d): %s; retrying",
                self.location,
                what,
                state.attempt_number,
                cfg.attempts,
                redact(f"{type(exc).__name__}: {exc}"),
            )

        retrying = Retrying(
            stop=stop_after_attempt(cfg.attempts),
            wait=wait_exponential(multiplier=cfg.initial_s, exp_base=cfg.multiplier, max=cfg.max_s),
            retry=retry_if_exception(_transient),
            before_sleep=note,
            reraise=True,
        )
        try:
            return retrying(fn)
        except Exception as exc:
            problem = host_error(exc, self.location)
            if problem is not None:
                raise problem from exc
            if not _transient(exc):
                raise
            raise StoreUnavailableError(
                f"the {self.inner.name} store at {self.location} failed to {what} "
                f"{cfg.attempts} time(s) in a row; last error: "
                f"{redact(f'{type(exc).__name__}: {exc}')}. Nothing that failed was recorded "
                "in the manifest: run the sync again once the store is back"
            ) from None

    def collection_spec(self) -> CollectionSpec | None:
        return self._call("read the collection", self.inner.collection_spec)

    def create_collection(self, spec: CollectionSpec) -> None:
        self._call("create the collection", lambda: self.inner.create_collection(spec))

    def ensure_collection(self, spec: CollectionSpec) -> None:
        # As one step: a create whose answer was lost is seen as existing on the retry.
        self._call("prepare the collection", lambda: self.inner.ensure_collection(spec))

    def upsert(self, records: Sequence[VectorRecord]) -> int:
        written = self._call(f"write {len(records)} chunks", lambda: self.inner.upsert(records))
        fault_point("upsert")
        return written

    def delete_ids(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        deleted = self._call(f"delete {len(ids)} chunks", lambda: self.inner.delete_ids(ids))
        fault_point("delete")
        return deleted

    def delete_source(self, source_id: str) -> int:
        deleted = self._call(
            f"delete the chunks of {source_id}", lambda: self.inner.delete_source(source_id)
        )
        fault_point("delete")
        return deleted

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        return self._call("look up chunk ids", lambda: self.inner.existing_ids(ids))

    def source_ids(self, source_id: str) -> set[str]:
        return self._call(
            f"list the chunks of {source_id}", lambda: self.inner.source_ids(source_id)
        )

    def ids_by_source(self, source_ids: Iterable[str]) -> dict[str, set[str]]:
        source_ids = list(source_ids)
        return self._call(
            f"list the chunks of {len(source_ids)} documents",
            lambda: self.inner.ids_by_source(source_ids),
        )

    def flush(self) -> None:
        self._call("flush and index the writes", self.inner.flush)

    def fetch(self, ids: Iterable[str]) -> list[VectorRecord]:
        ids = list(ids)
        return self._call("read stored chunks", lambda: self.inner.fetch(ids))

    def scan(self, batch_size: int = 1000) -> Iterator[list[VectorRecord]]:
        return self.inner.scan(batch_size)

    def query(
        self, vector: Sequence[float], k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        return self._call("search", lambda: self.inner.query(vector, k, filters))

    def lexical_query(
        self, text: str, k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        return self._call("search by words", lambda: self.inner.lexical_query(text, k, filters))

    def hybrid_query(
        self,
        vector: Sequence[float],
        text: str,
        k: int = 5,
        filters: QueryFilter | None = None,
        fusion: Fusion = Fusion(),
    ) -> list[QueryHit]:
        # The inner store's: an engine that fuses natively (Weaviate) does it in one call.
        return self._call(
            "search (hybrid)", lambda: self.inner.hybrid_query(vector, text, k, filters, fusion)
        )

    def hybrid_search(
        self,
        text: str,
        embed: Callable[[str], Sequence[float]],
        k: int = 5,
        filters: QueryFilter | None = None,
        fusion: Fusion = Fusion(),
    ) -> list[QueryHit]:
        return self._call(
            "search (hybrid)", lambda: self.inner.hybrid_search(text, embed, k, filters, fusion)
        )

    def count(self, filters: QueryFilter | None = None) -> int:
        return self._call("count chunks", lambda: self.inner.count(filters))

    def close(self) -> None:
        self.inner.close()
