"""Changing one source's chunking re-chunks that source on the next sync, and only it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from headwater.ingest.engine import SyncEngine
from headwater.ingest.models import FileStatus

from .conftest import SAMPLE_DOCS


def two_sources(tmp_path: Path) -> tuple[Path, Path]:
    handbook, it = tmp_path / "handbook", tmp_path / "it"
    for root, rels in (
        (handbook, ("handbook/welcome.md", "engineering/oncall-runbook.html")),
        (it, ("it/security-faq.txt",)),
    ):
        for rel in rels:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLE_DOCS / rel, root / rel)
    return handbook, it


def test_switching_one_sources_strategy_rechunks_exactly_that_source(
    tmp_path: Path, engine_factory: Callable[..., SyncEngine]
) -> None:
    handbook, it = two_sources(tmp_path)

    def engine(handbook_chunking: dict[str, object]) -> SyncEngine:
        return engine_factory(
            handbook,
            sources=[
                {"name": "handbook", "path": str(handbook), "chunking": handbook_chunking},
                {"name": "it", "path": str(it)},
            ],
        )

    first = engine({"strategy": "recursive"})
    first.run()
    before = {
        sid: first.state.store.source_ids(sid)
        for sid in (
            "handbook:handbook/welcome.md",
            "handbook:engineering/oncall-runbook.html",
            "it:it/security-faq.txt",
        )
    }
    texts_before = {r.chunk.text for ids in before.values() for r in first.state.store.fetch(ids)}
    first.close()

    second = engine({"strategy": "headers", "header_levels": 2})
    report = second.run()
    status = {f.source_id: f for f in report.files}
    for sid in ("handbook:handbook/welcome.md", "handbook:engineering/oncall-runbook.html"):
        assert status[sid].status is FileStatus.CHANGED
        now = second.state.store.source_ids(sid)
        assert now and now.isdisjoint(before[sid])  # every old chunk is gone
        assert status[sid].deleted == len(before[sid])
        assert status[sid].written == len(now)
        # A chunk the new strategy cuts exactly as the old one did comes from the
        # embedding cache; only new text is embedded.
        new_texts = {r.chunk.text for r in second.state.store.fetch(now)} - texts_before
        assert status[sid].embedded == len(new_texts)
    runbook = second.state.store.fetch(
        second.state.store.source_ids("handbook:engineering/oncall-runbook.html")
    )
    sections = {r.chunk.metadata.section for r in runbook}
    assert "On-call Runbook > 1. The rotation" in sections  # the new strategy's sections
    # The other source was not even opened: counted unchanged, with no entry of its own.
    assert "it:it/security-faq.txt" not in status
    assert report.file_counts()["unchanged"] == 1
    assert (
        second.state.store.source_ids("it:it/security-faq.txt") == before["it:it/security-faq.txt"]
    )
    assert report.chunk_counts()["embedded"] == sum(
        status[s].embedded for s in status if s.startswith("handbook:")
    )
    assert second.state.store.count() == second.state.manifest.counts()[1]

    # Settled: the next sync does nothing.
    again = second.run()
    assert again.chunk_counts() == {"embedded": 0, "written": 0, "deleted": 0}
