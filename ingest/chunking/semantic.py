"""Breaks where the embedding similarity of neighbouring sentences drops."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from headwater.ingest.chunking.base import (
    Outline,
    Piece,
    Span,
    build_chunks,
    document_text,
    length_function,
    token_budget,
)
from headwater.ingest.chunking.config import SemanticChunking
from headwater.ingest.chunking.recursive import recursive_splitter, split_spans
from headwater.ingest.embedding import EmbeddingConfig
from headwater.ingest.ids import settings_key
from headwater.ingest.models import Chunk, Document

if TYPE_CHECKING:
    from headwater.ingest.embedding import Embedder

_ALGORITHM_VERSION = 1
"""Bump when the splitting logic changes, so stored chunks are rebuilt."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
"""Where a sentence ends inside an element: after . ! ? and a space, or at a line break."""


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the sentences of ``text[start:end]``, without surrounding whitespace."""
    out = []
    at = start
    for m in _SENTENCE_END.finditer(text, start, end):
        if m.start() > at:
            out.append((at, m.start()))
        at = m.end()
    if end > at:
        out.append((at, end))
    return out


class SemanticChunker:
    """Sentences are embedded, each with ``buffer_size`` neighbours on each side; a chunk ends
    where the cosine distance to the next sentence is above the document's
    ``breakpoint_percentile`` (as langchain-experimental's SemanticChunker does), or
    where the next sentence would take it past ``chunk_size`` model tokens. A sentence
    longer than that is split recursively first. Sentences never span two elements.
    """

    def __init__(
        self, config: SemanticChunking, embedding_model: str, embedder: Embedder | None = None
    ) -> None:
        self.config = config
        self.embedding_model = embedding_model
        self._embedder = embedder

    @cached_property
    def settings_key(self) -> str:
        # The model places the breaks, so it is part of the settings.
        return settings_key(
            {"v": _ALGORITHM_VERSION, **self.config.model_dump(), "model": self.embedding_model}
        )

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from headwater.ingest.embedding import Embedder

            self._embedder = Embedder(EmbeddingConfig(model=self.embedding_model))
        return self._embedder

    @cached_property
    def _length(self) -> Callable[[str], int]:
        return length_function("tokens", self.embedding_model)

    @cached_property
    def _size(self) -> int:
        return token_budget(self.embedding_model, self.config.chunk_size)

    def units(self, text: str, spans: list[Span]) -> list[tuple[int, int]]:
        """Sentence spans in reading order; a sentence too long for one chunk is split."""
        splitter = recursive_splitter(self._size, 0, self._length)
        out: list[tuple[int, int]] = []
        for span in spans:
            for start, end in sentence_spans(text, span.start, span.end):
                if self._length(text[start:end]) <= self._size:
                    out.append((start, end))
                else:
                    out.extend(split_spans(splitter, text[start:end], start))
        return out

    def distances(self, text: str, units: list[tuple[int, int]]) -> np.ndarray:
        """Cosine distance between each sentence and the next, each read with its neighbours.

        Each sentence is embedded once and its neighbours' vectors are averaged in, rather
        than embedding every run of 2 * buffer_size + 1 sentences: about a third of the
        model time, for breakpoints that differ little.
        """
        vectors = self.embedder.embed([text[s:e] for s, e in units])
        b = self.config.buffer_size
        if b:
            sums = np.cumsum(np.vstack([np.zeros_like(vectors[:1]), vectors]), axis=0)
            n = len(units)
            lo = np.maximum(np.arange(n) - b, 0)
            hi = np.minimum(np.arange(n) + b + 1, n)
            vectors = sums[hi] - sums[lo]
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(1.0 - np.sum(vectors[:-1] * vectors[1:], axis=1))

    def pieces(self, text: str, spans: list[Span]) -> list[Piece]:
        units = self.units(text, spans)
        if not units:
            return []
        distances = self.distances(text, units) if len(units) > 1 else np.zeros(0)
        threshold = (
            float(np.percentile(distances, self.config.breakpoint_percentile))
            if len(distances)
            else 0.0
        )
        tokens = [self._length(text[s:e]) for s, e in units]
        groups: list[tuple[int, int]] = []
        first, size = 0, tokens[0]
        for i in range(1, len(units)):
            # Whitespace between sentences adds no tokens (MiniLM's tokenizer splits on it).
            too_big = size + tokens[i] > self._size
            topic_shift = distances[i - 1] > threshold and size >= self.config.min_chunk_size
            if too_big or topic_shift:
                groups.append((first, i - 1))
                first, size = i, tokens[i]
            else:
                size += tokens[i]
        groups.append((first, len(units) - 1))
        outline = Outline(spans)
        return [Piece(units[a][0], units[b][1], outline.at(units[a][0])) for a, b in groups]

    def chunk(self, document: Document) -> list[Chunk]:
        text, spans = document_text(document.elements)
        return build_chunks(document, text, spans, self.pieces(text, spans), self.settings_key)
