"""Compare what the manifest says the store holds with what it does hold, and repair it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from headwater.ingest.state import KnowledgeState


@dataclass
class SourceDrift:
    """One document whose chunks in the store differ from the manifest."""

    source_id: str
    missing: int
    """Chunks the manifest records that the store lacks."""
    extra: int
    """Chunks the store holds that the manifest does not record."""


@dataclass
class VerifyReport:
    manifest_chunks: int
    store_chunks: int
    drift: list[SourceDrift] = field(default_factory=list)
    repaired: bool = False

    @property
    def ok(self) -> bool:
        return not self.drift

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "manifest_chunks": self.manifest_chunks,
            "store_chunks": self.store_chunks,
            "repaired": self.repaired,
            "drift": [vars(d) for d in self.drift],
        }


def verify(state: KnowledgeState, *, repair: bool = False, batch_size: int = 1000) -> VerifyReport:
    """Find documents whose stored chunk ids differ from the manifest's.

    With `repair`, chunks the manifest does not record are deleted from the store, and
    documents missing chunks are forgotten by the manifest, so the next sync loads them
    again and embeds only the chunks the store lacks.
    """
    # Under the sync lock: a sync in flight would show as drift.
    with state.exclusive():
        recorded = state.manifest.chunk_sources()
        stored = {r.id: r.chunk.metadata.source_id for b in state.store.scan(batch_size) for r in b}
        missing = Counter(recorded[i] for i in recorded.keys() - stored.keys())
        extra_ids = stored.keys() - recorded.keys()
        extra = Counter(stored[i] for i in extra_ids)
        report = VerifyReport(
            manifest_chunks=len(recorded),
            store_chunks=len(stored),
            drift=[
                SourceDrift(sid, missing[sid], extra[sid])
                for sid in sorted(missing.keys() | extra.keys())
            ],
        )
        if repair and report.drift:
            if extra_ids:
                state.store.delete_ids(extra_ids)
            state.manifest.remove(missing)
            report.repaired = True
    return report
