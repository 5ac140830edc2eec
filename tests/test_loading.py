"""Loading real documents of every supported type, offline."""

from __future__ import annotations

import codecs
import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from headwater.ingest.config import LoadingConfig
from headwater.ingest.errors import LoadError
from headwater.ingest.loading import load_document, page_furniture
from headwater.ingest.models import Document, SourceFile

from .conftest import FIXTURES, SAMPLE_DOCS
from .odd_files import odd

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


# -- odd real-world files (scripts/make_odd_files.py) ------------------------------------


def load_bytes(name: str, data: bytes, tmp_path: Path) -> Document:
    f = tmp_path / name
    f.write_bytes(data)
    return load(f, tmp_path)


def text_of(doc: Document) -> str:
    return normalized(" ".join(e.text for e in doc.elements))


def test_a_too_complex_page_is_read_by_pdfium_and_the_rest_by_pdfminer(tmp_path: Path) -> None:
    # unstructured returns nothing at all for a file with one such page.
    doc = load_bytes("complex.pdf", odd.complex_pdf(), tmp_path)
    for page, phrase in enumerate(odd.COMPLEX_PAGES, 1):
        assert phrase in " ".join(e.text for e in doc.elements if e.page == page)


def test_text_in_header_and_footer_positions_is_kept_when_it_is_all_there_is(
    tmp_path: Path,
) -> None:
    doc = load_bytes("edges.pdf", odd.header_footer_pdf(), tmp_path)
    assert odd.HEADER_TEXT in text_of(doc) and odd.FOOTER_TEXT in text_of(doc)


def test_running_headers_and_page_numbers_are_left_out() -> None:
    doc = load(SAMPLE_DOCS / "policies/expenses.pdf")
    texts = [e.text for e in doc.elements]
    assert not any(t.startswith("Page ") and " of 4" in t for t in texts)
    assert "Kestrel Cycle Works - Travel and Expense Policy" not in texts


@pytest.mark.parametrize(
    ("items", "dropped"),
    [
        # A running header and page footers repeat: furniture.
        (
            [
                ("Acme", "Header", 1),
                ("Body", "NarrativeText", 1),
                ("Page 1", "Footer", 1),
                ("Acme", "Header", 2),
                ("Body two", "NarrativeText", 2),
                ("Page 2", "Footer", 2),
            ],
            {0, 2, 3, 5},
        ),
        # A one-off line at a page's top is content.
        ([("Title of the report", "Header", 1), ("Body", "NarrativeText", 1)], set()),
        # Page numbers go even when alone on their page.
        ([("Body", "NarrativeText", 1), ("7", "PageNumber", 1)], {1}),
        # A lone page number in a header position, with body text beside it.
        ([("3", "Header", 1), ("Body", "NarrativeText", 1)], {0}),
        # Never all of a file's text.
        ([("Acme", "Header", 1), ("Acme", "Header", 2)], set()),
        ([("12", "PageNumber", 1)], set()),
    ],
)
def test_page_furniture(items: list[tuple[str, str, int | None]], dropped: set[int]) -> None:
    assert page_furniture(items) == dropped


def test_a_pdf_with_a_broken_page_tree_is_read_by_pdfminer(tmp_path: Path) -> None:
    # pypdf refuses it ("Invalid object in /Pages"), pdfium cannot open it.
    doc = load_bytes("broken.pdf", odd.broken_pages_pdf(), tmp_path)
    assert odd.BROKEN_TEXT in text_of(doc)


def test_a_utf16_email_is_read_as_text(tmp_path: Path) -> None:
    doc = load_bytes("utf16.eml", odd.utf16_eml(), tmp_path)
    assert odd.UTF16_TEXT in text_of(doc)
    assert "\x00" not in text_of(doc) and "Content-Type" not in text_of(doc)
    bom = codecs.BOM_UTF16_BE + odd.utf16_eml().decode("utf-16-le").encode("utf-16-be")
    assert odd.UTF16_TEXT in text_of(load_bytes("bom.eml", bom, tmp_path))


def test_unreadable_attachments_are_skipped_and_named(tmp_path: Path) -> None:
    doc = load_bytes("mail.eml", odd.attachments_eml(), tmp_path)
    assert odd.ATTACHED_TEXT in text_of(doc)
    assert "Monday: brakes" in text_of(doc)  # the text attachment is read
    assert [w.split(" skipped")[0] for w in doc.warnings] == [
        "attachment photo.png",
        "attachment memo.mp3",
    ]


