from __future__ import annotations

import os
from pathlib import Path

import pytest

from headwater.connectors.sources.local import LocalSource
from headwater.ingest.errors import HeadwaterError, LoadError
from headwater.ingest.models import SourceFile


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


def read_error(src: LocalSource, rel: str) -> str:
    (file,) = [f for f in src.list_files() if f.path == rel]
    with pytest.raises(LoadError) as exc:
        src.read_bytes(file)
    return exc.value.reason


def test_broken_symlink_is_listed_and_fails_with_its_reason(tmp_path: Path) -> None:
    tree(tmp_path)
    (tmp_path / "dangling.md").symlink_to(tmp_path / "missing.md")
    reason = read_error(LocalSource("s", tmp_path), "dangling.md")
    assert reason.startswith("broken symbolic link") and "missing.md" in reason


def test_symlink_loop_fails_with_its_reason(tmp_path: Path) -> None:
    tree(tmp_path)
    (tmp_path / "loop1.md").symlink_to(tmp_path / "loop2.md")
    (tmp_path / "loop2.md").symlink_to(tmp_path / "loop1.md")
    (tmp_path / "sub" / "up").symlink_to(tmp_path)  # a folder loop: listed once
    src = LocalSource("s", tmp_path)
    assert "symbolic link loop" in read_error(src, "loop1.md")
    assert [p for p in paths(src) if not p.startswith("loop")] == [
        "a.md",
        "b.pdf",
        "e.tmp",
        "sub/c.pdf",
        "sub/drafts/d.md",
    ]


def test_links_leaving_the_root_are_not_followed_unless_allowed(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    (outside / "more").mkdir()
    (outside / "more" / "x.md").write_text("x")
    (root / "in.md").write_text("inside")
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "dir").symlink_to(outside / "more")
    (root / "alias.md").symlink_to(root / "in.md")  # inside the root: read
    src = LocalSource("s", root)
    assert paths(src) == ["alias.md", "dir", "escape.txt", "in.md"]
    assert "leads outside the source folder" in read_error(src, "escape.txt")
    assert "follow_symlinks" in read_error(src, "dir")
    alias = next(f for f in src.list_files() if f.path == "alias.md")
    assert src.read_bytes(alias) == b"inside"
    # A path that climbs out through '..' resolves outside the root too.
    sneaky = SourceFile(
        "s", "../outside/secret.txt", str(root / ".." / "outside" / "secret.txt"), 9, "x"
    )
    with pytest.raises(LoadError, match="outside the source folder"):
        src.read_bytes(sneaky)

    allowed = LocalSource("s", root, follow_symlinks=True)
    assert sorted(paths(allowed)) == ["alias.md", "dir/x.md", "escape.txt", "in.md"]
    escape = next(f for f in allowed.list_files() if f.path == "escape.txt")
    assert allowed.read_bytes(escape) == b"not yours"


def test_fifo_is_not_read(tmp_path: Path) -> None:
    tree(tmp_path)
    os.mkfifo(tmp_path / "pipe.txt")
    assert "named pipe" in read_error(LocalSource("s", tmp_path), "pipe.txt")


def test_file_changed_after_listing_fails_and_is_retried(tmp_path: Path) -> None:
    tree(tmp_path)
    src = LocalSource("s", tmp_path)
    (listed,) = [f for f in src.list_files() if f.path == "a.md"]
    (tmp_path / "a.md").write_text("a longer text than before")
    with pytest.raises(LoadError, match="changed while being read"):
        src.read_bytes(listed)
