"""What every strategy shares: the document text, its sections, and chunks made from spans.

Every strategy cuts spans out of one text, the document's elements joined by a blank
line, so a chunk's ``text`` is always exactly ``document_text[start:end]``. The
evaluation measures retrieval on those offsets, so they must be true for every strategy.
"""

from __future__ import annotations

import logging
import re
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any, ClassVar, Literal, Protocol

from headwater.ingest.ids import chunk_ids, settings_key
from headwater.ingest.models import Chunk, ChunkMetadata, Document, Element

log = logging.getLogger(__name__)

SEPARATOR = "\n\n"
"""Joins elements into the document text that chunk offsets point into."""

PATH_SEPARATOR = " > "
"""Joins the headings of a section path in ``ChunkMetadata.section``."""

_TITLE_CHARS = 200
"""A heading longer than this is cut in the section path (parsers promote long lines)."""


@dataclass
class Span:
    """Where one element sits in the document text."""

    start: int
    end: int
    element: Element


@dataclass
class Section:
    """Consecutive elements under one heading path."""

    title: str | None
    spans: list[Span] = field(default_factory=list)
    has_body: bool = False

    @property
    def start(self) -> int:
        return self.spans[0].start

    @property
    def end(self) -> int:
        return self.spans[-1].end


@dataclass(frozen=True)
class Piece:
    """A chunk before it has an id: a span of the document text and its section path."""

    start: int
    end: int
    section: str | None


def document_text(elements: Sequence[Element]) -> tuple[str, list[Span]]:
    """The text chunk offsets refer to, and where each element sits in it."""
    spans: list[Span] = []
    parts: list[str] = []
    pos = 0
    for el in elements:
        if parts:
            pos += len(SEPARATOR)
        spans.append(Span(pos, pos + len(el.text), el))
        parts.append(el.text)
        pos += len(el.text)
    return SEPARATOR.join(parts), spans


def _title(element: Element) -> str:
    return element.text.strip()[:_TITLE_CHARS]


def sections(spans: list[Span]) -> list[Section]:
    """Group elements under their titles; consecutive titles form one heading path."""
    out: list[Section] = []
    current = Section(title=None)
    for span in spans:
        if span.element.category == "Title":
            title = _title(span.element)
            if current.has_body or not current.spans:
                if current.spans:
                    out.append(current)
                current = Section(title=title)
            else:
                current.title = (
                    f"{current.title}{PATH_SEPARATOR}{title}" if current.title else title
                )
        else:
            current.has_body = True
        current.spans.append(span)
    if current.spans:
        out.append(current)
    return out


def merge_small(
    text: str, groups: list[Section], length: Callable[[str], int], size: int
) -> list[Section]:
    """Join neighbouring sections while they fit in one chunk together.

    Parsers often promote short lines (table cells, labels) to titles; without this,
    each would become a chunk of a few words. The joined section keeps the first title.
    """
    merged: list[Section] = []
    for section in groups:
        if merged:
            last = merged[-1]
            if length(text[last.start : section.end]) <= size:
                last.spans.extend(section.spans)
                continue
        merged.append(Section(section.title, list(section.spans), section.has_body))
    return merged


def has_heading_levels(spans: Sequence[Span]) -> bool:
    """Whether the parser gave this document's headings levels (Markdown, HTML, DOCX...)."""
    return any(s.element.category == "Title" and s.element.depth is not None for s in spans)


def heading_paths(spans: Sequence[Span]) -> list[str | None]:
    """The heading path in force at each element (its own heading included, for a title).

    With levels (h1 > h2 > h3), a heading replaces its level and everything below it.
    Without (PDF, plain text), a run of consecutive titles forms one path, and the next
    title after body text starts a new one, as `sections` groups them.
    """
    paths: list[str | None] = []
    stack: list[str] = []
    previous_was_title = False
    for span in spans:
        el = span.element
        if el.category == "Title":
            if el.depth is not None:
                level = max(el.depth, 0)
                stack = [*stack[:level], _title(el)]
            elif previous_was_title:
                stack = [*stack, _title(el)]
            else:
                stack = [_title(el)]
        previous_was_title = el.category == "Title"
        paths.append(PATH_SEPARATOR.join(stack) or None)
    return paths


class Outline:
    """The heading path in force at any offset of the document text."""

    def __init__(self, spans: Sequence[Span]) -> None:
        self._starts = [s.start for s in spans]
        self.paths = heading_paths(spans)

    def at(self, offset: int) -> str | None:
        i = bisect_right(self._starts, offset) - 1
        return self.paths[max(i, 0)] if self.paths else None


_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W\d_]{2}")
"""Two letters in a row (any script): the least a chunk needs to be worth embedding."""


