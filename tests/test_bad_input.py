"""Real malformed files through one `headwater sync`: each is reported with its reason,
the good files go through, and a file that turns bad keeps its last good chunks.

The test writes docs/bad-input.md from what the report said (HEADWATER_WRITE_DOCS=1), and
otherwise checks that the committed table is what this run produced.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, SAMPLE_DOCS
from .odd_files import odd

DOC = ROOT / "docs" / "bad-input.md"
HEADWATER = Path(sys.executable).parent / "headwater"
# Root reads files whatever their mode; without these two capabilities it cannot.
SETPRIV = shutil.which("setpriv")
DROP_ROOT_READ = [SETPRIV, "--bounding-set", "-dac_override,-dac_read_search"] if SETPRIV else []
HAS_OCR = shutil.which("tesseract") is not None
HAS_SOFFICE = shutil.which("soffice") is not None


@dataclass(frozen=True)
class Case:
    case: str
    file: str
    expect: str
    """A phrase the report's reason must contain; for ingested files, text the store holds."""
    ingested: bool = False
    warned: tuple[str, ...] = ()
    """Names the report's warnings must carry for an ingested file (skipped attachments)."""


CASES = [
    Case("password-protected PDF", "protected.pdf", "password-protected"),
    Case("truncated PDF", "truncated.pdf", "truncated or corrupt"),
    Case("corrupt PDF (garbage after the header)", "corrupt.pdf", "PDF is corrupt"),
    Case("zero-byte file", "empty.txt", "empty (0 bytes)"),
    Case("PDF without a text layer, OCR off", "scan.pdf", "no text layer"),
    Case("extension lies: a PDF named .docx", "report.docx", "content is a PDF"),
    Case("extension lies: binary bytes named .txt", "binary.txt", "content is binary"),
    Case("extension lies: a PowerPoint named .docx", "slides.docx", "content is a PowerPoint"),
    Case("unsupported type", "drawing.xyz", "unsupported file type '.xyz'"),
    Case("over the size limit (max_file_mb = 5)", "big.txt", "over loading.max_file_mb=5"),
    Case("zip bomb disguised as DOCX", "bomb.docx", "zip bomb"),
    Case("deeply nested HTML (5,000 levels)", "deep.html", "nests elements 5002 deep"),
    Case("huge HTML (parser runs past timeout_s = 20)", "huge.html", "longer than 20 s"),
    Case("broken symbolic link", "dangling.md", "broken symbolic link"),
    Case("symbolic link loop", "loop.md", "symbolic link loop"),
    Case("symbolic link leaving the source folder", "escape.txt", "leads outside the source"),
    Case("unreadable file (mode 000)", "locked.md", "permission denied"),
    Case("file that changes while being read", "growing.txt", "changed while being read"),
    Case("named pipe (FIFO)", "pipe.txt", "named pipe"),
    Case("file that turns bad (was a good DOCX)", "turns-bad.docx", "stale"),
    Case("Windows-1252 text", "cp1252.txt", "Café naïve “quoted” résumé", ingested=True),
    Case("Latin-1 Markdown", "latin1.md", "Grüße aus Köln", ingested=True),
    Case("Shift-JIS text", "shift-jis.txt", "東京都の会社の規則", ingested=True),
    Case(
        "UTF-16 text without a byte-order mark",
        "utf16-no-bom.txt",
        "saved as UTF-16 without a mark",
        ingested=True,
    ),
    Case("text that turns into NUL bytes after 8 KB", "mostly-nul.txt", "NUL or other control"),
    # Cases seen in real-world files; scripts/make_odd_files.py makes them.
    Case(
        "PDF with one page too complex for unstructured (12,000 strokes)",
        "complex-page.pdf",
        odd.COMPLEX_PAGES[1],
        ingested=True,
    ),
    Case(
        "PDF whose only text sits where headers and footers go",
        "header-footer.pdf",
        odd.HEADER_TEXT,
        ingested=True,
    ),
    Case(
        "PDF with a broken page tree (pypdf: “Invalid object in /Pages”)",
        "broken-pages.pdf",
        odd.BROKEN_TEXT,
        ingested=True,
    ),
    Case("e-mail saved as UTF-16 without a BOM", "utf16.eml", odd.UTF16_TEXT, ingested=True),
    Case(
        "e-mail with a picture, a voice memo and a text file attached",
        "attachments.eml",
        odd.ATTACHED_TEXT,
        ingested=True,
        warned=("photo.png", "memo.mp3"),
    ),
    Case("multipart digest of two e-mails", "digest.eml", odd.DIGEST_TEXTS[1], ingested=True),
    Case("PGP-encrypted e-mail", "pgp.eml", "encrypted (PGP)"),
    Case("password-protected workbook", "encrypted.xlsx", "password-protected Office document"),
    Case("S/MIME-encrypted Outlook message", "encrypted.msg", "encrypted (S/MIME)"),
    Case("extension lies: a DOCX named .doc", "word.doc", "Word document (.docx); rename it"),
    Case("extension lies: a PPTX named .ppt", "deck.ppt", "PowerPoint deck (.pptx); rename it"),
    Case(
        "old binary Word file (.doc), no LibreOffice",
        "old-word.doc",
        "LibreOffice" if not HAS_SOFFICE else ".doc",
    ),
    Case(
        "old binary PowerPoint file (.ppt), no LibreOffice",
        "old-slides.ppt",
        "LibreOffice" if not HAS_SOFFICE else ".ppt",
    ),
]
OCR_CASE = Case("PDF without a text layer, OCR on", "scan.pdf", "lifetime warranty", ingested=True)


