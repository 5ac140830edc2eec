"""One chunk per heading section of Markdown, HTML and other documents with heading levels."""

from __future__ import annotations

from functools import cached_property

from headwater.ingest.chunking.base import (
    Piece,
    Section,
    Span,
    UnitSized,
    build_chunks,
    document_text,
    has_heading_levels,
    heading_paths,
)
from headwater.ingest.chunking.config import HeadersChunking, RecursiveChunking
from headwater.ingest.chunking.recursive import RecursiveChunker, recursive_splitter, split_spans
from headwater.ingest.models import Chunk, Document

_ALGORITHM_VERSION = 1
"""Bump when the splitting logic changes, so stored chunks are rebuilt."""


class HeadersChunker(UnitSized):
    """Splits at headings of levels 1..``header_levels``; the heading path goes in ``section``.

    This is what langchain's MarkdownHeaderTextSplitter and HTMLHeaderTextSplitter do,
    applied to the headings unstructured already found (its ``category_depth``) rather
    than to the raw file: those splitters parse the markup a second time and return
    re-joined text with no positions, while our chunks must be spans of the loaded text.
    As in those splitters, a heading with no body of its own belongs to the next section,
    and a section longer than ``chunk_size`` is split further (recursively, keeping its
    path). A document whose headings have no levels (PDF, plain text) is split like
    ``recursive`` would, with the same size settings.
    """

    algorithm_version = _ALGORITHM_VERSION

    def __init__(self, config: HeadersChunking, embedding_model: str) -> None:
        super().__init__(config, embedding_model)
        self.config = config

    @cached_property
    def _fallback(self) -> RecursiveChunker:
        c = self.config
        flat = RecursiveChunking(
            unit=c.unit, chunk_size=c.chunk_size, chunk_overlap=c.chunk_overlap
        )
        return RecursiveChunker(flat, self.embedding_model)

    def header_sections(self, spans: list[Span]) -> list[Section]:
        """Elements grouped under headings of the configured levels, titled by heading path."""
        out: list[Section] = []
        current = Section(title=None)
        for span, path in zip(spans, heading_paths(spans), strict=True):
            el = span.element
            splits = (
                el.category == "Title"
                and el.depth is not None
                and el.depth < self.config.header_levels
            )
            if splits and current.has_body:
                out.append(current)
                current = Section(title=path)
            elif splits:
                current.title = path
            else:
                current.has_body = True
            current.spans.append(span)
        if current.spans:
            out.append(current)
        return out

    def pieces(self, text: str, spans: list[Span]) -> list[Piece]:
        if not has_heading_levels(spans):
            return self._fallback.pieces(text, spans)
        splitter = recursive_splitter(
            self._size, min(self.config.chunk_overlap, self._size - 1), self._length
        )
        out: list[Piece] = []
        for section in self.header_sections(spans):
            body = text[section.start : section.end]
            if self._length(body) <= self._size:
                out.append(Piece(section.start, section.end, section.title))
                continue
            for start, end in split_spans(splitter, body, section.start):
                out.append(Piece(start, end, section.title))
        return out

    def chunk(self, document: Document) -> list[Chunk]:
        text, spans = document_text(document.elements)
        return build_chunks(document, text, spans, self.pieces(text, spans), self.settings_key)
