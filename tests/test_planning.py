from __future__ import annotations

from headwater.ingest.manifest import ManifestEntry
from headwater.ingest.models import SourceFile
from headwater.ingest.planning import plan


def f(path: str, fp: str = "1:1", source: str = "s") -> SourceFile:
    return SourceFile(source, path, f"/x/{path}", 1, fp)


def entry(path: str, fp: str = "1:1", chunker: str = "k", source: str = "s") -> ManifestEntry:
    return ManifestEntry(f"{source}:{path}", source, path, fp, "hash", chunker, 3)


def test_new_changed_unchanged_deleted() -> None:
    manifest = {e.source_id: e for e in [entry("same.md"), entry("edited.md"), entry("gone.md")]}
    listing = {"s": [f("same.md"), f("edited.md", "2:2"), f("new.md")]}
    p = plan(listing, manifest, {"s": "k"})
    assert [x.path for x in p.unchanged] == ["same.md"]
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
