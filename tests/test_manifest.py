from __future__ import annotations

from pathlib import Path

import pytest

from headwater.ingest.errors import ReadOnlyStateError
from headwater.ingest.manifest import FailureEntry, Manifest, ManifestEntry


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


def test_rows_an_older_version_keyed_by_absolute_path_are_taken_over(tmp_path: Path) -> None:
    old = Manifest(tmp_path / "m.sqlite", "faiss|/old/place/faiss/docs_v1|docs_v1|model")
    old.commit_batch([(entry("a.md"), {"c1": "h1"})])
    old.commit_batch(failures=[FailureEntry("s:b.pdf", "fp", "k", "encrypted")])
    other = Manifest(tmp_path / "m.sqlite", "milvus|http://server:19530|docs_v1|model")
    other.commit_batch([(entry("z.md"), {"c9": "h9"})])
    old.close()
    other.close()

    moved = Manifest(
        tmp_path / "m.sqlite",
        "faiss|state:faiss/docs_v1|docs_v1|model",
        former=r"faiss|%/faiss/docs\_v1|docs\_v1|model",
    )
    assert set(moved.entries()) == {"s:a.md"}
    assert set(moved.failures()) == {"s:b.pdf"}
    assert moved.chunk_sources() == {"c1": "s:a.md"}
    # The server's rows were not taken: another store.
    assert set(other.entries()) == {"s:z.md"}


def test_a_read_only_manifest_reads_and_refuses_writes(tmp_path: Path) -> None:
    from .test_bad_use import read_only

    folder = tmp_path / "state"
    m = Manifest(folder / "m.sqlite", "t")
    m.commit_batch([(entry("a.md"), {"c1": "h1"})])
    m.close()
    with read_only(folder):
        ro = Manifest(folder / "m.sqlite", "t")
        assert ro.counts() == (1, 1) and ro.read_only
        with pytest.raises(ReadOnlyStateError, match=f"state folder {folder} is read-only"):
            ro.remove(["s:a.md"])
        ro.close()
        # A read-only folder where no sync ever ran reads as empty.
        assert Manifest(folder / "none" / "m.sqlite", "t").counts() == (0, 0)
