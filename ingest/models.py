"""Typed values passed between pipeline stages and across the store interface."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from functools import cached_property
from typing import Any

from headwater.ingest.errors import HeadwaterError


@dataclass(frozen=True)
class SourceFile:
    """One file as a source lists it: where it is and a cheap fingerprint."""

    source: str
    """Name of the configured source the file belongs to."""
    path: str
    """Path relative to the source root, with forward slashes."""
    uri: str
    """Where the bytes can be read (a local path or an fsspec URL)."""
    size: int
    fingerprint: str
    """Changes whenever the file may have changed (size, mtime, etag)."""

    @cached_property
    def source_id(self) -> str:
        # Asked several times per file by planning: computed once (100,000 files a sync).
        return f"{self.source}:{self.path}"


@dataclass(frozen=True)
class DocumentId:
    """A document's id, ``source:path``: stable across runs and independent of where the
    source's root is mounted. Source names cannot hold ':', so the first one splits."""

    source: str
    path: str

    def __str__(self) -> str:
        return f"{self.source}:{self.path}"

    @classmethod
    def parse(cls, text: str) -> DocumentId:
        source, sep, path = text.partition(":")
        if not sep or not source:
            raise ValueError(f"not a document id (source:path): {text!r}")
        return cls(source, path)


def source_id(source: str, path: str) -> str:
    """The document id as a string (see `DocumentId`)."""
    return str(DocumentId(source, path))


@dataclass(frozen=True)
class Element:
    """One piece of a loaded document (a paragraph, title, table, list item...)."""

    text: str
    category: str
    page: int | None = None
    depth: int | None = None
    """unstructured's category_depth: for a Title, its heading level counted from 0 (h1 is 0);
    None where the format has no levels (PDF, plain text)."""


@dataclass(frozen=True)
class Document:
    """A loaded file: its elements in reading order."""

    file: SourceFile
    file_type: str
    content_hash: str
    elements: Sequence[Element]
    warnings: tuple[str, ...] = ()
    """What was left out though the file loaded (an e-mail attachment that cannot be read)."""

    @property
    def source_id(self) -> str:
        return self.file.source_id


@dataclass(frozen=True)
class ChunkMetadata:
    """What a chunk says about where it came from; stored beside its vector."""

    source_id: str
    source: str
    path: str
    file_type: str
    position: int
    """Index of the chunk within its document."""
    start: int
    """Character offset of the chunk in the document text."""
    end: int
    pages: tuple[int, ...] = ()
    section: str | None = None
    element_types: tuple[str, ...] = ()

    @property
    def page(self) -> int | None:
        return self.pages[0] if self.pages else None


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    metadata: ChunkMetadata


