"""Copy a knowledge base from one store to another without embedding anything again."""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass

from headwater.ingest.engine import Progress
from headwater.ingest.errors import ConfigError, StoreError
from headwater.ingest.models import CollectionSpec
from headwater.ingest.state import KnowledgeState

BATCH = 1000


@dataclass
class MigrationReport:
    source: str
    destination: str
    copied: int
    """Records read from the source and written to the destination."""
    removed_from_destination: int
    """Records the destination held that the source does not (stale leftovers)."""
    destination_count: int
    documents: int
    """Manifest documents now recorded for the destination."""
    failures: int
    """Files remembered as failed on their content, now remembered for the destination too."""
    embedded: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def migrate(
    src: KnowledgeState,
    dst: KnowledgeState,
    *,
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy every record (vector and metadata) from the `src` store into the `dst` one,
    verify, then record the source's manifest for the destination.

    The destination ends up holding exactly the source's records. Until the last step
    the destination's manifest is untouched, so a failed or interrupted migration leaves
    the next `headwater sync` against the destination to finish the job from its own state.
    """
    t0 = time.perf_counter()
    if src.model != dst.model:
        raise ConfigError(
            f"embedding.model: the destination config uses {dst.model!r} but the store holds "
            f"vectors of {src.model!r}; a migration copies vectors and cannot change the model "
            "(point a sync at a new collection instead)"
        )
    if src.target == dst.target:
        raise ConfigError(
            "store: the destination config points at the same store and collection as the source"
        )
    report = progress or (lambda stage, done, total: None)
    try:
        with ExitStack() as stack:
            for state in _distinct_state(src, dst):
                stack.enter_context(state.exclusive())
            spec = src.store.collection_spec()
            if spec is None:
                raise StoreError(
                    f"nothing to migrate: collection {src.store.collection!r} does not exist at "
                    f"{src.store.location}"
                )
            model = spec.model or src.model
            dst.store.ensure_collection(CollectionSpec(spec.dimension, model))
            total = src.store.count()
            copied: set[str] = set()
            report("copy", 0, total)
            for batch in src.store.scan(batch_size):
                dst.store.upsert(batch)
                copied.update(r.id for r in batch)
                report("copy", len(copied), total)
            held, removed = dst.store.count(), 0
            if held > len(copied):
                removed = _remove_extras(dst, copied, batch_size)
                held = dst.store.count()
            if held != len(copied) or len(dst.store.existing_ids(copied)) != len(copied):
                raise StoreError(
                    f"verification failed: copied {len(copied)} records but "
                    f"{dst.store.location} holds {held}; the destination manifest was not changed"
                )
            documents = src.manifest.copy_to(dst.manifest)
            failures = len(dst.manifest.failures())
    finally:
        src.close()
        dst.close()
    return MigrationReport(
        source=src.describe,
        destination=dst.describe,
        copied=len(copied),
        removed_from_destination=removed,
        destination_count=held,
        documents=documents,
        failures=failures,
        embedded=0,
        seconds=time.perf_counter() - t0,
    )


def _distinct_state(*states: KnowledgeState) -> list[KnowledgeState]:
    """One lock per state folder: a second lock on the same file would wait on the first."""
    seen: dict[str, KnowledgeState] = {}
    for s in states:
        seen.setdefault(str(s.state_dir.resolve()), s)
    return list(seen.values())


def _remove_extras(dst: KnowledgeState, keep: set[str], batch_size: int) -> int:
    """Delete destination records the source does not have (from an earlier sync there)."""
    extra = [r.id for batch in dst.store.scan(batch_size) for r in batch if r.id not in keep]
    if extra:
        dst.store.delete_ids(extra)
    return len(extra)
