"""Chunking strategies behind one `Chunker` interface, chosen per source in the config."""

from __future__ import annotations

from typing import Protocol

from ingest.config import ChunkingConfig
from ingest.models import Chunk, Document


class Chunker(Protocol):
    """Splits a loaded document into chunks with stable ids and metadata."""

    @property
    def settings_key(self) -> str:
        """Digest of every setting that shapes the chunks; part of each chunk id."""
        ...

    def chunk(self, document: Document) -> list[Chunk]: ...


def create_chunker(config: ChunkingConfig, embedding_model: str) -> Chunker:
    """The chunker a source's config asks for. Token counts use the embedding model's tokenizer."""
    from ingest.chunking.recursive import RecursiveChunker

    return RecursiveChunker(config, embedding_model)
