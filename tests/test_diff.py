"""The write plan, by table: what a changed file means for the store and the manifest."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from headwater.ingest.diff import fresh_ids, meta_hash, plan_writes
from headwater.ingest.manifest import ManifestEntry
from headwater.ingest.models import Chunk, ChunkMetadata, SourceFile
from headwater.ingest.planning import PlannedFile
from headwater.ingest.prepare import PreparedFile

SID = "docs:a.md"


def chunk(cid: str, text: str | None = None, position: int = 0) -> Chunk:
    meta = ChunkMetadata(
        source_id=SID, source="docs", path="a.md", file_type="md", position=position, start=0, end=1
    )
    return Chunk(cid, text or f"text of {cid}", meta)


def prepared(*chunks: Chunk, new: bool = False) -> PreparedFile:
    file = SourceFile("docs", "a.md", "/x/a.md", 10, "fp2")
    previous = None if new else ManifestEntry(SID, "docs", "a.md", "fp1", "h1", "k", 2)
    return PreparedFile(PlannedFile(file, "k", previous), "h2", chunks)


@dataclass
class Case:
    name: str
    now: list[Chunk]
    recorded: dict[str, str] = field(default_factory=dict)
    """The manifest's chunk id -> metadata hash for the document."""
    held: set[str] = field(default_factory=set)
    """Which fresh ids the store already holds."""
    stored: set[str] = field(default_factory=set)
    """Every id the store holds for the document."""
    embed: set[str] = field(default_factory=set)
    rewrite: set[str] = field(default_factory=set)
    delete: set[str] = field(default_factory=set)


A, B, C = chunk("a"), chunk("b"), chunk("c")
A_MOVED = chunk("a", position=5)  # same id and text, another position

CASES = [
    Case("new file: embed every chunk", [A, B], embed={"a", "b"}),
    Case(
        "unchanged chunks are neither embedded nor rewritten",
        [A, B],
        recorded={"a": meta_hash(A), "b": meta_hash(B)},
        stored={"a", "b"},
    ),
    Case(
        "a new chunk is embedded, a vanished one deleted",
        [A, C],
        recorded={"a": meta_hash(A), "b": meta_hash(B)},
        stored={"a", "b"},
        embed={"c"},
        delete={"b"},
    ),
    Case(
        "a chunk that moved is rewritten with its stored vector",
        [A_MOVED],
        recorded={"a": meta_hash(A)},
        stored={"a"},
        rewrite={"a"},
    ),
    Case(
        "a killed run wrote it but never committed: rewrite, not embed",
        [A],
        held={"a"},
        stored={"a"},
        rewrite={"a"},
    ),
    Case(
        "rows a killed run left behind are deleted",
        [A],
        recorded={"a": meta_hash(A)},
        stored={"a", "orphan"},
        delete={"orphan"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_write_plan(case: Case) -> None:
    file = prepared(*case.now, new=not case.recorded)
    previous = {SID: case.recorded}
    fresh = fresh_ids([file], previous)
    assert fresh == {c.id for c in case.now} - set(case.recorded)
    plan = plan_writes([file], previous, case.held & fresh, {SID: case.stored})
    assert set(plan.embed) == case.embed
    assert set(plan.rewrite) == case.rewrite
    assert plan.delete == case.delete
    (doc,) = plan.documents
    # What the manifest records afterwards: exactly the file's chunks, with their hashes.
    assert doc.hashes == {c.id: meta_hash(c) for c in case.now}
    assert (doc.entry.fingerprint, doc.entry.content_hash, doc.entry.chunk_count) == (
        "fp2",
        "h2",
        len(case.now),
    )


def test_a_text_change_changes_the_metadata_hash() -> None:
    assert meta_hash(chunk("a", "one")) != meta_hash(chunk("a", "two"))
    assert meta_hash(A) != meta_hash(A_MOVED)
