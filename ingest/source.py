"""The `Source` interface: list files with cheap fingerprints, read their bytes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from headwater.ingest.models import SourceFile


@runtime_checkable
class Source(Protocol):
    """A place documents come from: a local folder or any fsspec URL."""

    name: str

    def list_files(self) -> Iterator[SourceFile]:
        """Every included file, without reading contents. Raises if the root is unreachable."""
        ...

    def read_bytes(self, file: SourceFile) -> bytes:
        """The file's current bytes."""
        ...


@runtime_checkable
class ListsNamedFiles(Protocol):
    """A source that can list some of its files without listing them all (the watcher's
    runs). Sources without it are listed whole, and the listing is cut to the paths."""

    def list_named(self, paths: Sequence[str]) -> Iterator[SourceFile]:
        """What `list_files` lists at `paths` (relative to the root): for a folder, all
        that is below it; paths that are gone or filtered out give nothing."""
        ...


def is_url(path: str) -> bool:
    """Whether a configured source path is a remote URL (``file://`` counts as local)."""
    return "://" in path and not path.startswith("file://")


def redact_url(url: str) -> str:
    """The URL without user info, query or fragment: safe to print or log."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
