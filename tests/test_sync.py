"""The sync engine end to end on real documents, the real model and the default store (FAISS)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from headwater.ingest.engine import SyncEngine
from headwater.ingest.models import FileStatus, QueryFilter, SourceFile
from headwater.ingest.state import SyncLockedError

from .conftest import SAMPLE_DOCS

Factory = Callable[..., SyncEngine]


def by_path(report) -> dict:  # type: ignore[no-untyped-def]
    return {f.path: f for f in report.files}


def test_cold_sync_then_nothing_changed_then_edit_then_delete(
    docs: Path, engine_factory: Factory
) -> None:
    engine = engine_factory(docs)
    first = engine.run()
    n_docs = len([p for p in SAMPLE_DOCS.rglob("*") if p.is_file()])
    assert first.file_counts()["added"] == n_docs
    assert first.failures == []
    total = engine.state.store.count()
    assert total == first.chunk_counts()["embedded"] == first.chunk_counts()["written"]
    assert engine.state.manifest.counts() == (n_docs, total)

    # Nothing changed: nothing embedded, nothing written, nothing deleted.
    second = engine.run()
    assert second.file_counts()["unchanged"] == n_docs
    assert second.chunk_counts() == {"embedded": 0, "written": 0, "deleted": 0}
    assert second.stage_seconds["embed"] == 0

    # Edit one paragraph of one document: only its changed chunks are embedded.
    md = docs / "handbook/welcome.md"
    text = md.read_text()
    paragraph = next(p for p in text.split("\n\n") if len(p) > 200 and not p.startswith("#"))
    md.write_text(
        text.replace(
            paragraph,
            paragraph + " Our workshop parrot, Captain Spoke, greets visitors in Norwegian.",
        )
    )
    doc_chunks = len(engine.state.store.source_ids("docs:handbook/welcome.md"))
    third = engine.run()
    changed = by_path(third)["handbook/welcome.md"]
    assert changed.status is FileStatus.CHANGED
    assert third.file_counts()["changed"] == 1 and third.file_counts()["unchanged"] == n_docs - 1
    assert 1 <= changed.embedded < doc_chunks
    assert third.chunk_counts()["embedded"] == changed.embedded
    assert changed.deleted == changed.embedded  # the edited chunks replaced their old versions
    assert engine.state.store.count() == total
    hit = engine.state.store.query(
        engine.embedder.embed_query("Who is Captain Spoke the parrot?"), k=1
    )[0]
    assert hit.metadata.path == "handbook/welcome.md" and "Captain Spoke" in hit.text

    # Delete one document: exactly its vectors go.
    gone = docs / "sales/q3-review.pptx"
    gone_chunks = len(engine.state.store.source_ids("docs:sales/q3-review.pptx"))
    assert gone_chunks > 0
    gone.unlink()
    fourth = engine.run()
    assert by_path(fourth)["sales/q3-review.pptx"].status is FileStatus.DELETED
    assert fourth.chunk_counts()["deleted"] == gone_chunks
    assert engine.state.store.count() == total - gone_chunks
    assert engine.state.store.source_ids("docs:sales/q3-review.pptx") == set()
    assert engine.state.store.count(QueryFilter(source_glob="sales/*")) == 0
    assert engine.state.manifest.counts() == (n_docs - 1, total - gone_chunks)


def small_docs(tmp_path: Path, *rels: str) -> Path:
    root = tmp_path / "small"
    for rel in rels or (
        "handbook/welcome.md",
        "it/security-faq.txt",
        "engineering/oncall-runbook.html",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_DOCS / rel, root / rel)
    return root


def test_touched_file_with_same_bytes_is_unchanged(tmp_path: Path, engine_factory: Factory) -> None:
    root = small_docs(tmp_path)
    engine = engine_factory(root)
    engine.run()
    f = root / "it/security-faq.txt"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    report = engine.run()
    assert by_path(report)["it/security-faq.txt"].status is FileStatus.UNCHANGED
    assert report.chunk_counts() == {"embedded": 0, "written": 0, "deleted": 0}
    # The new fingerprint was recorded: the next plan does not even open the file.
    assert [p.file.path for p in engine.plan().to_load] == []


def test_bad_file_is_reported_and_the_run_goes_on(tmp_path: Path, engine_factory: Factory) -> None:
    root = small_docs(tmp_path)
    (root / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf")
    (root / "empty.txt").write_bytes(b"")
    engine = engine_factory(root)
    report = engine.run()
    assert report.file_counts()["added"] == 3
    reasons = {f.path: f.reason for f in report.failures}
    assert set(reasons) == {"broken.pdf", "empty.txt"}
    assert "empty" in (reasons["empty.txt"] or "")
    assert report.to_dict()["failures"][0]["reason"]
    stored = engine.state.store.count()
    # Failed files are retried on the next run, and nothing stored is lost.
    again = engine.run()
    assert {f.path for f in again.failures} == {"broken.pdf", "empty.txt"}
    assert engine.state.store.count() == stored
    (root / "empty.txt").write_text("Bike storage is in the basement, next to the showers.")
    fixed = engine.run()
    assert by_path(fixed)["empty.txt"].status is FileStatus.ADDED


def test_moved_chunks_get_fresh_metadata_without_reembedding(
    tmp_path: Path, engine_factory: Factory
) -> None:
    root = small_docs(tmp_path, "handbook/welcome.md")
    engine = engine_factory(root)
    engine.run()
    md = root / "handbook/welcome.md"
    lines = md.read_text().split("\n")
    # A new section after the first heading shifts every later chunk's position.
    lines.insert(1, "\n## Parking\n\nStaff park in the yard behind the paint shop.\n")
    md.write_text("\n".join(lines))
    report = engine.run()
    f = by_path(report)["handbook/welcome.md"]
    assert f.embedded < f.chunks
    assert f.written > f.embedded  # moved chunks were rewritten with their stored vectors
    stored = {
        r.id: r.chunk.metadata
        for r in engine.state.store.fetch(engine.state.store.source_ids("docs:handbook/welcome.md"))
    }
    assert sorted(m.position for m in stored.values()) == list(range(f.chunks))


def test_rows_left_by_an_interrupted_run_are_cleaned_up(
    tmp_path: Path, engine_factory: Factory
) -> None:
    root = small_docs(tmp_path, "it/security-faq.txt")
    engine = engine_factory(root)
    engine.run()
    # Simulate a killed run that wrote rows for an older version but never committed.
    (orphan,) = engine.state.store.fetch(
        sorted(engine.state.store.source_ids("docs:it/security-faq.txt"))[:1]
    )
    from dataclasses import replace

    from headwater.ingest.models import VectorRecord

    ghost = VectorRecord(replace(orphan.chunk, id="f" * 32, text="stale text"), orphan.vector)
    engine.state.store.upsert([ghost])
    (root / "it/security-faq.txt").write_text(
        (root / "it/security-faq.txt").read_text() + "\nNew line."
    )
    engine.run()
    assert engine.state.store.existing_ids(["f" * 32]) == set()
    assert engine.state.store.count() == engine.state.manifest.counts()[1]


def test_second_sync_on_the_same_state_is_refused(tmp_path: Path, engine_factory: Factory) -> None:
    root = small_docs(tmp_path, "it/security-faq.txt")
    engine = engine_factory(root)
    with engine.state.lock(), pytest.raises(SyncLockedError, match="another sync is running"):
        engine_factory(root).run()


def test_missing_source_folder_deletes_nothing(tmp_path: Path, engine_factory: Factory) -> None:
    root = small_docs(tmp_path)
    engine = engine_factory(root)
    engine.run()
    count = engine.state.store.count()
    shutil.move(root, tmp_path / "unmounted")
    report = engine.run()
    assert "docs" in report.source_errors
    assert engine.state.store.count() == count
    assert not report.ok


def test_sample_queries_find_their_documents(
    docs: Path, engine_factory: Factory, sample_queries: list[dict]
) -> None:
    engine = engine_factory(docs)
    engine.run()
    top1 = top3 = 0
    misses = []
    for q in sample_queries:
        hits = engine.state.store.query(engine.embedder.embed_query(q["question"]), k=3)
        paths = [h.metadata.path for h in hits]
        top1 += paths[0] == q["expected_source"]
        top3 += q["expected_source"] in paths
        if q.get("demo"):
            assert paths[0] == q["expected_source"], q["question"]
        if paths[0] != q["expected_source"]:
            misses.append((q["question"], paths))
    print(
        f"top-1 {top1}/{len(sample_queries)}, top-3 {top3}/{len(sample_queries)}; misses: {misses}"
    )
    assert top3 == len(sample_queries), misses
    assert top1 >= 0.9 * len(sample_queries), misses


def test_files_that_fail_after_parsing_count_in_the_load_time(
    tmp_path: Path, engine_factory: Factory
) -> None:
    root = tmp_path / "only-bad"
    root.mkdir()
    (root / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf")
    report = engine_factory(root).run()
    assert [f.path for f in report.failures] == ["broken.pdf"]
    # The parser's time was spent even though no chunk came of it (it read 0.00s).
    assert report.failures[0].load_seconds is not None
    assert report.stage_seconds["load"] == pytest.approx(report.failures[0].load_seconds)
    assert report.stage_seconds["load"] > 0


def test_a_plan_made_in_batches_finds_every_change_and_deletion(
    tmp_path: Path, engine_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two files per manifest lookup: every kind of change sits in another batch.
    monkeypatch.setattr("headwater.ingest.engine.PLAN_BATCH", 2)
    root, other = tmp_path / "notes", tmp_path / "other"
    for folder, n in ((root, 7), (other, 3)):
        folder.mkdir()
        for i in range(n):
            (folder / f"n{i}.txt").write_text(f"Note {i} of {folder.name}: the kettle is {i}.\n")
    engine = engine_factory(
        root,
        store={"backend": "faiss"},
        sources=[{"name": "notes", "path": str(root)}, {"name": "other", "path": str(other)}],
    )
    assert engine.run().file_counts()["added"] == 10

    (root / "n1.txt").write_text("Note 1 now says the kettle is broken.\n")
    (root / "n4.txt").unlink()
    (root / "n6.txt").unlink()
    (root / "n7.txt").write_text("A new note about the teapot.\n")
    # The other source fails after listing a file: nothing of it is loaded or deleted.
    source = engine.preparer.sources["other"]
    listed_before = source.list_files

    def broken() -> Iterator[SourceFile]:
        yield next(iter(listed_before()))
        raise OSError("connection reset")

    monkeypatch.setattr(source, "list_files", broken)
    (other / "n2.txt").unlink()
    report = engine.run()
    counts = report.file_counts()
    assert [counts[k] for k in ("added", "changed", "unchanged", "deleted")] == [1, 1, 4, 2]
    assert counts["failed"] == 0
    assert sorted((f.path, f.status.value) for f in report.files) == [
        ("n1.txt", "changed"),
        ("n4.txt", "deleted"),
        ("n6.txt", "deleted"),
        ("n7.txt", "added"),
    ]  # unchanged files are counted, not listed one by one
    assert "connection reset" in report.source_errors["other"]
    assert engine.state.manifest.counts()[0] == 6 + 3
    assert engine.state.store.source_ids("other:n2.txt")  # not taken for deleted
