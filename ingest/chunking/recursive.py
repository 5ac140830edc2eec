"""Recursive splitting within sections, measured in the embedding model's tokens."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from itertools import pairwise
from typing import TYPE_CHECKING

from headwater.ingest.chunking.base import (
    Piece,
    Section,
    Span,
    UnitSized,
    build_chunks,
    document_text,
    merge_small,
    sections,
)
from headwater.ingest.chunking.config import RecursiveChunking
from headwater.ingest.models import Chunk, Document

if TYPE_CHECKING:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

__all__ = ["RecursiveChunker", "document_text", "recursive_splitter", "split_spans"]

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


def split_spans(
    splitter: RecursiveCharacterTextSplitter, text: str, offset: int = 0
) -> list[tuple[int, int]]:
    """Where each of ``splitter.split_text(text)`` sits in `text`, shifted by `offset`.

    langchain returns the pieces as strings, and searching for them again finds an
    earlier copy wherever text repeats (its own ``add_start_index`` searches too). This
    follows the same steps as its ``_split_text`` and ``_merge_splits`` (separators kept
    at the end, whitespace stripped) on spans instead of strings; a test checks that the
    pieces are the splitter's own on every strategy's inputs.
    """
    length = splitter._length_function
    size = splitter._chunk_size
    overlap = splitter._chunk_overlap
    separator_len = length("")

    def join(first: int, last: int) -> tuple[int, int] | None:
        while first < last and text[first].isspace():
            first += 1
        while last > first and text[last - 1].isspace():
            last -= 1
        return (first, last) if last > first else None

    def merge(splits: list[tuple[int, int]]) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        current: list[tuple[int, int, int]] = []
        total = 0
        for a, b in splits:
            n = length(text[a:b])
            if total + n + (separator_len if current else 0) > size and current:
                if (span := join(current[0][0], current[-1][1])) is not None:
                    out.append(span)
                while total > overlap or (
                    total + n + (separator_len if current else 0) > size and total > 0
                ):
                    total -= current[0][2] + (separator_len if len(current) > 1 else 0)
                    current = current[1:]
            current.append((a, b, n))
            total += n + (separator_len if len(current) > 1 else 0)
        if current and (span := join(current[0][0], current[-1][1])) is not None:
            out.append(span)
        return out

    def split(start: int, end: int, separators: list[str]) -> list[tuple[int, int]]:
        separator, rest = separators[-1], []
        for i, candidate in enumerate(separators):
            if not candidate:
                separator = candidate
                break
            if candidate in text[start:end]:
                separator, rest = candidate, separators[i + 1 :]
                break
        if separator:
            cuts = [m.end() for m in re.finditer(re.escape(separator), text[start:end])]
            bounds = [start, *(start + c for c in cuts), end]
            splits = [(a, b) for a, b in pairwise(bounds) if b > a]
        else:
            splits = [(i, i + 1) for i in range(start, end)]
        chunks: list[tuple[int, int]] = []
        good: list[tuple[int, int]] = []
        for a, b in splits:
            if length(text[a:b]) < size:
                good.append((a, b))
                continue
            if good:
                chunks.extend(merge(good))
                good = []
            chunks.extend(split(a, b, rest) if rest else [(a, b)])
        if good:
            chunks.extend(merge(good))
        return chunks

    if splitter._keep_separator != "end" or not splitter._strip_whitespace:
        raise ValueError("split_spans follows a splitter that keeps separators at the end")
    return [(offset + a, offset + b) for a, b in split(0, len(text), splitter._separators)]


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
            for start, end in split_spans(self._splitter, body, section.start):
                out.append(Piece(start, end, section.title))
        return out

    def chunk(self, document: Document) -> list[Chunk]:
        text, spans = document_text(document.elements)
        return build_chunks(document, text, spans, self.pieces(text, spans), self.settings_key)