def has_word(text: str) -> bool:
    """Whether a chunk holds a word: a run of two or more letters, in any script.

    Page numbers, list markers and stray braces ("1", "42", "}", "- 3 -") become chunks
    of their own when they stand alone between sections; embedded, they are noise that
    matches every numeric query. Digits and punctuation alone never make a word, nor does
    a single letter ("a", "x = 1"), so such chunks are left out.
    """
    return _WORD.search(text) is not None


def align(text: str, pieces: Iterable[str]) -> list[tuple[int, int]]:
    """Spans of `text` holding `pieces`, which a chunker made from it in order, matched
    with whitespace ignored.

    unstructured's chunkers collapse runs of whitespace, so their text is not always in
    the document verbatim. Each piece is searched from the end of the previous one, never
    before it, so repeated passages map to their own copies; the span runs from the
    piece's first to its last non-space character in the document.
    """
    squeezed = _WHITESPACE.sub("", text)
    where = array("q", (m.start() for m in re.finditer(r"\S", text)))
    out = []
    cursor = 0
    for piece in pieces:
        needle = _WHITESPACE.sub("", piece)
        if not needle:
            continue
        at = squeezed.find(needle, cursor)
        if at < 0:
            raise ValueError(
                f"chunker returned text that is not next in the document: {piece[:60]!r}"
            )
        cursor = at + len(needle)
        out.append((where[at], where[cursor - 1] + 1))
    return out


def build_chunks(
    document: Document, text: str, spans: Sequence[Span], pieces: Sequence[Piece], settings: str
) -> list[Chunk]:
    """Chunks with ids and metadata for pieces of the document text, in reading order.

    Pieces without a word (see `has_word`) are dropped before ids are given, so the ids of
    the others do not change.
    """
    pieces = [p for p in pieces if has_word(text[p.start : p.end])]
    texts = [text[p.start : p.end] for p in pieces]
    ids = chunk_ids(document.source_id, settings, texts)
    ends = [s.end for s in spans]
    chunks = []
    for position, (piece, body, cid) in enumerate(zip(pieces, texts, ids, strict=True)):
        inside = []
        for span in spans[bisect_right(ends, piece.start) :]:
            if span.start >= piece.end:
                break
            inside.append(span.element)
        chunks.append(
            Chunk(
                id=cid,
                text=body,
                metadata=ChunkMetadata(
                    source_id=document.source_id,
                    source=document.file.source,
                    path=document.file.path,
                    file_type=document.file_type,
                    position=position,
                    start=piece.start,
                    end=piece.end,
                    pages=tuple(sorted({e.page for e in inside if e.page is not None})),
                    section=piece.section,
                    element_types=tuple(dict.fromkeys(e.category for e in inside)),
                ),
            )
        )
    return chunks


def token_budget(model: str, size: int | None) -> int:
    """`size` model tokens, capped so that a chunk plus special tokens fits the model's window."""
    from headwater.ingest.embedding import content_window

    window = content_window(model)
    if size is None:
        return window
    if size > window:
        _warn_capped(model, size, window)
        return window
    return size


@cache
def _warn_capped(model: str, size: int, window: int) -> None:
    log.warning(
        "chunk_size %d tokens is more than %s reads (%d tokens of text); using %d",
        size,
        model,
        window,
        window,
    )


def length_function(unit: str, model: str) -> Callable[[str], int]:
    """How a strategy measures text: characters, or tokens of the embedding model."""
    if unit == "chars":
        return len
    from headwater.ingest.embedding import token_counter

    return token_counter(model)


class _UnitSizedConfig(Protocol):
    @property
    def unit(self) -> Literal["tokens", "chars"]: ...
    @property
    def chunk_size(self) -> int: ...
    def model_dump(self) -> dict[str, Any]: ...


class UnitSized:
    """A chunker sized by ``chunk_size`` in ``unit``s: characters, or tokens of the
    embedding model (capped at its window)."""

    algorithm_version: ClassVar[int]
    """Bump when the splitting logic changes, so stored chunks are rebuilt."""

    def __init__(self, config: _UnitSizedConfig, embedding_model: str) -> None:
        self.sizing = config
        self.embedding_model = embedding_model

    @cached_property
    def settings_key(self) -> str:
        settings = {"v": self.algorithm_version, **self.sizing.model_dump()}
        if self.sizing.unit == "tokens":
            settings["tokenizer"] = self.embedding_model
        return settings_key(settings)

    @cached_property
    def _length(self) -> Callable[[str], int]:
        return length_function(self.sizing.unit, self.embedding_model)

    @cached_property
    def _size(self) -> int:
        if self.sizing.unit == "chars":
            return self.sizing.chunk_size
        return token_budget(self.embedding_model, self.sizing.chunk_size)
