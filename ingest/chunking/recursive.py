"""Recursive splitting within sections, measured in the embedding model's tokens."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from headwater.ingest.chunking.base import (
    Piece,
    Section,
    Span,
    UnitSized,
    build_chunks,
    document_text,
    locate,
    merge_small,
    sections,
)
from headwater.ingest.chunking.config import RecursiveChunking
from headwater.ingest.models import Chunk, Document

if TYPE_CHECKING:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

__all__ = ["RecursiveChunker", "document_text", "recursive_splitter"]

_ALGORITHM_VERSION = 1
"""Bump when the splitting logic changes, so stored chunks are rebuilt."""

SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]
"""Paragraph, line, sentence, clause, word, character: the first that makes pieces fit wins."""


def recursive_splitter(
    size: int, overlap: int, length: Callable[[str], int]
) -> RecursiveCharacterTextSplitter:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        chunk_size=size,
        chunk_overlap=overlap,
        length_function=length,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )


class RecursiveChunker(UnitSized):
    """Langchain's recursive character splitter, applied section by section.

    Splits on paragraph, then line, sentence and word boundaries until each piece fits
    ``chunk_size`` (tokens of the embedding model by default, capped at the model's
    window, so chunks are never truncated by the model).
    """

    algorithm_version = _ALGORITHM_VERSION

    def __init__(self, config: RecursiveChunking, embedding_model: str) -> None:
        super().__init__(config, embedding_model)
        self.config = config

    @cached_property
    def _splitter(self) -> RecursiveCharacterTextSplitter:
        overlap = min(self.config.chunk_overlap, self._size - 1)
        return recursive_splitter(self._size, overlap, self._length)

    def pieces(self, text: str, spans: list[Span]) -> list[Piece]:
        if self.config.respect_sections:
            groups = merge_small(text, sections(spans), self._length, self._size)
        else:
            groups = [Section(None, spans)]
        out: list[Piece] = []
        for section in groups:
            body = text[section.start : section.end]
            for start, end in locate(body, self._splitter.split_text(body), section.start):
                out.append(Piece(start, end, section.title))
        return out

    def chunk(self, document: Document) -> list[Chunk]:
        text, spans = document_text(document.elements)
        return build_chunks(document, text, spans, self.pieces(text, spans), self.settings_key)
