#!/usr/bin/env python3
"""Generate the odd real-world files that tests/test_bad_input.py syncs.

Each file reproduces, from scratch, a case seen in real-world files (unstructured's
example documents, py-pdf's sample PDFs): a PDF page too complex for unstructured, a
PDF whose text all sits where headers and footers go, a broken page tree only some
readers survive, e-mails saved as UTF-16, with unreadable attachments, as a digest or
PGP-encrypted, a password-protected workbook, Office files with the wrong extension
and the old binary Office formats. Nothing is copied from those sets.

Usage: python scripts/make_odd_files.py OUT_DIR   (needs fpdf2, python-docx,
python-pptx, openpyxl and msoffcrypto-tool, all in the dev install)
"""

from __future__ import annotations

import io
import struct
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

# A phrase from each page or body part; the test finds them in what was stored.
COMPLEX_PAGES = ["Gear ratios decide the climb.", "The drawing shows the frame.", "Tyres last."]
HEADER_TEXT = "Wheel truing guide: spoke tension first"
FOOTER_TEXT = "Contact the workshop for truing stands"
BROKEN_TEXT = "The page tree of this file is broken"
UTF16_TEXT = "Saddle heights are measured from the crank axle."
ATTACHED_TEXT = "The service schedule is attached as text."
DIGEST_TEXTS = ["First digest message about brake pads.", "Second digest message about chains."]


def _pdf() -> object:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=UTC))
    pdf.set_font("helvetica", size=12)
    return pdf


def complex_pdf() -> bytes:
    """Three text pages; the middle one also carries a drawing of 12,000 strokes, which
    unstructured's ``is_pdf_too_complex`` flags, and then reads nothing of the file."""
    pdf: object = _pdf()
    for number, text in enumerate(COMPLEX_PAGES):
        pdf.add_page()  # type: ignore[attr-defined]
        pdf.multi_cell(0, 8, text + " " + "Riders shift early on steep hills. " * 6)  # type: ignore[attr-defined]
        if number == 1:
            for i in range(4000):
                x = 10 + (i % 190)
                pdf.line(x, 120, x + 0.5, 280 - (i % 150))  # type: ignore[attr-defined]
    return bytes(pdf.output())  # type: ignore[attr-defined]


def header_footer_pdf() -> bytes:
    """A page whose only text is a line at its top and one at its bottom: unstructured
    classes both as page furniture (Header, Footer)."""
    pdf: object = _pdf()
    pdf.set_auto_page_break(False)  # type: ignore[attr-defined]
    pdf.add_page()  # type: ignore[attr-defined]
    pdf.set_xy(10, 5)  # type: ignore[attr-defined]
    pdf.cell(0, 6, HEADER_TEXT)  # type: ignore[attr-defined]
    pdf.set_xy(10, 287)  # type: ignore[attr-defined]
    pdf.cell(0, 6, FOOTER_TEXT)  # type: ignore[attr-defined]
    return bytes(pdf.output())  # type: ignore[attr-defined]


def broken_pages_pdf() -> bytes:
    """A PDF whose catalog points /Pages at an object that does not exist: pypdf refuses
    it ("Invalid object in /Pages"); pdfminer and pdfium find the pages anyway."""
    pdf: object = _pdf()
    pdf.add_page()  # type: ignore[attr-defined]
    pdf.multi_cell(0, 8, BROKEN_TEXT + ". Readers that scan for page objects still read it.")  # type: ignore[attr-defined]
    data = bytes(pdf.output())  # type: ignore[attr-defined]
    start = data.rindex(b" obj", 0, data.index(b"/Type /Catalog"))
    pages = data.index(b"/Pages ", start) + len(b"/Pages ")
    ref = data[pages : data.index(b" 0 R", pages)]
    return data[:pages] + b"9" * len(ref) + data[pages + len(ref) :]


def utf16_eml() -> bytes:
    """An e-mail saved as UTF-16 (little-endian, no byte-order mark)."""
    msg = EmailMessage()
    msg["From"] = "fitter@example.com"
    msg["To"] = "staff@example.com"
    msg["Subject"] = "Saddle heights"
    msg.set_content(UTF16_TEXT + "\n\nAsk a fitter if unsure.\n")
    return msg.as_string().encode("utf-16-le")


def attachments_eml() -> bytes:
    """A text body with three attachments: a picture, a voice memo, a text file."""
    msg = EmailMessage()
    msg["From"] = "workshop@example.com"
    msg["To"] = "staff@example.com"
    msg["Subject"] = "Service schedule"
    msg.set_content("Hello all,\n\n" + ATTACHED_TEXT + "\n")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n" + bytes(64), "image", "png", filename="photo.png")
    msg.add_attachment(b"ID3" + bytes(128), "audio", "mpeg", filename="memo.mp3")
    msg.add_attachment(
        b"Monday: brakes. Tuesday: gears.\n", "text", "plain", filename="schedule.txt"
    )
    return msg.as_bytes()


def digest_eml() -> bytes:
    """A multipart/digest: two whole messages, no body of its own."""
    digest = MIMEMultipart("digest")
    digest["From"] = "list@example.com"
    digest["To"] = "staff@example.com"
    digest["Subject"] = "Workshop list digest"
    for i, text in enumerate(DIGEST_TEXTS):
        inner = EmailMessage()
        inner["From"] = f"member{i}@example.com"
        inner["Subject"] = f"Digest item {i + 1}"
        inner.set_content(text + "\n")
        part = EmailMessage()
        part.set_content(inner)
        digest.attach(part)
    return digest.as_bytes()


