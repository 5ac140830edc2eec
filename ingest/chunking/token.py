"""Fixed windows of the embedding model's own tokens, so no chunk exceeds what it reads."""

from __future__ import annotations

from functools import cached_property

from headwater.ingest.chunking.base import (
    Outline,
    Piece,
    Section,
    Span,
    build_chunks,
    document_text,
    length_function,
    merge_small,
    sections,
    token_budget,
)
from headwater.ingest.chunking.config import TokenChunking
from headwater.ingest.embedding import token_offsets
from headwater.ingest.errors import ConfigError
from headwater.ingest.ids import settings_key
from headwater.ingest.models import Chunk, Document

_ALGORITHM_VERSION = 1
"""Bump when the splitting logic changes, so stored chunks are rebuilt."""


def token_windows(model: str, text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """Character spans of windows of at most `size` tokens, `overlap` tokens apart.

    langchain's TokenTextSplitter and SentenceTransformersTokenTextSplitter decode token
    ids back to text, which for MiniLM lower-cases it and respaces punctuation: the
    chunks would no longer be the document's text. We keep the tokenizer's character
    offsets instead, and move each cut back to a word start: a window that began in the
    middle of a word would be tokenised differently, and could then overflow the model.
    """
    offsets, words = token_offsets(model, text)
    n = len(offsets)
    starts_word = [i == 0 or words[i] is None or words[i] != words[i - 1] for i in range(n)]

    def word_start(i: int, floor: int) -> int:
        j = i
        while j > floor and not starts_word[j]:
            j -= 1
        # One word longer than the whole window is cut inside the word.
        return j if j > floor else i

    windows = []
    first = 0
    while first < n:
        last = min(first + size, n)
        if last < n:
            last = word_start(last, first)
        windows.append((offsets[first][0], offsets[last - 1][1]))
        if last == n:
            break
        first = word_start(max(last - overlap, first + 1), first)
    return windows


class TokenChunker:
    """Windows of ``chunk_size`` model tokens with ``chunk_overlap`` tokens shared.

    The default size is the model's whole input window less its special tokens, and a
    larger size is capped there: a chunk is never truncated when it is embedded.
    """

    def __init__(self, config: TokenChunking, embedding_model: str) -> None:
        self.config = config
        self.embedding_model = embedding_model

    @cached_property
    def settings_key(self) -> str:
        return settings_key(
            {"v": _ALGORITHM_VERSION, **self.config.model_dump(), "tokenizer": self.embedding_model}
        )

    @cached_property
    def _size(self) -> int:
        size = token_budget(self.embedding_model, self.config.chunk_size)
        if self.config.chunk_overlap >= size:
            raise ConfigError(
                f"chunking.chunk_overlap ({self.config.chunk_overlap}) must be smaller than the "
                f"chunk size ({size} tokens for {self.embedding_model})"
            )
        return size

    def pieces(self, text: str, spans: list[Span]) -> list[Piece]:
        outline = Outline(spans)
        if self.config.respect_sections:
            length = length_function("tokens", self.embedding_model)
            groups = merge_small(text, sections(spans), length, self._size)
        else:
            groups = [Section(None, spans)]
        out = []
        for group in groups:
            body = text[group.start : group.end]
            windows = token_windows(
                self.embedding_model, body, self._size, self.config.chunk_overlap
            )
            for start, end in windows:
                at = group.start + start
                out.append(Piece(at, group.start + end, group.title or outline.at(at)))
        return out

    def chunk(self, document: Document) -> list[Chunk]:
        text, spans = document_text(document.elements)
        return build_chunks(document, text, spans, self.pieces(text, spans), self.settings_key)