@dataclass(frozen=True)
class VectorRecord:
    """A chunk with its embedding, as written to and read from a store."""

    chunk: Chunk
    vector: Sequence[float]

    @property
    def id(self) -> str:
        return self.chunk.id


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection was made for: vectors of one size from one model."""

    dimension: int
    model: str
    """Embedding model name; empty when the collection does not record it."""


@dataclass(frozen=True)
class QueryFilter:
    """Metadata conditions for a query; all given conditions must hold."""

    source_glob: str | None = None
    """Glob over ``source:path`` ids or plain paths, e.g. ``*.pdf`` or ``policies/*``."""
    source_ids: tuple[str, ...] = ()
    file_types: tuple[str, ...] = ()
    pages: tuple[int, ...] = ()
    page_min: int | None = None
    """Lowest first page, inclusive; a chunk without a page never passes a page bound."""
    page_max: int | None = None
    """Highest first page, inclusive."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> QueryFilter:
        """A filter from plain values, e.g. ``{"file_types": ["pdf"], "source_glob": "policies/*"}``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise HeadwaterError(
                f"filters: unknown key {', '.join(map(repr, unknown))}; "
                f"use {', '.join(sorted(known))}"
            )

        def value_of(key: str, value: Any) -> Any:
            if key == "source_glob" or value is None:
                return value
            if key in ("page_min", "page_max"):
                return int(value)
            # One value or many: {"file_types": "pdf"} means ("pdf",), not ("p", "d", "f").
            return (value,) if isinstance(value, str | int) else tuple(value)

        return cls(**{key: value_of(key, value) for key, value in values.items()})

    def is_empty(self) -> bool:
        return not (
            self.source_glob
            or self.source_ids
            or self.file_types
            or self.pages
            or self.page_min is not None
            or self.page_max is not None
        )

    def page_bounds(self) -> tuple[int, int | None] | None:
        """(lowest, highest or None) first page when a bound is set; pages start at 0 or 1,
        and a missing page (stored as NULL or -1) is below any bound."""
        if self.page_min is None and self.page_max is None:
            return None
        return max(self.page_min or 0, 0), self.page_max

    @property
    def glob_field(self) -> str:
        """The field the glob applies to: ``source_id`` when it names a source, else ``path``."""
        return "source_id" if self.source_glob and ":" in self.source_glob else "path"

    def glob_regex(self) -> re.Pattern[str] | None:
        """The glob as a regex: ``*`` and ``?`` match any characters, ``/`` included."""
        if not self.source_glob:
            return None
        if re.search(r"[\[\]]", self.source_glob):
            raise HeadwaterError(
                f"--source {self.source_glob!r}: only * and ? are supported in globs"
            )
        return re.compile(
            "".join(
                ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in self.source_glob
            ),
            flags=re.DOTALL,
        )

    def matches(self, metadata: ChunkMetadata) -> bool:
        """Whether a chunk passes every condition (pages: the chunk's first page)."""
        regex = self.glob_regex()
        if regex is not None:
            value = metadata.source_id if self.glob_field == "source_id" else metadata.path
            if not regex.fullmatch(value):
                return False
        if self.source_ids and metadata.source_id not in self.source_ids:
            return False
        if self.file_types and metadata.file_type not in self.file_types:
            return False
        if self.pages and metadata.page not in self.pages:
            return False
        bounds = self.page_bounds()
        if bounds is None:
            return True
        low, high = bounds
        page = metadata.page
        return page is not None and page >= low and (high is None or page <= high)


@dataclass(frozen=True)
class QueryHit:
    id: str
    score: float
    text: str
    metadata: ChunkMetadata


class SearchMode(StrEnum):
    """How a query ranks chunks."""

    DENSE = "dense"
    """By embedding similarity."""
    HYBRID = "hybrid"
    """Dense and lexical rankings fused."""
    LEXICAL = "lexical"
    """By full-text relevance (BM25) of the query's words."""


class FusionMethod(StrEnum):
    RRF = "rrf"
    """Reciprocal rank fusion: each list adds 1 / (rrf_k + rank); scores are ignored."""
    WEIGHTED = "weighted"
    """Each list's scores scaled to 0..1 (min-max), then alpha * dense + (1 - alpha) * lexical."""


@dataclass(frozen=True)
class Fusion:
    """How a hybrid query merges its dense and lexical rankings."""

    method: FusionMethod = FusionMethod.RRF
    rrf_k: int = 60
    alpha: float = 0.5
    """Weight of the dense ranking (weighted fusion; Weaviate's hybrid alpha)."""
    candidates: int = 4
    """Each ranking is cut at candidates x k before fusing."""


class FileStatus(StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    FAILED = "failed"


@dataclass
class FileResult:
    """What one sync did to one file."""

    source_id: str
    path: str
    status: FileStatus
    chunks: int = 0
    embedded: int = 0
    written: int = 0
    deleted: int = 0
    truncated: int = 0
    """Chunks embedded in this run that were longer than the model's input window."""
    reason: str | None = None
    stale: bool = False
    """FAILED now, but ingested before: the store keeps the chunks of its last good version
    (counted in `chunks`) until the file loads again or disappears."""
    warnings: tuple[str, ...] = ()
    """What loading left out of a file that went through (see `Document.warnings`)."""
    seconds: float = 0.0
    """Time spent reading, parsing and chunking it, wherever it was prepared (the artifact's
    slowest files)."""
    permanent: bool = False
    """FAILED because of its content (see `LoadError.permanent`), not a read error, a time
    or memory limit, or a crash, which are tried again on every run."""
    load_seconds: float | None = None
    """FAILED after reading or parsing for this long (counted in the load stage's time)."""
