"""unstructured's own chunking of the loaded elements: by title (sections) or by page."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from itertools import groupby
from typing import TYPE_CHECKING, Any

from headwater.ingest.chunking.base import Outline, Piece, Span, align, build_chunks, document_text
from headwater.ingest.chunking.config import ElementsChunking
from headwater.ingest.ids import settings_key
from headwater.ingest.models import Chunk, Document, Element

if TYPE_CHECKING:
    from unstructured.documents.elements import Element as UnstructuredElement

_ALGORITHM_VERSION = 1
"""Bump when the splitting logic changes, so stored chunks are rebuilt."""


def _unstructured(elements: Sequence[Element]) -> list[UnstructuredElement]:
    from unstructured.documents.elements import (
        TYPE_TO_TEXT_ELEMENT_MAP,
        ElementMetadata,
        Text,
    )

    return [
        TYPE_TO_TEXT_ELEMENT_MAP.get(e.category, Text)(
            text=e.text, metadata=ElementMetadata(page_number=e.page, category_depth=e.depth)
        )
        for e in elements
    ]


class ElementsChunker:
    """Chunks whole elements together the way unstructured does.

    ``split_by = "title"`` is unstructured's ``chunk_by_title``: a title starts a section,
    small sections are combined, an element too long for ``max_characters`` is split.
    ``split_by = "page"`` runs unstructured's basic chunker on each page separately, so a
    chunk never holds text from two pages. unstructured joins the elements of a chunk with
    a blank line, as the document text does, but collapses runs of whitespace, so each
    chunk is mapped back to its own span of the document text with whitespace ignored.
    Table headers are not repeated in continued table chunks and tables are not isolated
    from their title, so that the chunks stay spans of the document text.
    """

    def __init__(self, config: ElementsChunking, embedding_model: str) -> None:
        self.config = config
        self.embedding_model = embedding_model

    @cached_property
    def settings_key(self) -> str:
        return settings_key({"v": _ALGORITHM_VERSION, **self.config.model_dump()})

    def _options(self) -> dict[str, Any]:
        return {
            "max_characters": self.config.max_characters,
            "new_after_n_chars": self.config.new_after_n_chars,
            "include_orig_elements": False,
            "repeat_table_headers": False,
            "isolate_table": False,
        }

    def _texts(self, elements: Sequence[Element]) -> Iterator[str]:
        if self.config.split_by == "title":
            from unstructured.chunking.title import chunk_by_title

            for chunk in chunk_by_title(
                _unstructured(elements),
                combine_text_under_n_chars=self.config.combine_text_under_n_chars,
                **self._options(),
            ):
                yield chunk.text
            return
        from unstructured.chunking.basic import chunk_elements

        for _, page in groupby(elements, key=lambda e: e.page):
            for chunk in chunk_elements(_unstructured(list(page)), **self._options()):
                yield chunk.text

    def pieces(self, text: str, spans: list[Span]) -> list[Piece]:
        outline = Outline(spans)
        texts = self._texts([s.element for s in spans])
        return [Piece(s, e, outline.at(s)) for s, e in align(text, texts)]

    def chunk(self, document: Document) -> list[Chunk]:
        text, spans = document_text(document.elements)
        return build_chunks(document, text, spans, self.pieces(text, spans), self.settings_key)
