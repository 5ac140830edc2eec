"""What a batch of prepared files means for the store and the manifest: a write plan.

Pure functions: given what the files now hold and what the manifest and the store hold,
say which chunks to embed, which stored rows to rewrite with their own vectors, which
ids to delete, and which manifest rows to commit. The engine gathers the inputs and
executes the plan (`headwater.ingest.engine`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence, Set
from dataclasses import asdict, dataclass, field

from headwater.ingest.manifest import ManifestEntry
from headwater.ingest.models import Chunk
from headwater.ingest.prepare import PreparedFile


def meta_hash(chunk: Chunk) -> str:
    """Digest of what a stored row says besides its vector; a change means rewrite it."""
    payload = json.dumps([chunk.text, asdict(chunk.metadata)], sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


def fresh_ids(
    changed: Sequence[PreparedFile], previous: Mapping[str, Mapping[str, str]]
) -> set[str]:
    """Chunk ids the manifest does not record for their document: the store may lack them.

    `previous` maps each document id to its committed chunk ids and metadata hashes.
    """
    return {
        c.id
        for p in changed
        for c in p.chunks
        if c.id not in previous.get(p.planned.file.source_id, {})
    }


@dataclass(frozen=True)
class DocumentWrite:
    """One changed document: its manifest row and chunk hashes, and the ids it drops."""

    file: PreparedFile
    entry: ManifestEntry
    hashes: Mapping[str, str]
    """chunk id -> metadata hash, what the manifest records after the write."""
    deleted: frozenset[str]


@dataclass(frozen=True)
class WritePlan:
    embed: dict[str, Chunk] = field(default_factory=dict)
    """Chunks the store lacks: embed (or take from the cache) and write."""
    rewrite: dict[str, Chunk] = field(default_factory=dict)
    """Chunks the store holds whose row must be rewritten (moved, or not yet recorded):
    write them with their stored vector."""
    documents: list[DocumentWrite] = field(default_factory=list)

    @property
    def delete(self) -> set[str]:
        return {i for d in self.documents for i in d.deleted}


def plan_writes(
    changed: Sequence[PreparedFile],
    previous: Mapping[str, Mapping[str, str]],
    held: Set[str],
    stored: Mapping[str, Set[str]],
) -> WritePlan:
    """The write plan for files whose content changed.

    `previous`: document id -> the manifest's chunk id -> metadata hash. `held`: which of
    `fresh_ids` the store already holds (a killed run wrote them, or another document
    did). `stored`: document id -> every chunk id the store holds for it, which catches
    rows a killed run wrote but never committed.
    """
    plan = WritePlan()
    for p in changed:
        sid = p.planned.file.source_id
        prev = previous.get(sid, {})
        hashes = {c.id: meta_hash(c) for c in p.chunks}
        for c in p.chunks:
            if c.id not in prev and c.id not in held:
                plan.embed[c.id] = c
            elif c.id in held or prev.get(c.id) != hashes[c.id]:
                # Stored already, but not recorded or its page/position/section moved:
                # rewrite the row with the stored vector instead of embedding again.
                plan.rewrite[c.id] = c
        entry = ManifestEntry(
            source_id=sid,
            source=p.planned.file.source,
            path=p.planned.file.path,
            fingerprint=p.planned.file.fingerprint,
            content_hash=p.content_hash,
            chunker=p.planned.chunker,
            chunk_count=len(p.chunks),
        )
        gone = (set(prev) | set(stored.get(sid, ()))) - set(hashes)
        plan.documents.append(DocumentWrite(p, entry, hashes, frozenset(gone)))
    return plan
