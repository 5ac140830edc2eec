from __future__ import annotations

from pathlib import Path

from headwater.ingest.manifest import Manifest, ManifestEntry


def entry(path: str) -> ManifestEntry:
    return ManifestEntry(f"s:{path}", "s", path, "fp", "hash", "k", 0)


def test_commit_replace_remove_and_reopen(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "m.sqlite", "target-a")
    m.commit_batch([(entry("a.md"), {"c1": "h1", "c2": "h2"}), (entry("b.md"), {"c3": "h3"})])
    assert m.counts() == (2, 3)
    m.commit_batch([(entry("a.md"), {"c4": "h4"})])
    assert m.chunk_hashes("s:a.md") == {"c4": "h4"}
    m.commit_batch(touched=[("s:b.md", "fp2")])
    m.close()

    again = Manifest(tmp_path / "m.sqlite", "target-a")
    assert again.entries()["s:b.md"].fingerprint == "fp2"
    assert again.entries()["s:a.md"].chunk_count == 1
    again.remove(["s:a.md"])
    assert again.counts() == (1, 1)


def test_targets_are_separate(tmp_path: Path) -> None:
    a = Manifest(tmp_path / "m.sqlite", "milvus|x")
    a.commit_batch([(entry("a.md"), {"c1": "h1"})])
    b = Manifest(tmp_path / "m.sqlite", "milvus|y")
    assert b.entries() == {}
    assert a.counts() == (1, 1)


def test_constructor_does_no_io(tmp_path: Path) -> None:
    Manifest(tmp_path / "sub" / "m.sqlite", "t")
    assert not (tmp_path / "sub").exists()