def test_a_digest_yields_every_message(tmp_path: Path) -> None:
    doc = load_bytes("digest.eml", odd.digest_eml(), tmp_path)
    for phrase in odd.DIGEST_TEXTS:
        assert phrase in text_of(doc)


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("pgp.eml", odd.pgp_eml, "encrypted (PGP)"),
        ("book.xlsx", odd.encrypted_xlsx, "encrypted: the content is a password-protected"),
        ("mail.msg", odd.encrypted_msg, "encrypted (S/MIME)"),
        ("report.doc", odd.docx, "content is a Word document (.docx); rename it to .docx"),
        ("deck.ppt", odd.pptx, "content is a PowerPoint deck (.pptx); rename it to .pptx"),
        ("deck.key", odd.pptx, "content is a PowerPoint deck (.pptx); rename it to .pptx"),
        ("book.docx", odd.workbook, "content is an Excel workbook (.xlsx); rename it to .xlsx"),
        ("notes.docx", odd.old_word, "content is an old Word document (.doc); rename it to .doc"),
    ],
)
def test_failure_reasons_name_the_real_kind(
    name: str, make: Callable[[], bytes], reason: str, tmp_path: Path
) -> None:
    with pytest.raises(LoadError) as exc:
        load_bytes(name, make(), tmp_path)
    assert reason in exc.value.reason


def test_smime_email_is_refused_as_encrypted(tmp_path: Path) -> None:
    mail = (
        b"From: a@example.com\nSubject: s\nMIME-Version: 1.0\n"
        b'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\n'
        b"Content-Transfer-Encoding: base64\n\nMIAGCSqGSIb3DQEHA6CAMIACAQAxggE=\n"
    )
    with pytest.raises(LoadError, match=r"encrypted \(S/MIME\)"):
        load_bytes("smime.eml", mail, tmp_path)


@pytest.mark.skipif(shutil.which("soffice") is not None, reason="LibreOffice is installed")
@pytest.mark.parametrize(("name", "make"), [("a.doc", odd.old_word), ("a.ppt", odd.old_powerpoint)])
def test_old_office_files_name_libreoffice(
    name: str, make: Callable[[], bytes], tmp_path: Path
) -> None:
    with pytest.raises(LoadError, match="LibreOffice, whose `soffice` program is not installed"):
        load_bytes(name, make(), tmp_path)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(32), "images are not read"),
        ("book.xls", b"\xd0\xcf\x11\xe0", "save it as .xlsx"),
        ("song.mp3", b"ID3" + bytes(32), "audio is not transcribed"),
        ("thing.xyz", b"plain words", "unsupported file type '.xyz'"),
        ("scan.jpg", (SAMPLE_DOCS / "policies/expenses.pdf").read_bytes(), "rename it to .pdf"),
    ],
)
def test_unsupported_types_say_what_would_read_them(
    name: str, data: bytes, reason: str, tmp_path: Path
) -> None:
    with pytest.raises(LoadError) as exc:
        load_bytes(name, data, tmp_path)
    assert reason in exc.value.reason


def test_a_signed_email_with_a_pdf_attached_yields_both_texts(tmp_path: Path) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["Subject"] = "a@example.com", "Expenses"
    msg.set_content("The expense policy is attached.\n")
    pdf = (SAMPLE_DOCS / "policies/expenses.pdf").read_bytes()
    msg.add_attachment(pdf, "application", "pdf", filename="expenses.pdf")
    msg.add_attachment(b"-----BEGIN PGP SIGNATURE-----\n", "application", "pgp-signature")
    doc = load_bytes("signed.eml", msg.as_bytes(), tmp_path)
    assert "The expense policy is attached." in text_of(doc)
    assert "receipt" in text_of(doc).lower()  # from the PDF, read by Headwater's PDF path
    assert doc.warnings == ()


def test_an_outlook_message_yields_its_body(tmp_path: Path) -> None:
    body = "Plain body of the note.".encode("utf-16-le") + b"\0\0"
    kind = "IPM.Note".encode("utf-16-le") + b"\0\0"
    props = bytes(32) + struct.pack("<IIII", 0x001A001F, 6, len(kind), 0)
    props += struct.pack("<IIII", 0x1000001F, 6, len(body), 0)
    msg = odd.ole(
        {
            "__properties_version1.0": props,
            "__substg1.0_001A001F": kind,
            "__substg1.0_1000001F": body,
        }
    )
    assert text_of(load_bytes("note.msg", msg, tmp_path)) == "Plain body of the note."
