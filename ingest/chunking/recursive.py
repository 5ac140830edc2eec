"""Recursive splitting within sections, measured in the embedding model's tokens."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from ingest.config import ChunkingConfig
from ingest.ids import chunk_ids, settings_key
from ingest.models import Chunk, ChunkMetadata, Document, Element

if TYPE_CHECKING:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

SEPARATOR = "\n\n"
"""Joins elements into the document text that chunk offsets point into."""

_ALGORITHM_VERSION = 1
"""Bump when the splitting logic changes, so stored chunks are rebuilt."""


@dataclass
class _Span:
    start: int
    end: int
    element: Element


@dataclass
class _Section:
    title: str | None
    spans: list[_Span] = field(default_factory=list)
    has_body: bool = False


def document_text(elements: Sequence[Element]) -> tuple[str, list[_Span]]:
    """The text chunk offsets refer to, and where each element sits in it."""
    spans: list[_Span] = []
    parts: list[str] = []
    pos = 0
    for el in elements:
        if parts:
            pos += len(SEPARATOR)
        spans.append(_Span(pos, pos + len(el.text), el))
        parts.append(el.text)
        pos += len(el.text)
    return SEPARATOR.join(parts), spans


def sections(spans: list[_Span]) -> list[_Section]:
    """Group elements under their titles; consecutive titles form one heading path."""
    out: list[_Section] = []
    current = _Section(title=None)
    for span in spans:
        if span.element.category == "Title":
            title = span.element.text.strip()[:200]
            if current.has_body or not current.spans:
                if current.spans:
                    out.append(current)
                current = _Section(title=title)
            else:
                current.title = f"{current.title} > {title}" if current.title else title
        else:
            current.has_body = True
        current.spans.append(span)
    if current.spans:
        out.append(current)
    return out


class RecursiveChunker:
    """Langchain's recursive character splitter, applied section by section.

    Splits on paragraph, then line, sentence and word boundaries until each piece fits
    ``chunk_size`` (tokens of the embedding model by default, so chunks are never
    truncated by the model).
    """

    def __init__(self, config: ChunkingConfig, embedding_model: str) -> None:
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
        if self.config.unit == "chars":
            return len
        from ingest.embedding import load_tokenizer

        tokenizer = load_tokenizer(self.embedding_model)
        # A fast tokenizer raises "Already borrowed" when two threads call it at once.
        lock = threading.Lock()

        def tokens(text: str) -> int:
            with lock:
                return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

        return tokens

    @cached_property
    def _splitter(self) -> RecursiveCharacterTextSplitter:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        return RecursiveCharacterTextSplitter(
            chunk_size=self.config.chunk_size,
            chunk_overlap=self.config.chunk_overlap,
            length_function=self._length,
            separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
            keep_separator="end",
            strip_whitespace=True,
        )

    def _merge_small(self, text: str, groups: list[_Section]) -> list[_Section]:
        """Join neighbouring sections while they fit in one chunk together.

        Parsers often promote short lines (table cells, labels) to titles; without this,
        each would become a chunk of a few words.
        """
        merged: list[_Section] = []
        for section in groups:
            if merged:
                last = merged[-1]
                joined = text[last.spans[0].start : section.spans[-1].end]
                if self._length(joined) <= self.config.chunk_size:
                    last.spans.extend(section.spans)
                    continue
            merged.append(_Section(section.title, list(section.spans), section.has_body))
        return merged

    def chunk(self, document: Document) -> list[Chunk]:
        text, spans = document_text(document.elements)
        if self.config.respect_sections:
            groups = self._merge_small(text, sections(spans))
        else:
            groups = [_Section(None, spans)]
        pieces: list[tuple[str, int, _Section]] = []
        for section in groups:
            start = section.spans[0].start
            body = text[start : section.spans[-1].end]
            cursor = 0
            for piece in self._splitter.split_text(body):
                # Pieces are substrings in order, each starting after the previous start;
                # langchain's own start_index mixes token overlap with character offsets.
                at = body.find(piece, cursor)
                if at < 0:
                    at = body.find(piece)
                pieces.append((piece, start + at, section))
                cursor = at + 1

        ids = chunk_ids(document.source_id, self.settings_key, (p[0] for p in pieces))
        chunks = []
        for position, ((piece, start, section), cid) in enumerate(zip(pieces, ids, strict=True)):
            end = start + len(piece)
            inside = [s.element for s in section.spans if s.start < end and s.end > start]
            chunks.append(
                Chunk(
                    id=cid,
                    text=piece,
                    metadata=ChunkMetadata(
                        source_id=document.source_id,
                        source=document.file.source,
                        path=document.file.path,
                        file_type=document.file_type,
                        position=position,
                        start=start,
                        end=end,
                        pages=tuple(sorted({e.page for e in inside if e.page is not None})),
                        section=section.title,
                        element_types=tuple(dict.fromkeys(e.category for e in inside)),
                    ),
                )
            )
        return chunks
