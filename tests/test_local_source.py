from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.sources.local import LocalSource
from ingest.errors import HeadwaterError


def tree(root: Path) -> None:
    for rel in ["a.md", "b.pdf", "sub/c.pdf", "sub/drafts/d.md", "e.tmp"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)


def paths(source: LocalSource) -> list[str]:
    return [f.path for f in source.list_files()]


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    tree(tmp_path)
    assert paths(LocalSource("s", tmp_path)) == [
        "a.md",
        "b.pdf",
        "e.tmp",
        "sub/c.pdf",
        "sub/drafts/d.md",
    ]
    assert paths(LocalSource("s", tmp_path, include=["*.pdf"])) == ["b.pdf", "sub/c.pdf"]
    assert paths(LocalSource("s", tmp_path, exclude=["**/drafts/**", "*.tmp"])) == [
        "a.md",
        "b.pdf",
        "sub/c.pdf",
    ]
    assert paths(LocalSource("s", tmp_path, include=["sub/**"])) == ["sub/c.pdf", "sub/drafts/d.md"]


def test_fingerprint_changes_on_write_and_reads_bytes(tmp_path: Path) -> None:
    tree(tmp_path)
    src = LocalSource("s", tmp_path)
    before = {f.path: f for f in src.list_files()}
    (tmp_path / "a.md").write_text("new text")
    st = (tmp_path / "a.md").stat()
    os.utime(tmp_path / "a.md", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    after = {f.path: f for f in src.list_files()}
    assert after["a.md"].fingerprint != before["a.md"].fingerprint
    assert after["b.pdf"].fingerprint == before["b.pdf"].fingerprint
    assert src.read_bytes(after["a.md"]) == b"new text"
    assert after["a.md"].source_id == "s:a.md"


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(HeadwaterError, match="does not exist"):
        list(LocalSource("s", tmp_path / "nope").list_files())


def test_broken_symlink_is_skipped(tmp_path: Path) -> None:
    tree(tmp_path)
    (tmp_path / "dangling.md").symlink_to(tmp_path / "missing.md")
    assert "dangling.md" not in paths(LocalSource("s", tmp_path))
