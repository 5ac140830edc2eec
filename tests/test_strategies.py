"""Each chunking strategy on real sample_docs documents: sizes, offsets, metadata, ids."""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import pytest

from headwater.ingest.chunking import create_chunker
from headwater.ingest.chunking.base import document_text
from headwater.ingest.chunking.config import (
    ChunkingConfig,
    ElementsChunking,
    HeadersChunking,
    RecursiveChunking,
    SemanticChunking,
    TokenChunking,
)
from headwater.ingest.chunking.semantic import SemanticChunker
from headwater.ingest.config import LoadingConfig
from headwater.ingest.embedding import Embedder, load_tokenizer
from headwater.ingest.loading import load_document
from headwater.ingest.models import Chunk, Document, SourceFile

from .conftest import SAMPLE_DOCS

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
WINDOW = 256
"""MiniLM's input window, special tokens included."""


@cache
def load(rel: str) -> Document:
    path = SAMPLE_DOCS / rel
    f = SourceFile("docs", rel, str(path), path.stat().st_size, "fp")
    return load_document(f, path.read_bytes(), LoadingConfig())


def model_tokens(text: str) -> int:
    """Tokens as the model reads the text, [CLS] and [SEP] included."""
    return len(load_tokenizer(MODEL)(text, add_special_tokens=True)["input_ids"])


def assert_true_spans(doc: Document, chunks: list[Chunk]) -> None:
    """The documented relation: a chunk's text is the document text at its offsets."""
    text, spans = document_text(doc.elements)
    assert chunks
    for i, c in enumerate(chunks):
        m = c.metadata
        assert text[m.start : m.end] == c.text
        assert m.position == i
        assert m.source_id == doc.source_id and m.file_type == doc.file_type
        inside = {s.element.category for s in spans if s.start < m.end and s.end > m.start}
        assert set(m.element_types) == inside
    assert len({c.id for c in chunks}) == len(chunks)


def test_token_windows_fit_the_model_and_start_on_words() -> None:
    doc = load("it/security-faq.txt")
    chunks = create_chunker(TokenChunking(chunk_overlap=20), MODEL).chunk(doc)
    assert_true_spans(doc, chunks)
    sizes = [model_tokens(c.text) for c in chunks]
    assert max(sizes) <= WINDOW  # never truncated
    assert sizes[0] >= WINDOW - 10  # the default fills the window
    text, _ = document_text(doc.elements)
    for a, b in itertools.pairwise(chunks):
        assert a.metadata.start < b.metadata.start < a.metadata.end  # they overlap
        assert b.metadata.start == 0 or not text[b.metadata.start - 1].isalnum()
    assert chunks[-1].metadata.end == len(text)  # nothing at the end is lost


def test_token_size_beyond_the_window_is_capped() -> None:
    doc = load("handbook/welcome.md")
    chunks = create_chunker(TokenChunking(chunk_size=2000, chunk_overlap=0), MODEL).chunk(doc)
    assert max(model_tokens(c.text) for c in chunks) <= WINDOW
    small = create_chunker(TokenChunking(chunk_size=64, chunk_overlap=8), MODEL).chunk(doc)
    assert max(model_tokens(c.text) for c in small) <= 64 + 2
    assert all(c.metadata.section for c in small)


def test_headers_keep_the_heading_path_of_html_and_markdown() -> None:
    html = load("engineering/oncall-runbook.html")
    chunks = create_chunker(HeadersChunking(), MODEL).chunk(html)
    assert_true_spans(html, chunks)
    by_section = {c.metadata.section: c for c in chunks}
    allowance = by_section["On-call Runbook > 1. The rotation > On-call allowance"]
    assert allowance.text.startswith("On-call allowance\n\nOn-call is paid.")
    assert "£90 for each weekend" in allowance.text
    assert "Before your shift" not in allowance.text  # the next h3 starts its own chunk
    assert by_section["On-call Runbook > 4. Escalation"].text.startswith("4. Escalation")

    # With two levels, h3 sections stay inside their h2 section.
    shallow = create_chunker(HeadersChunking(header_levels=2), MODEL).chunk(html)
    sections = {c.metadata.section for c in shallow}
    assert "On-call Runbook > 1. The rotation" in sections
    assert not any(s and s.count(" > ") >= 2 for s in sections)

    md = load("handbook/welcome.md")
    md_chunks = create_chunker(HeadersChunking(), MODEL).chunk(md)
    assert_true_spans(md, md_chunks)
    values = [
        c for c in md_chunks if c.metadata.section == "Welcome to Kestrel Cycle Works > Our values"
    ]
    assert len(values) == 1 and values[0].text.startswith("Our values\n\nWe have four values.")
    assert max(model_tokens(c.text) for c in md_chunks) <= 200 + 2


