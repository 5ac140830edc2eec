"""Chunking strategies behind one `Chunker` interface, chosen per source in the config.

| strategy    | module        | splits                                                       |
|-------------|---------------|--------------------------------------------------------------|
| `recursive` | recursive.py  | sections, then paragraphs, lines, sentences, words (default) |
| `token`     | token.py      | fixed windows of the embedding model's tokens                |
| `headers`   | headers.py    | at Markdown/HTML headings, keeping the heading path          |
| `elements`  | elements.py   | unstructured's chunk_by_title, or element chunks per page    |
| `semantic`  | semantic.py   | where neighbouring sentences' embeddings drift apart          |

Every chunk's text is ``document_text(elements)[start:end]`` (see base.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from headwater.ingest.chunking.config import (
    ChunkingConfig,
    ElementsChunking,
    HeadersChunking,
    RecursiveChunking,
    SemanticChunking,
    TokenChunking,
)
from headwater.ingest.models import Chunk, Document

if TYPE_CHECKING:
    from headwater.ingest.embedding import Embedder


class Chunker(Protocol):
    """Splits a loaded document into chunks with stable ids and metadata."""

    @property
    def settings_key(self) -> str:
        """Digest of every setting that shapes the chunks; part of each chunk id."""
        ...

    def chunk(self, document: Document) -> list[Chunk]: ...


def create_chunker(
    config: ChunkingConfig, embedding_model: str, *, embedder: Embedder | None = None
) -> Chunker:
    """The chunker a source's config asks for. Nothing is loaded until it first chunks.

    Token counts use the embedding model's tokenizer; the semantic strategy embeds with
    `embedder` (shared with the sync so the model loads once), or loads the model itself.
    """
    if isinstance(config, RecursiveChunking):
        from headwater.ingest.chunking.recursive import RecursiveChunker

        return RecursiveChunker(config, embedding_model)
    if isinstance(config, TokenChunking):
        from headwater.ingest.chunking.token import TokenChunker

        return TokenChunker(config, embedding_model)
    if isinstance(config, HeadersChunking):
        from headwater.ingest.chunking.headers import HeadersChunker

        return HeadersChunker(config, embedding_model)
    if isinstance(config, ElementsChunking):
        from headwater.ingest.chunking.elements import ElementsChunker

        return ElementsChunker(config, embedding_model)
    if isinstance(config, SemanticChunking):
        from headwater.ingest.chunking.semantic import SemanticChunker

        return SemanticChunker(config, embedding_model, embedder)
    raise TypeError(f"no chunker for {type(config).__name__}")
