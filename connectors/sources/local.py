"""A local folder as a document source."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pathspec

from ingest.errors import HeadwaterError
from ingest.models import SourceFile


def globs(patterns: Sequence[str]) -> pathspec.PathSpec:
    """Patterns with .gitignore semantics: ``*.pdf`` matches at any depth, ``a/**`` below a/."""
    return pathspec.PathSpec.from_lines("gitwildmatch", patterns)


class LocalSource:
    """Files under a root folder, filtered by include/exclude globs.

    The fingerprint is size plus modification time in nanoseconds: cheap to read and it
    changes whenever a write happens.
    """

    def __init__(
        self, name: str, root: Path, include: Sequence[str] = ("**/*",), exclude: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.root = root
        self.include = globs(include)
        self.exclude = globs(exclude)

    def list_files(self) -> Iterator[SourceFile]:
        if not self.root.is_dir():
            raise HeadwaterError(f"source {self.name!r}: folder {self.root} does not exist")
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for filename in sorted(filenames):
                full = Path(dirpath, filename)
                rel = full.relative_to(self.root).as_posix()
                if not self.include.match_file(rel) or self.exclude.match_file(rel):
                    continue
                try:
                    st = full.stat()
                except OSError:
                    # A broken symlink or a file deleted mid-listing: it is not there.
                    continue
                yield SourceFile(
                    source=self.name,
                    path=rel,
                    uri=str(full),
                    size=st.st_size,
                    fingerprint=f"{st.st_size}:{st.st_mtime_ns}",
                )

    def read_bytes(self, file: SourceFile) -> bytes:
        return Path(file.uri).read_bytes()