def test_headers_without_levels_fall_back_to_recursive_sections() -> None:
    pdf = load("policies/expenses.pdf")  # PDF titles carry no heading level
    headers = create_chunker(HeadersChunking(), MODEL).chunk(pdf)
    recursive = create_chunker(RecursiveChunking(), MODEL).chunk(pdf)
    assert [(c.metadata.start, c.metadata.end, c.metadata.section) for c in headers] == [
        (c.metadata.start, c.metadata.end, c.metadata.section) for c in recursive
    ]
    assert {c.id for c in headers}.isdisjoint(c.id for c in recursive)


def test_elements_by_title_follows_docx_sections() -> None:
    doc = load("policies/leave-policy.docx")
    chunks = create_chunker(ElementsChunking(max_characters=600), MODEL).chunk(doc)
    assert_true_spans(doc, chunks)
    assert max(len(c.text) for c in chunks) <= 600
    sick = [c for c in chunks if "before 10:00 on your first day" in c.text]
    assert sick and sick[0].metadata.section == "Sick leave > Telling us you are ill"
    # Chunks are made of whole elements; only an element too long for one chunk is cut.
    _, spans = document_text(doc.elements)
    starts, ends = {s.start for s in spans}, {s.end for s in spans}
    long = [s for s in spans if s.end - s.start > 600]
    for c in chunks:
        m = c.metadata
        assert m.start in starts or any(s.start < m.start < s.end for s in long)
        assert m.end in ends or any(s.start < m.end < s.end for s in long)


def test_elements_by_page_never_spans_two_pages() -> None:
    pdf = load("policies/expenses.pdf")
    chunks = create_chunker(ElementsChunking(split_by="page"), MODEL).chunk(pdf)
    assert_true_spans(pdf, chunks)
    assert all(len(c.metadata.pages) == 1 for c in chunks)
    assert sorted({c.metadata.pages[0] for c in chunks}) == [1, 2, 3, 4]
    receipts = next(c for c in chunks if "itemised receipt for every expense" in c.text)
    assert receipts.metadata.pages == (4,)
    # The recursive strategy does join pages; by page is what keeps them apart.
    recursive = create_chunker(RecursiveChunking(), MODEL).chunk(pdf)
    assert any(len(c.metadata.pages) > 1 for c in recursive)


def test_semantic_breaks_where_neighbours_drift_within_the_size(embedder: Embedder) -> None:
    doc = load("engineering/oncall-runbook.html")
    config = SemanticChunking(chunk_size=120, min_chunk_size=20)
    chunker = create_chunker(config, MODEL, embedder=embedder)
    assert isinstance(chunker, SemanticChunker)
    chunks = chunker.chunk(doc)
    assert_true_spans(doc, chunks)
    assert max(model_tokens(c.text) for c in chunks) <= 120 + 2
    assert len(chunks) >= 5

    text, spans = document_text(doc.elements)
    units = chunker.units(text, spans)
    distances = chunker.distances(text, units)
    threshold = np.percentile(distances, config.breakpoint_percentile)
    starts = [u[0] for u in units]
    tokens = [chunker._length(text[s:e]) for s, e in units]
    for prev, c in itertools.pairwise(chunks):
        i = starts.index(c.metadata.start)  # chunks begin on sentence boundaries
        first = starts.index(prev.metadata.start)
        size = sum(tokens[first:i])
        # Each break is either a drop in similarity or the size limit.
        assert distances[i - 1] > threshold or size + tokens[i] > config.chunk_size


@pytest.mark.parametrize(
    "config",
    [
        RecursiveChunking(),
        TokenChunking(),
        HeadersChunking(),
        ElementsChunking(),
        ElementsChunking(split_by="page"),
    ],
    ids=["recursive", "token", "headers", "elements-title", "elements-page"],
)
def test_offsets_are_true_and_ids_stable_on_every_format(config: ChunkingConfig) -> None:
    for rel in (
        "sales/q3-review.pptx",
        "training/bike-fitting-guide.epub",
        "announcements/office-move.eml",
    ):
        doc = load(rel)
        chunks = create_chunker(config, MODEL).chunk(doc)
        assert_true_spans(doc, chunks)
        again = create_chunker(config, MODEL).chunk(doc)
        assert [c.id for c in chunks] == [c.id for c in again]


def test_each_strategy_makes_its_own_ids() -> None:
    doc = load("it/security-faq.txt")
    configs: list[ChunkingConfig] = [
        RecursiveChunking(),
        RecursiveChunking(chunk_size=199),
        TokenChunking(),
        HeadersChunking(),
        ElementsChunking(),
        ElementsChunking(split_by="page"),
    ]
    ids = [{c.id for c in create_chunker(cfg, MODEL).chunk(doc)} for cfg in configs]
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            assert a.isdisjoint(b)
