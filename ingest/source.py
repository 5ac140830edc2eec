"""The `Source` interface: list files with cheap fingerprints, read their bytes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from ingest.models import SourceFile


@runtime_checkable
class Source(Protocol):
    """A place documents come from: a local folder today, any fsspec URL later."""

    name: str

    def list_files(self) -> Iterator[SourceFile]:
        """Every included file, without reading contents. Raises if the root is unreachable."""
        ...

    def read_bytes(self, file: SourceFile) -> bytes:
        """The file's current bytes."""
        ...