def scan_pdf() -> bytes:
    """A PDF page that is only a picture of text, as a scanner makes."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("L", (1700, 500), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=56)
    for i, line in enumerate(
        ["The scanned warranty card says", "frames carry a lifetime warranty."]
    ):
        draw.text((60, 60 + i * 120), line, fill=0, font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    pdf = FPDF()
    pdf.add_page()
    pdf.image(buf, x=10, y=10, w=190)
    return bytes(pdf.output())


def protected_pdf(source: Path) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(source).pages:
        writer.add_page(page)
    writer.encrypt(user_password="s3cret", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def zip_bomb(path: Path) -> None:
    """A DOCX whose document.xml expands to 1.2 GB (a 1.2 MB file)."""
    zeros = b"\0" * 2**20
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            for _ in range(1200):
                f.write(zeros)


def make_corpus(docs: Path, outside: Path) -> None:
    pdf = (SAMPLE_DOCS / "policies/expenses.pdf").read_bytes()
    (docs / "good.md").write_text("# Good\n\nA perfectly ordinary note about bicycles.\n")
    shutil.copy(SAMPLE_DOCS / "policies/expenses.pdf", docs / "good.pdf")
    (docs / "protected.pdf").write_bytes(protected_pdf(SAMPLE_DOCS / "policies/expenses.pdf"))
    (docs / "truncated.pdf").write_bytes(pdf[: len(pdf) // 2])
    (docs / "corrupt.pdf").write_bytes(
        b"%PDF-1.7\n" + random.Random(7).randbytes(4000) + b"\n%%EOF\n"
    )
    (docs / "empty.txt").write_bytes(b"")
    (docs / "scan.pdf").write_bytes(scan_pdf())
    (docs / "report.docx").write_bytes(pdf)
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 8)
    shutil.copy(SAMPLE_DOCS / "sales/q3-review.pptx", docs / "slides.docx")
    (docs / "drawing.xyz").write_text("not a document type Headwater knows")
    (docs / "big.txt").write_text("word " * 1_200_000)
    zip_bomb(docs / "bomb.docx")
    (docs / "deep.html").write_text(
        "<html><body>" + "<div>" * 5000 + "deep" + "</div>" * 5000 + "</body></html>"
    )
    (docs / "huge.html").write_text(
        "<html><body>"
        + "".join(f"<p>paragraph {i} with a few words in it</p>" for i in range(100_000))
        + "</body></html>"
    )
    (docs / "dangling.md").symlink_to("missing.md")
    (docs / "loop.md").symlink_to("loop.md")
    (outside / "secret.txt").write_text("outside the source folder")
    (docs / "escape.txt").symlink_to(outside / "secret.txt")
    (docs / "locked.md").write_text("# Locked\n\nNobody may read this.\n")
    (docs / "locked.md").chmod(0)
    (docs / "growing.txt").write_text("a log file that is still being written\n")
    os.mkfifo(docs / "pipe.txt")
    (docs / "cp1252.txt").write_bytes(
        "Café naïve “quoted” résumé — a note in Windows-1252.".encode("cp1252")
    )
    (docs / "latin1.md").write_bytes("# Grüße\n\nGrüße aus Köln, façade.".encode("latin-1"))
    (docs / "shift-jis.txt").write_bytes(
        "日本語のテキストです。東京都の会社の規則。".encode("shift_jis")
    )
    (docs / "utf16-no-bom.txt").write_bytes(
        "A note from Windows, saved as UTF-16 without a mark.".encode("utf-16-le")
    )
    (docs / "mostly-nul.txt").write_bytes(b"A short line of text.\n" * 400 + b"\0" * 100_000)
    odd.make(docs)


def write_config(tmp_path: Path, docs: Path, **loading: Any) -> Path:
    lines = [
        "[[sources]]",
        'name = "docs"',
        f'path = "{docs}"',
        "[loading]",
        "max_file_mb = 5",
        "timeout_s = 20",
        *(f"{k} = {json.dumps(v)}" for k, v in loading.items()),
        "[embedding]",
        'device = "cpu"',
        "[state]",
        f'dir = "{tmp_path / "state"}"',
    ]
    cfg = tmp_path / "headwater.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def sync(cfg: Path, *, drop_root: bool = False) -> dict[str, Any]:
    cmd = [*(DROP_ROOT_READ if drop_root else []), str(HEADWATER), "sync", "--json", "-c", str(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.stdout, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def stored_texts(cfg: Path) -> dict[str, str]:
    from headwater.compose import build_store
    from headwater.config import load_config

    texts: dict[str, str] = {}
    with build_store(load_config(cfg)) as store:
        for batch in store.scan():
            for r in batch:
                texts[r.chunk.metadata.path] = texts.get(r.chunk.metadata.path, "") + r.chunk.text
    return texts


def keep_growing(path: Path, stop: threading.Event) -> None:
    with path.open("a") as f:
        while not stop.wait(0.005):
            f.write("another line\n")
            f.flush()


@pytest.mark.slow
def test_every_bad_input_is_reported_with_its_reason(tmp_path: Path) -> None:
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    docs.mkdir()
    outside.mkdir()
    cfg = write_config(tmp_path, docs)
    # A good DOCX first, so that it can turn bad below.
    shutil.copy(SAMPLE_DOCS / "policies/leave-policy.docx", docs / "turns-bad.docx")
    first = sync(cfg)
    assert first["ok"], first
    kept = stored_texts(cfg)["turns-bad.docx"]

    make_corpus(docs, outside)
    (docs / "turns-bad.docx").write_bytes((docs / "turns-bad.docx").read_bytes()[:5000])
    stop = threading.Event()
    writer = threading.Thread(target=keep_growing, args=(docs / "growing.txt", stop))
    writer.start()
    try:
        report = sync(cfg, drop_root=os.geteuid() == 0)
    finally:
        stop.set()
        writer.join()

    assert not report["ok"]
    failures = {f["path"].removeprefix("docs:"): f for f in report["failures"]}
    per_file = {f["path"]: f for f in report["per_file"]}
    texts = stored_texts(cfg)
    rows = []
    for c in CASES:
        if c.ingested:
            assert per_file[c.file]["status"] == "added", per_file.get(c.file)
            assert c.expect in " ".join(texts[c.file].split()), texts.get(c.file)
            outcome = f"ingested; the stored text reads “{c.expect}”"
            warned = per_file[c.file].get("warnings", [])
            assert [w.split(" skipped")[0] for w in warned] == [
                f"attachment {name}" for name in c.warned
            ]
            assert all(f"docs:{c.file}: {w}" in report["warnings"] for w in warned)
            outcome += "".join(f"; warning: {w}" for w in warned)
        else:
            reason = failures[c.file]["reason"]
            if c.expect == "stale":
                assert failures[c.file]["stale"] is True
                assert texts["turns-bad.docx"] == kept  # its last good chunks stay
                reason += f" — **stale**: its last good {per_file[c.file]['chunks']} chunks stay in the store"
            else:
                assert c.expect in reason, (c.file, reason)
            outcome = reason.replace(str(tmp_path), "<tmp>")
        rows.append((c.case, c.file, outcome))
    assert set(failures) == {c.file for c in CASES if not c.ingested}
    assert {"good.md", "good.pdf"} <= {p for p, f in per_file.items() if f["status"] == "added"}

    # Checked by test_a_scan_is_read_through_tesseract_with_ocr_on.
    rows.insert(
        5,
        (
            OCR_CASE.case,
            OCR_CASE.file,
            f"ingested through Tesseract; the stored text reads “{OCR_CASE.expect}”",
        ),
    )

    table = render(rows)
    if os.environ.get("HEADWATER_WRITE_DOCS") == "1":
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(table)
    committed = DOC.read_text() if DOC.exists() else ""
    if not HAS_SOFFICE:  # the table shows a machine without LibreOffice
        assert committed == table, "docs/bad-input.md is stale: rerun with HEADWATER_WRITE_DOCS=1"


@pytest.mark.skipif(
    not HAS_OCR,
    reason="tesseract is not installed (Debian: tesseract-ocr)",
)
def test_a_scan_is_read_through_tesseract_with_ocr_on(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scan.pdf").write_bytes(scan_pdf())
    (tmp_path / "ocr").mkdir()
    cfg = write_config(tmp_path / "ocr", docs, ocr=True)
    report = sync(cfg)
    assert report["ok"], report
    assert OCR_CASE.expect in stored_texts(cfg)["scan.pdf"]


def render(rows: list[tuple[str, str, str]]) -> str:
    out = [
        "# Bad input: what `headwater sync` reports",
        "",
        "Every row is a real file that `tests/test_bad_input.py` generates and syncs, in one",
        "run together with good files (which go through). The reason is the report's own",
        "text (`headwater sync --json`, `failures[].reason`), with the test's temporary folder",
        "shown as `<tmp>`. The run uses `loading.max_file_mb = 5` and `loading.timeout_s = 20`",
        "and the default worker pool; it runs without the capabilities that let root read any",
        "file, so mode 000 means unreadable. Regenerate with",
        "`HEADWATER_WRITE_DOCS=1 .venv/bin/pytest tests/test_bad_input.py`. The rows after",
        "Shift-JIS come from `scripts/make_odd_files.py`, which builds each case seen in",
        "real-world files from scratch; the machine that wrote this table has no LibreOffice.",
        "",
        "| case | file | what the report says |",
        "|---|---|---|",
    ]
    for case, file, outcome in rows:
        cell = outcome.replace("|", "\\|")
        out.append(f"| {case} | `{file}` | {cell} |")
    out.append("")
    return "\n".join(out)