def pgp_eml() -> bytes:
    """A PGP/MIME encrypted message (RFC 3156): a "Version: 1" part and the ciphertext."""
    msg = MIMEMultipart("encrypted", protocol="application/pgp-encrypted")
    msg["From"] = "secret@example.com"
    msg["To"] = "staff@example.com"
    msg["Subject"] = "Encrypted"
    control = MIMEText("Version: 1\n", "plain")
    control.replace_header("Content-Type", "application/pgp-encrypted")
    body = MIMEText(
        "-----BEGIN PGP MESSAGE-----\n\nhQEMA0f3yGh3nWzgAQf/c2VjcmV0\n=abcd\n"
        "-----END PGP MESSAGE-----\n",
        "plain",
    )
    body.replace_header("Content-Type", 'application/octet-stream; name="encrypted.asc"')
    msg.attach(control)
    msg.attach(body)
    return msg.as_bytes()


def workbook() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["part", "stock"])  # type: ignore[union-attr]
    sheet.append(["brake pad", 40])  # type: ignore[union-attr]
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def encrypted_xlsx() -> bytes:
    """A password-protected workbook: Office wraps it in an OLE2 file whose
    EncryptedPackage stream holds the encrypted ZIP."""
    import msoffcrypto.format.ooxml as ooxml

    out = io.BytesIO()
    ooxml.OOXMLFile(io.BytesIO(workbook())).encrypt("s3cret", out)
    return out.getvalue()


def docx() -> bytes:
    from docx import Document

    document = Document()
    document.add_paragraph("A Word document saved with the wrong extension.")
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def pptx() -> bytes:
    from pptx import Presentation

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "A deck saved with the wrong extension"  # type: ignore[union-attr]
    buf = io.BytesIO()
    deck.save(buf)
    return buf.getvalue()


# -- OLE2 (Compound File Binary) containers, for the old binary Office formats ----------
_FREE, _END, _FATSECT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD


def ole(streams: dict[str, bytes]) -> bytes:
    """A minimal CFB v3 file holding `streams` in the root storage. Streams are padded to
    4,096 bytes so that all live in regular sectors (no mini stream)."""
    padded = [(name, data.ljust(4096, b"\0")) for name, data in streams.items()]
    entries = len(padded) + 1
    dir_sectors = -(-entries * 128 // 512)
    data_sectors = [len(d) // 512 for _, d in padded]
    total = 1 + dir_sectors + sum(data_sectors)  # FAT, directory, streams
    assert total <= 128, "one FAT sector holds 128 entries"
    fat = [_FATSECT]
    chains = [(1, dir_sectors)]
    next_sector = 1 + dir_sectors
    for count in data_sectors:
        chains.append((next_sector, count))
        next_sector += count
    for start, count in chains:
        fat += [start + i + 1 for i in range(count - 1)] + [_END]
    fat += [_FREE] * (128 - len(fat))

    def entry(name: str, kind: int, child: int, right: int, start: int, size: int) -> bytes:
        raw = name.encode("utf-16-le") + b"\0\0"
        return (
            raw.ljust(64, b"\0")
            + struct.pack("<HBB", len(raw), kind, 1)  # name length, type, black
            + struct.pack("<iii", -1, right, child)  # left, right, child
            + bytes(16 + 4 + 16)  # class id, state bits, times
            + struct.pack("<IIi", start, size, 0)
        )

    directory = entry("Root Entry", 5, 1 if padded else -1, -1, _END, 0)
    for i, ((name, body), (start, _)) in enumerate(zip(padded, chains[1:], strict=True), 1):
        directory += entry(name, 2, -1, i + 1 if i < len(padded) else -1, start, len(body))
    directory = directory.ljust(dir_sectors * 512, b"\0")
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + bytes(16)
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + bytes(6)
        + struct.pack("<IIII", 0, 1, 1, 0)  # directory sectors (v3: 0), FAT sectors, first dir
        + struct.pack("<IIIII", 4096, _END, 0, _END, 0)  # cutoff, mini FAT, DIFAT
        + struct.pack("<I", 0)
        + struct.pack("<I", _FREE) * 108
    )
    body = b"".join(struct.pack("<I", v) for v in fat) + directory
    return header + body + b"".join(d for _, d in padded)


def old_word() -> bytes:
    return ole({"WordDocument": struct.pack("<HH", 0xA5EC, 0xC1) + bytes(8), "1Table": b""})


def old_powerpoint() -> bytes:
    return ole({"PowerPoint Document": b"\0" * 16, "Current User": b""})


def encrypted_msg() -> bytes:
    """An Outlook message encrypted with S/MIME: its message class says so."""
    prop = "__substg1.0_001A001F"
    return ole(
        {
            "__properties_version1.0": bytes(32),
            prop: "IPM.Note.SMIME".encode("utf-16-le"),
        }
    )


FILES: dict[str, Callable[[], bytes]] = {
    "complex-page.pdf": complex_pdf,
    "header-footer.pdf": header_footer_pdf,
    "broken-pages.pdf": broken_pages_pdf,
    "utf16.eml": utf16_eml,
    "attachments.eml": attachments_eml,
    "digest.eml": digest_eml,
    "pgp.eml": pgp_eml,
    "encrypted.xlsx": encrypted_xlsx,
    "encrypted.msg": encrypted_msg,
    "word.doc": docx,
    "deck.ppt": pptx,
    "old-word.doc": old_word,
    "old-slides.ppt": old_powerpoint,
}


def make(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in FILES.items():
        (out / name).write_bytes(build())
        written.append(out / name)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for path in make(Path(sys.argv[1])):
        print(path)
