from __future__ import annotations

import pytest

from headwater.ingest.manifest import FailureEntry, ManifestEntry
from headwater.ingest.models import SourceFile
from headwater.ingest.planning import SyncPlan, deleted, failure_key, plan, plan_listed


def f(path: str, fp: str = "1:1", source: str = "s") -> SourceFile:
    return SourceFile(source, path, f"/x/{path}", 1, fp)


def entry(path: str, fp: str = "1:1", chunker: str = "k", source: str = "s") -> ManifestEntry:
    return ManifestEntry(f"{source}:{path}", source, path, fp, "hash", chunker, 3)


def test_new_changed_unchanged_deleted() -> None:
    manifest = {e.source_id: e for e in [entry("same.md"), entry("edited.md"), entry("gone.md")]}
    listing = {"s": [f("same.md"), f("edited.md", "2:2"), f("new.md")]}
    p = plan(listing, manifest, {"s": "k"})
    assert p.unchanged == 1  # same.md: counted, not kept
    assert sorted((x.file.path, x.is_new) for x in p.to_load) == [
        ("edited.md", False),
        ("new.md", True),
    ]
    assert [x.path for x in p.deleted] == ["gone.md"]


def test_chunker_change_reloads_even_with_same_fingerprint() -> None:
    manifest = {"s:a.md": entry("a.md", chunker="old")}
    p = plan({"s": [f("a.md")]}, manifest, {"s": "new"})
    assert [x.file.path for x in p.to_load] == ["a.md"]
    assert p.to_load[0].previous is not None


def test_unlistable_source_deletes_nothing() -> None:
    manifest = {"s:a.md": entry("a.md"), "t:b.md": entry("b.md", source="t")}
    p = plan({"t": []}, manifest, {"s": "k", "t": "k"}, {"s": "folder missing"})
    assert [x.source_id for x in p.deleted] == ["t:b.md"]


def test_source_removed_from_config_is_deleted() -> None:
    manifest = {"old:a.md": entry("a.md", source="old")}
    p = plan({"s": [f("x.md")]}, manifest, {"s": "k"})
    assert [x.source_id for x in p.deleted] == ["old:a.md"]


@pytest.mark.parametrize(
    ("listed_fp", "chunker", "failure", "outcome"),
    [
        ("1:1", "k", None, "unchanged"),
        ("2:2", "k", None, "load"),  # new fingerprint: read to compare the content
        ("1:1", "other", None, "load"),  # same bytes, new chunking
        ("2:2", "k", FailureEntry("s:a.md", "2:2", failure_key("k", "L"), "bad"), "failed"),
        # the failure was of other bytes, or under other settings: try again
        ("3:3", "k", FailureEntry("s:a.md", "2:2", failure_key("k", "L"), "bad"), "load"),
        ("2:2", "k", FailureEntry("s:a.md", "2:2", failure_key("k", "old"), "bad"), "load"),
    ],
)
def test_what_a_listed_file_needs(
    listed_fp: str, chunker: str, failure: FailureEntry | None, outcome: str
) -> None:
    failures = {"s:a.md": failure} if failure else {}
    p = plan_listed([f("a.md", listed_fp)], {"s:a.md": entry("a.md")}, chunker, failures, "L")
    got = {
        "unchanged": p.unchanged,
        "load": len(p.to_load),
        "failed": len(p.known_failures),
    }
    assert got == {k: int(k == outcome) for k in got}
    assert p.deleted == []  # a batch of listed files says nothing of deletions


def test_plans_of_batches_add_up_to_the_plan_of_all() -> None:
    files = [f(f"{i}.md", "2:2" if i % 3 == 0 else "1:1") for i in range(10)]
    manifest = {e.source_id: e for e in (entry(f"{i}.md") for i in range(12))}
    whole = plan({"s": files}, manifest, {"s": "k"})
    parts = SyncPlan()
    for start in range(0, 10, 4):
        parts.extend(plan_listed(files[start : start + 4], manifest, "k"))
    assert parts.unchanged == whole.unchanged == 6
    assert parts.to_load == whole.to_load
    assert [x.file.path for x in whole.to_load] == ["0.md", "3.md", "6.md", "9.md"]
    assert [x.path for x in whole.deleted] == ["10.md", "11.md"]


def test_unlisted_rows_are_deleted_unless_their_source_failed() -> None:
    rows = [entry("a.md"), entry("b.md", source="t")]
    assert [e.source_id for e in deleted(rows, {"t": "timed out"})] == ["s:a.md"]
    assert deleted(rows, {"s": "x", "t": "y"}) == []
