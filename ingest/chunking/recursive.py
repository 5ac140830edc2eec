"""Recursive splitting within sections, measured in the embedding model's tokens."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from ingest.chunking.base import (
    Piece,
    Section,
    Span,
    build_chunks,
    document_text,
    length_function,
    locate,
    merge_small,
    sections,
    token_budget,
)
from ingest.config import RecursiveChunking
from ingest.ids import settings_key
from ingest.models import Chunk, Document

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


class RecursiveChunker:
    """Langchain's recursive character splitter, applied section by section.

    Splits on paragraph, then line, sentence and word boundaries until each piece fits
    ``chunk_size`` (tokens of the embedding model by default, capped at the model's
    window, so chunks are never truncated by the model).
    """

    def __init__(self, config: RecursiveChunking, embedding_model: str) -> None:
        self.config = config
        self.embedding_model = embedding_model

    @cached_property
    def settings_key(self) -> str:
        settings = {"v": _ALGORITHM_VERSION, **self.config.model_dump()}
        if self.config.unit == "tokens":
            settings["tokenizer"] = self.embedding_model
        return settings_key(settings)

    @cached_property
    def _length(self) -> Callable[[str], int]:
        return length_function(self.config.unit, self.embedding_model)

    @cached_property
    def _size(self) -> int:
        if self.config.unit == "chars":
            return self.config.chunk_size
        return token_budget(self.embedding_model, self.config.chunk_size)

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
