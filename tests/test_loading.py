"""Loading real documents of every supported type, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headwater.ingest.config import LoadingConfig
from headwater.ingest.errors import LoadError
from headwater.ingest.loading import load_document
from headwater.ingest.models import SourceFile

from .conftest import FIXTURES, SAMPLE_DOCS

QUERIES = json.loads((FIXTURES / "sample_queries.json").read_text())
# One phrase known to be in each document: the loader must find it.
PHRASES = {q["expected_source"]: q["answer_contains"] for q in reversed(QUERIES)}


def source_file(path: Path, root: Path = SAMPLE_DOCS) -> SourceFile:
    rel = path.relative_to(root).as_posix()
    return SourceFile("docs", rel, str(path), path.stat().st_size, "fp")


def load(path: Path, root: Path = SAMPLE_DOCS, **config: object):  # type: ignore[no-untyped-def]
    return load_document(source_file(path, root), path.read_bytes(), LoadingConfig(**config))


def normalized(text: str) -> str:
    return " ".join(text.split())


def test_every_file_type_is_covered_by_sample_docs() -> None:
    kinds = {p.suffix for p in SAMPLE_DOCS.rglob("*") if p.is_file()}
    expected = {
        ".pdf",
        ".docx",
        ".pptx",
        ".xlsx",
        ".html",
        ".md",
        ".txt",
        ".eml",
        ".epub",
        ".odt",
        ".rtf",
    }
    assert expected <= kinds


@pytest.mark.parametrize("rel", sorted(PHRASES), ids=lambda r: Path(r).suffix)
def test_each_type_yields_its_text(rel: str) -> None:
    doc = load(SAMPLE_DOCS / rel)
    text = normalized(" ".join(e.text for e in doc.elements))
    assert normalized(PHRASES[rel]) in text
    assert doc.file_type == Path(rel).suffix.lstrip(".")


def test_text_pdf_yields_text_with_pages_offline() -> None:
    # The spaCy trap: without a resolvable en_core_web_sm, unstructured silently
    # returns zero elements for PDFs on a machine with no internet.
    doc = load(SAMPLE_DOCS / "policies/expenses.pdf")
    pages = {e.page for e in doc.elements}
    assert pages == {1, 2, 3, 4}
    text = " ".join(e.text for e in doc.elements if e.page == 4)
    assert "receipt" in text.lower()
    assert len(" ".join(e.text for e in doc.elements)) > 3000


def test_empty_file_fails_with_reason(tmp_path: Path) -> None:
    f = tmp_path / "empty.pdf"
    f.write_bytes(b"")
    with pytest.raises(LoadError, match="empty"):
        load(f, tmp_path)


def test_unsupported_type_fails_with_reason(tmp_path: Path) -> None:
    f = tmp_path / "photo.heic"
    f.write_bytes(b"\x00\x01")
    with pytest.raises(LoadError, match=r"unsupported file type '\.heic'") as exc:
        load(f, tmp_path)
    assert exc.value.path == "photo.heic"


def test_corrupt_pdf_fails_with_reason(tmp_path: Path) -> None:
    f = tmp_path / "broken.pdf"
    f.write_bytes((SAMPLE_DOCS / "policies/expenses.pdf").read_bytes()[:300])
    with pytest.raises(LoadError) as exc:
        load(f, tmp_path)
    assert exc.value.path == "broken.pdf"
    assert exc.value.reason


def test_pdf_without_text_layer_is_a_failure_not_an_empty_document(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 50)  # a drawing, no text
    f = tmp_path / "scan.pdf"
    pdf.output(str(f))
    with pytest.raises(LoadError, match="no text could be extracted"):
        load(f, tmp_path)


def test_file_over_size_limit_is_not_parsed(tmp_path: Path) -> None:
    f = tmp_path / "big.txt"
    f.write_text("word " * 300_000)
    with pytest.raises(LoadError, match=r"over loading\.max_file_mb=1"):
        load(f, tmp_path, max_file_mb=1)
