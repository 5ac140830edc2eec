"""embedding.context: chunks are embedded after their document's title (and heading path),
while the stored text and offsets stay the document's own; switching it re-embeds."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from headwater.ingest.embedding import document_title, embedding_input
from headwater.ingest.engine import SyncEngine
from headwater.ingest.models import Chunk, ChunkMetadata

from .conftest import SAMPLE_DOCS

Factory = Callable[..., SyncEngine]
RUNBOOK = "engineering/oncall-runbook.html"


def test_embedding_input_puts_title_and_section_in_front() -> None:
    meta = ChunkMetadata("d:a/state_of-the union.md", "d", "a/state_of-the union.md", "md", 0, 5, 9)
    chunk = Chunk("id", "Jobs.", meta)
    assert document_title("x/on-call_runbook.html") == "on call runbook"
    assert embedding_input(chunk) == "Jobs."
    assert embedding_input(chunk, "title") == "state of the union\n\nJobs."
    with_section = Chunk("id", "Jobs.", ChunkMetadata(**{**meta.__dict__, "section": "Economy"}))
    assert embedding_input(with_section, "title+section") == (
        "state of the union > Economy\n\nJobs."
    )
    assert embedding_input(chunk, "title+section") == "state of the union\n\nJobs."


def test_switching_context_re_embeds_and_keeps_the_stored_text(
    tmp_path: Path, engine_factory: Factory
) -> None:
    docs = tmp_path / "docs"
    (docs / "engineering").mkdir(parents=True)
    shutil.copy(SAMPLE_DOCS / RUNBOOK, docs / RUNBOOK)
    plain = engine_factory(docs, store={"backend": "faiss"})
    first = plain.run()
    n = first.chunk_counts()["embedded"]
    assert n > 0
    before = {
        r.chunk.text: r
        for r in plain.state.store.fetch(plain.state.store.source_ids(f"docs:{RUNBOOK}"))
    }
    plain.close()

    titled = engine_factory(
        docs, store={"backend": "faiss"}, embedding={"device": "cpu", "context": "title+section"}
    )
    second = titled.run()
    assert second.chunk_counts()["embedded"] == n  # every chunk again, none from the cache
    store = titled.state.store
    after = store.fetch(store.source_ids(f"docs:{RUNBOOK}"))
    assert {r.chunk.text for r in after} == set(before)  # the document's own text
    for r in after:
        old = before[r.chunk.text]
        assert (r.chunk.metadata.start, r.chunk.metadata.end) == (
            old.chunk.metadata.start,
            old.chunk.metadata.end,
        )
        assert r.id != old.id
    # The vectors are of the text with its context in front.
    sample = after[0]
    expected = titled.embedder.embed([embedding_input(sample.chunk, "title+section")])[0]
    np.testing.assert_allclose(sample.vector, expected, atol=1e-5)
    assert not np.allclose(sample.vector, before[sample.chunk.text].vector, atol=1e-3)
    assert titled.run().chunk_counts()["embedded"] == 0  # and nothing the next time
