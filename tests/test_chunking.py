"""The default chunker on real documents: sizes, metadata, offsets, stable ids."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from headwater.ingest.chunking import create_chunker
from headwater.ingest.chunking.base import document_text
from headwater.ingest.chunking.config import RecursiveChunking
from headwater.ingest.config import LoadingConfig
from headwater.ingest.embedding import load_tokenizer
from headwater.ingest.loading import load_document
from headwater.ingest.models import Document, Element, SourceFile

from .conftest import SAMPLE_DOCS

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def load(rel: str) -> Document:
    path = SAMPLE_DOCS / rel
    f = SourceFile("docs", rel, str(path), path.stat().st_size, "fp")
    return load_document(f, path.read_bytes(), LoadingConfig())


@pytest.fixture(scope="module")
def pdf() -> Document:
    return load("policies/expenses.pdf")


def test_chunks_fit_the_model_window_and_cover_the_text(pdf: Document) -> None:
    chunker = create_chunker(RecursiveChunking(chunk_size=120, chunk_overlap=20), MODEL)
    chunks = chunker.chunk(pdf)
    tokenizer = load_tokenizer(MODEL)
    sizes = [len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) for c in chunks]
    assert max(sizes) <= 120
    assert len(chunks) >= 8
    text, _ = document_text(pdf.elements)
    for c in chunks:
        assert text[c.metadata.start : c.metadata.end] == c.text
    assert [c.metadata.position for c in chunks] == list(range(len(chunks)))
    # Every word of the document lands in some chunk.
    covered = " ".join(c.text for c in chunks)
    assert set(text.split()) <= set(covered.split())


def test_chunks_carry_pages_sections_and_types(pdf: Document) -> None:
    chunks = create_chunker(RecursiveChunking(), MODEL).chunk(pdf)
    receipts = [c for c in chunks if "itemised receipt for every expense" in c.text]
    assert receipts, "the receipts rule must be in some chunk"
    assert receipts[0].metadata.pages == (4,)
    assert all(c.metadata.pages for c in chunks)
    assert all(c.metadata.file_type == "pdf" for c in chunks)
    assert all(c.metadata.source_id == "docs:policies/expenses.pdf" for c in chunks)
    assert any(c.metadata.section for c in chunks)
    assert all(c.metadata.element_types for c in chunks)


def test_markdown_sections_follow_headings() -> None:
    doc = load("handbook/welcome.md")
    chunks = create_chunker(RecursiveChunking(), MODEL).chunk(doc)
    titles = {e.text for e in doc.elements if e.category == "Title"}
    for c in chunks:
        assert c.metadata.section is not None
        assert c.metadata.section.split(" > ")[-1] in titles


def test_character_unit_respects_size() -> None:
    doc = load("it/security-faq.txt")
    chunks = create_chunker(
        RecursiveChunking(unit="chars", chunk_size=300, chunk_overlap=0), MODEL
    ).chunk(doc)
    assert max(len(c.text) for c in chunks) <= 300


def test_unchanged_chunks_keep_their_ids_when_another_part_changes(pdf: Document) -> None:
    chunker = create_chunker(RecursiveChunking(), MODEL)
    before = chunker.chunk(pdf)
    elements = list(pdf.elements)
    i = next(i for i, e in enumerate(elements) if "itemised receipt" in e.text)
    elements[i] = replace(elements[i], text=elements[i].text + " Scanned copies are fine.")
    after = chunker.chunk(replace(pdf, elements=elements))
    old, new = {c.id for c in before}, {c.id for c in after}
    assert len(old - new) == 1 and len(new - old) == 1
    assert len(old & new) == len(before) - 1


def test_settings_change_changes_every_id(pdf: Document) -> None:
    a = create_chunker(RecursiveChunking(), MODEL).chunk(pdf)
    b = create_chunker(RecursiveChunking(chunk_overlap=31), MODEL).chunk(pdf)
    assert not {c.id for c in a} & {c.id for c in b}


def test_repeated_text_gets_distinct_ids() -> None:
    f = SourceFile("docs", "r.txt", "r.txt", 1, "fp")
    els = [Element("Title", "Title"), Element("Same paragraph here.", "NarrativeText")] * 2
    doc = Document(f, "txt", "h", els)
    config = RecursiveChunking(unit="chars", chunk_size=40, chunk_overlap=0)
    chunks = create_chunker(config, MODEL).chunk(doc)
    assert len(chunks) == 2 and chunks[0].text == chunks[1].text
    assert chunks[0].id != chunks[1].id


def test_ids_do_not_depend_on_where_the_folder_lives(pdf: Document, tmp_path: Path) -> None:
    chunker = create_chunker(RecursiveChunking(), MODEL)
    moved = replace(pdf, file=replace(pdf.file, uri=str(tmp_path / "elsewhere.pdf")))
    assert [c.id for c in chunker.chunk(pdf)] == [c.id for c in chunker.chunk(moved)]
