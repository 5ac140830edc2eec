"""Chunk offsets are each chunk's own, on text that repeats, for every strategy."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from headwater.ingest.chunking import create_chunker
from headwater.ingest.chunking.base import align, document_text, has_word
from headwater.ingest.chunking.config import (
    ChunkingConfig,
    ElementsChunking,
    HeadersChunking,
    RecursiveChunking,
    SemanticChunking,
    TokenChunking,
)
from headwater.ingest.chunking.recursive import recursive_splitter, split_spans
from headwater.ingest.embedding import Embedder, token_counter
from headwater.ingest.models import Chunk, Document, Element, SourceFile

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

PARAGRAPH = (
    "Submit the form within 30 days.  Keep the receipt. Submit the form within 30 days.\n"
    "Keep the receipt."
)


def repeated_document() -> Document:
    """Passages, headings and whole sections that repeat verbatim, with double spaces."""
    elements: list[Element] = []
    for part in range(3):
        elements.append(Element("Claims", "Title", page=part + 1, depth=0))
        elements.append(Element("Rules", "Title", page=part + 1, depth=1))
        for _ in range(4):
            elements.append(Element(PARAGRAPH, "NarrativeText", page=part + 1, depth=None))
        elements.append(Element("Keep the receipt.", "ListItem", page=part + 1, depth=None))
        elements.append(Element("  ".join([PARAGRAPH] * 6), "NarrativeText", page=part + 1))
    f = SourceFile("docs", "repeat.md", "/tmp/repeat.md", 1, "fp")
    return Document(file=f, file_type="md", content_hash="h", elements=elements)


def assert_own_spans(doc: Document, chunks: list[Chunk]) -> None:
    text, spans = document_text(doc.elements)
    assert len(chunks) > 10
    covered = [False] * len(text)
    previous = (-1, -1)
    for c in chunks:
        start, end = c.metadata.start, c.metadata.end
        assert text[start:end] == c.text
        # In order: each chunk starts after the previous one started and ends after it ended.
        assert start > previous[0] and end > previous[1]
        previous = (start, end)
        covered[start:end] = [True] * (end - start)
        inside = {s.element.page for s in spans if s.start < end and s.end > start}
        assert set(c.metadata.pages) == inside
    missed = "".join(ch for ch, hit in zip(text, covered, strict=True) if not hit)
    assert not missed.strip(), f"text no chunk covers: {missed.strip()[:80]!r}"


CONFIGS: list[ChunkingConfig] = [
    RecursiveChunking(chunk_size=20, chunk_overlap=5),
    RecursiveChunking(unit="chars", chunk_size=60, chunk_overlap=25),
    RecursiveChunking(unit="chars", chunk_size=60, chunk_overlap=0, respect_sections=False),
    TokenChunking(chunk_size=24, chunk_overlap=8),
    TokenChunking(chunk_size=24, chunk_overlap=0, respect_sections=True),
    HeadersChunking(chunk_size=30, chunk_overlap=6),
    HeadersChunking(unit="chars", chunk_size=80, chunk_overlap=20),
    ElementsChunking(max_characters=120),
    ElementsChunking(max_characters=90, split_by="page"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.strategy}")
def test_every_strategy_gives_each_chunk_its_own_span(config: ChunkingConfig) -> None:
    doc = repeated_document()
    assert_own_spans(doc, create_chunker(config, MODEL).chunk(doc))


def test_semantic_gives_each_chunk_its_own_span(embedder: Embedder) -> None:
    doc = repeated_document()
    config = SemanticChunking(chunk_size=40, min_chunk_size=5)
    assert_own_spans(doc, create_chunker(config, MODEL, embedder=embedder).chunk(doc))


TEXTS = [
    PARAGRAPH * 5,
    "\n\n".join([PARAGRAPH, "  ", PARAGRAPH, "x" * 300, "a b " * 80]),
    "word " * 200,
    "no-separators-at-all" * 30,
    " leading and trailing \n\n\n" * 12,
]


@pytest.mark.parametrize("unit", ["chars", "tokens"])
@pytest.mark.parametrize("text", TEXTS, ids=[f"text{i}" for i in range(len(TEXTS))])
def test_split_spans_are_langchains_own_pieces(unit: str, text: str) -> None:
    length = len if unit == "chars" else token_counter(MODEL)
    for size, overlap in ((40, 10), (25, 0), (60, 59)):
        splitter = recursive_splitter(size, overlap, length)
        spans = split_spans(splitter, text, offset=7)
        assert [text[a - 7 : b - 7] for a, b in spans] == splitter.split_text(text)


def test_align_maps_collapsed_whitespace_forward() -> None:
    text = "Keep  the receipt.\n\nKeep the\treceipt.\n\nKeep the receipt."
    spans = align(text, ["Keep the receipt.", "Keep the receipt.", " ", "Keep the receipt."])
    assert spans == [(0, 18), (20, 37), (39, 56)]
    with pytest.raises(ValueError, match="not next in the document"):
        align(text, ["Keep the receipt.", "Submit"])


def test_elements_strategy_keeps_double_spaced_text() -> None:
    """unstructured's chunker collapses double spaces; the chunks keep the document's."""
    text = "Methods.  Cells were  counted  twice.  Results  follow. " * 30
    f = SourceFile("docs", "pubmed.txt", "/tmp/pubmed.txt", 1, "fp")
    doc = Document(f, "txt", "h", [Element(text.strip(), "NarrativeText")])
    chunks = create_chunker(ElementsChunking(max_characters=200), MODEL).chunk(doc)
    assert len(chunks) > 5
    assert all("  " in c.text for c in chunks)
    assert_own_spans_loose(doc, chunks)


def assert_own_spans_loose(doc: Document, chunks: list[Chunk]) -> None:
    text, _ = document_text(doc.elements)
    assert re.sub(r"\s+", "", "".join(c.text for c in chunks)) == re.sub(r"\s+", "", text)
    for a, b in pairwise(chunks):
        assert a.metadata.end <= b.metadata.start
        assert text[a.metadata.start : a.metadata.end] == a.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", False),
        ("42", False),
        ("}", False),
        ("- 3 -", False),
        ("x = 1", False),
        ("a", False),
        ("3.14159 2.71828", False),
        ("__init__", True),
        ("ok", True),
        ("Page 4", True),
        ("x1 = y2", False),
        ("中文", True),
        ("Ωμ", True),
        ("", False),
    ],
)
def test_a_chunk_needs_a_word(text: str, expected: bool) -> None:
    assert has_word(text) is expected


def test_wordless_chunks_are_not_made_and_other_ids_do_not_move() -> None:
    f = SourceFile("docs", "n.txt", "/tmp/n.txt", 1, "fp")
    words = [Element("First real paragraph.", "NarrativeText"), Element("Second one.", "Title")]
    noisy = [words[0], Element("42", "NarrativeText"), Element("}", "Title"), words[1]]
    config = ElementsChunking(max_characters=22, combine_text_under_n_chars=0)
    chunker = create_chunker(config, MODEL)
    clean = chunker.chunk(Document(f, "txt", "h", words))
    chunks = chunker.chunk(Document(f, "txt", "h", noisy))
    assert [c.text for c in chunks] == ["First real paragraph.", "Second one."]
    assert [c.id for c in chunks] == [c.id for c in clean]
    assert [c.metadata.position for c in chunks] == [0, 1]
