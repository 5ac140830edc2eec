#!/usr/bin/env python3
"""Regenerate the binary files of the sample knowledge base in ``sample_docs/``.

``sample_docs/`` is the employee handbook of *Kestrel Cycle Works*, a fictional
bicycle maker in the fictional town of Alderbank. It is the demo and test corpus
for Headwater: one document per supported file type, each on its own topic.

The plain-text documents are hand-written and committed as they are:

    sample_docs/handbook/welcome.md              Markdown
    sample_docs/engineering/oncall-runbook.html  HTML
    sample_docs/it/security-faq.txt              plain text
    sample_docs/announcements/office-move.eml    e-mail (RFC 822)

This script builds every other file from sources that live *outside*
``sample_docs/`` (so that the pipeline does not ingest them twice):

    sample_docs/policies/leave-policy.docx       <- scripts/sample_docs_src/leave-policy.md        (pandoc)
    sample_docs/facilities/workshop-safety.odt   <- scripts/sample_docs_src/workshop-safety.md     (pandoc)
    sample_docs/training/bike-fitting-guide.epub <- scripts/sample_docs_src/bike-fitting-guide.md  (pandoc)
    sample_docs/benefits/pension-plan.rtf        <- scripts/sample_docs_src/pension-plan.md        (pandoc)
    sample_docs/policies/expenses.pdf            <- scripts/sample_docs_src/expenses.md            (fpdf2; one
                                                    section per page, split at "<!-- page -->" lines)
    sample_docs/sales/q3-review.pptx             <- SALES_SLIDES below                              (python-pptx)
    sample_docs/operations/parts-inventory.xlsx  <- PARTS / SUPPLIERS below                         (openpyxl)

Usage (from the repository root; works offline)::

    python scripts/make_sample_docs.py            # rebuild everything
    python scripts/make_sample_docs.py --check    # rebuild into a temp dir, exit 1 if any file differs

Packages needed: ``pypandoc-binary`` (bundles pandoc; DOCX, ODT, EPUB and RTF),
``fpdf2`` (PDF), ``python-pptx`` (PPTX) and ``openpyxl`` (XLSX). python-docx is
not needed.

Output is deterministic: dates and document metadata are fixed, pandoc runs with
``SOURCE_DATE_EPOCH`` set, and every ZIP-based file (DOCX, ODT, EPUB, PPTX,
XLSX) is rewritten with fixed entry timestamps, so re-running the script with
the same library versions does not change the committed files. A different
version of pandoc, fpdf2, python-pptx or openpyxl may still produce slightly
different bytes; the text content stays the same.

The questions in ``tests/fixtures/sample_queries.json`` depend on the facts in
these documents: change both together.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import io
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "scripts" / "sample_docs_src"
OUT = ROOT / "sample_docs"

# One fixed moment used for every timestamp we control.
FIXED_DATETIME = dt.datetime(2025, 3, 1, 9, 0, 0)
FIXED_ISO = "2025-03-01T09:00:00Z"
FIXED_ZIP_TIME = (2025, 3, 1, 9, 0, 0)
AUTHOR_ORG = "Kestrel Cycle Works"


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Split a simple ``---`` YAML front-matter block (``key: value`` lines only)."""
    meta: dict[str, str] = {}
    if text.startswith("---\n"):
        end = text.index("\n---\n", 4)
        for line in text[4:end].splitlines():
            if ":" in line:
                key, value = line.split(":", 1)
                meta[key.strip()] = value.strip()
        text = text[end + 5 :]
    return meta, text


def normalize_zip(path: Path) -> None:
    """Rewrite a ZIP container with fixed timestamps and fixed core-property dates.

    Entry order and per-entry compression are kept, which matters for EPUB and
    ODT: their ``mimetype`` entry must stay first and uncompressed.
    """
    with zipfile.ZipFile(path) as zin:
        entries = [(info, zin.read(info.filename)) for info in zin.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zout:
        for info, data in entries:
            if info.filename == "docProps/core.xml":
                text = data.decode("utf-8")
                for tag in ("dcterms:created", "dcterms:modified"):
                    text = re.sub(
                        rf"(<{tag}[^>]*>)[^<]*(</{tag}>)", rf"\g<1>{FIXED_ISO}\g<2>", text
                    )
                data = text.encode("utf-8")
            new = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            new.compress_type = info.compress_type
            new.external_attr = 0o644 << 16
            new.create_system = 3
            zout.writestr(new, data)
    path.write_bytes(buf.getvalue())


# --------------------------------------------------------------------------- #
# pandoc: DOCX, ODT, EPUB, RTF
# --------------------------------------------------------------------------- #
PANDOC_DOCS = [
    # (source, output, pandoc format)
    ("leave-policy.md", "policies/leave-policy.docx", "docx"),
    ("workshop-safety.md", "facilities/workshop-safety.odt", "odt"),
    ("bike-fitting-guide.md", "training/bike-fitting-guide.epub", "epub"),
    ("pension-plan.md", "benefits/pension-plan.rtf", "rtf"),
]


def build_pandoc(src_name: str, out_path: Path, fmt: str) -> None:
    import pypandoc

    # pandoc uses SOURCE_DATE_EPOCH for document dates and ZIP entry times.
    os.environ["SOURCE_DATE_EPOCH"] = str(int(FIXED_DATETIME.replace(tzinfo=dt.UTC).timestamp()))
    extra = ["--standalone"]
    if fmt == "epub":
        extra += ["--split-level=1", "--toc"]
    # RTF: no smart quotes. pandoc writes a curly apostrophe as "\\u8217'" and its own
    # RTF reader (which unstructured uses) then drops the next letter ("Kestrel's" ->
    # "Kestrel’"), so the RTF keeps straight ASCII quotes.
    pypandoc.convert_file(
        str(SRC / src_name),
        fmt,
        format="markdown-smart" if fmt == "rtf" else "markdown",
        outputfile=str(out_path),
        extra_args=extra,
    )
    if fmt in ("docx", "odt", "epub"):
        normalize_zip(out_path)


# --------------------------------------------------------------------------- #
# fpdf2: PDF with a real text layer, one section per page
# --------------------------------------------------------------------------- #
def build_pdf(src_name: str, out_path: Path) -> None:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    meta, body = split_front_matter((SRC / src_name).read_text(encoding="utf-8"))
    pages = re.split(r"^<!--\s*page\s*-->\s*$", body, flags=re.MULTILINE)
    title = meta.get("title", "Untitled")

    class PolicyPDF(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", "I", 8)
            self.set_text_color(110)
            self.cell(0, 6, f"{AUTHOR_ORG} - {title}", align="L")
            self.ln(10)
            self.set_text_color(0)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", "I", 8)
            self.set_text_color(110)
            self.cell(0, 10, f"Page {self.page_no()} of {{nb}}", align="C")
            self.set_text_color(0)

    pdf = PolicyPDF(format="A4")
    pdf.set_margins(20, 15, 20)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_title(title)
    pdf.set_author(meta.get("author", AUTHOR_ORG))
    pdf.set_subject(meta.get("subtitle", ""))
    pdf.set_creator("scripts/make_sample_docs.py")
    pdf.set_creation_date(FIXED_DATETIME.replace(tzinfo=dt.UTC))
    pdf.alias_nb_pages()

    def para(text: str, size: float = 10.5, style: str = "", indent: float = 0) -> None:
        pdf.set_font("Helvetica", style, size)
        pdf.set_x(pdf.l_margin + indent)
        # Left-aligned, not justified: justified lines made pdfminer read words out of order.
        pdf.multi_cell(
            pdf.epw - indent,
            5.5,
            text,
            markdown=True,
            align="L",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )

    def table(rows: list[list[str]]) -> None:
        pdf.set_font("Helvetica", "", 10)
        with pdf.table(line_height=6, first_row_as_headings=True) as tbl:
            for cells in rows:
                row = tbl.row()
                for cell in cells:
                    row.cell(cell.replace("**", ""))
        pdf.ln(3)

    for page_no, page in enumerate(pages, start=1):
        pdf.add_page()
        if page_no == 1:
            pdf.set_font("Helvetica", "B", 20)
            pdf.multi_cell(0, 10, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.set_font("Helvetica", "", 10)
            pdf.set_text_color(80)
            pdf.multi_cell(
                0,
                5.5,
                f"{meta.get('subtitle', '')}\nOwner: {meta.get('author', '')}\nEffective: {meta.get('date', '')}",
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
            pdf.set_text_color(0)
            pdf.ln(4)

        page = re.sub(r"<!--.*?-->", "", page, flags=re.DOTALL)
        blocks = re.split(r"\n\s*\n", page.strip())
        for block in blocks:
            lines = [ln.rstrip() for ln in block.strip().splitlines() if ln.strip()]
            if not lines:
                continue
            first = lines[0]
            if first.startswith("# "):
                pdf.ln(2)
                para(first[2:], size=15, style="B")
                pdf.ln(2)
            elif first.startswith("## "):
                pdf.ln(2)
                para(first[3:], size=12, style="B")
                pdf.ln(1)
            elif first.startswith("|"):
                rows = [
                    [c.strip() for c in ln.strip().strip("|").split("|")]
                    for ln in lines
                    if not re.fullmatch(r"\|[\s\-|:]+\|", ln.strip())
                ]
                table(rows)
            elif re.match(r"^(-|\d+\.) ", first):
                for ln in lines:
                    m = re.match(r"^(-|\d+\.) (.*)$", ln)
                    if m:
                        marker = "-" if m.group(1) == "-" else m.group(1)
                        para(f"{marker}  {m.group(2)}", indent=4)
                        pdf.ln(1.5)  # a gap between items keeps them separate list items
                    else:  # wrapped continuation line
                        para(ln.strip(), indent=9)
                pdf.ln(2)
            else:
                para(" ".join(ln.strip() for ln in lines))
                pdf.ln(2)

    if pdf.page_no() != len(pages):
        raise RuntimeError(
            f"{src_name}: expected {len(pages)} pages, got {pdf.page_no()} (a section overflowed)"
        )
    pdf.output(str(out_path))


# --------------------------------------------------------------------------- #
# python-pptx: quarterly sales review
# --------------------------------------------------------------------------- #
# Each slide: (title, bullets, table rows or None, speaker notes)
SALES_SLIDES: list[tuple[str, list[str], list[list[str]] | None, str]] = [
    (
        "Q3 2024 Sales Review",
        [
            "Kestrel Cycle Works – Sales team",
            "Presented by Sunniva Berg, Head of Sales",
            "8 October 2024",
        ],
        None,
        "Quarter covered: July, August and September 2024.",
    ),
    (
        "Q3 at a glance",
        [
            "Revenue £4.82m against a target of £4.50m – 107% of target",
            "3,120 bikes sold, up 14% on Q3 2023",
            "Gross margin 41%, up from 39%",
            "Active dealers: 212 (9 new this quarter)",
            "Online shop conversion rate 3.4% (Q2: 2.9%)",
        ],
        None,
        "Our best quarter ever by revenue. Three of four regions beat target.",
    ),
    (
        "Revenue by region",
        ["Three regions beat target; DACH missed by 9%."],
        [
            ["Region", "Q3 revenue", "Q3 target", "vs target", "vs Q3 2023"],
            ["UK & Ireland", "£2.31m", "£2.10m", "110%", "+12%"],
            ["Nordics", "£1.12m", "£0.98m", "114%", "+21%"],
            ["DACH (Germany, Austria, Switzerland)", "£0.89m", "£0.98m", "91%", "+3%"],
            ["Benelux", "£0.50m", "£0.44m", "114%", "+19%"],
            ["Total", "£4.82m", "£4.50m", "107%", "+14%"],
        ],
        "Nordics was the fastest-growing region for the second quarter running.",
    ),
    (
        "Sales by model",
        [
            "Merlin gravel bike: 1,240 units – our best seller this quarter",
            "Heron commuter: 1,180 units, steady back-to-school demand",
            "Osprey electric cargo bike: 700 units, up 38% year on year",
            "Average selling price rose to £1,545 as the Osprey mix grew",
        ],
        None,
        "Merlin overtook Heron as the best-selling model for the first time since 2022.",
    ),
    (
        "What went well",
        [
            "Nordic dealer expansion: new dealers in Bergen, Tampere and Aarhus",
            "Osprey fleet programme: Alderbank Bakeries ordered 24 Ospreys for deliveries",
            "Eurobike trade show produced 31 dealer leads, 6 already signed",
            "Fitting Studio customers convert to a purchase 72% of the time",
        ],
        None,
        "The fleet programme is the biggest new opportunity for 2025.",
    ),
    (
        "What didn't go well",
        [
            "DACH missed target by 9%: hub motor deliveries from our German motor supplier arrived six weeks late, so Osprey orders slipped into Q4",
            "Heron return rate rose to 2.1% because of a faulty batch of dynamo front lights",
            "Benelux dealer stock-outs of the 56 cm Merlin in August",
        ],
        None,
        "Supply chain has raised safety stock for hub motors; see the parts inventory.",
    ),
    (
        "Q4 2024 targets",
        ["Company target for Q4: £5.10m"],
        [
            ["Region", "Q4 target"],
            ["UK & Ireland", "£2.25m"],
            ["Nordics", "£1.20m"],
            ["DACH (Germany, Austria, Switzerland)", "£1.15m"],
            ["Benelux", "£0.50m"],
            ["Total", "£5.10m"],
        ],
        "DACH target includes the Osprey orders carried over from Q3.",
    ),
    (
        "Priorities and owners for Q4",
        [
            "Recover DACH Osprey backlog by end of November – owner: regional manager DACH",
            "Launch Christmas gift vouchers on the online shop by 15 November – owner: e-commerce",
            "Sign 10 more Osprey fleet customers – owner: Sunniva Berg",
            "Dynamo light recall follow-up with all Heron dealers – owner: customer care",
        ],
        None,
        "Next review: Q4 and full-year review, second week of January 2025.",
    ),
]


def build_pptx(out_path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches, Pt

    prs = Presentation()
    prs.slide_width, prs.slide_height = Inches(13.333), Inches(7.5)
    cp = prs.core_properties
    cp.title = "Q3 2024 Sales Review"
    cp.author = "Sunniva Berg"
    cp.last_modified_by = "Sunniva Berg"
    cp.subject = "Quarterly sales review, Kestrel Cycle Works"
    cp.created = FIXED_DATETIME
    cp.modified = FIXED_DATETIME
    cp.revision = 1

    for index, (title, bullets, rows, notes) in enumerate(SALES_SLIDES):
        if index == 0:
            slide = prs.slides.add_slide(prs.slide_layouts[0])  # title slide
            slide.shapes.title.text = title
            slide.placeholders[1].text = "\n".join(bullets)
        else:
            slide = prs.slides.add_slide(prs.slide_layouts[5] if rows else prs.slide_layouts[1])
            slide.shapes.title.text = title
            if rows:  # "title only" layout: a short text box and a table
                box = slide.shapes.add_textbox(Inches(0.7), Inches(1.5), Inches(12), Inches(0.6))
                box.text_frame.text = " ".join(bullets)
                box.text_frame.paragraphs[0].runs[0].font.size = Pt(20)
                shape = slide.shapes.add_table(
                    len(rows),
                    len(rows[0]),
                    Inches(0.7),
                    Inches(2.3),
                    Inches(12),
                    Inches(0.45 * len(rows)),
                )
                for r, row in enumerate(rows):
                    for c, value in enumerate(row):
                        shape.table.cell(r, c).text = value
            else:  # "title and content" layout
                body = slide.placeholders[1].text_frame
                body.text = bullets[0]
                for bullet in bullets[1:]:
                    body.add_paragraph().text = bullet
        slide.notes_slide.notes_text_frame.text = notes

    prs.save(str(out_path))
    normalize_zip(out_path)


# --------------------------------------------------------------------------- #
# openpyxl: parts inventory, two sheets
# --------------------------------------------------------------------------- #
PARTS_HEADER = [
    "Part number",
    "Description",
    "Used on",
    "Supplier",
    "Lead time (days)",
    "On hand",
    "Reorder point",
    "Reorder quantity",
    "Unit cost (GBP)",
    "Status",
]
# (part number, description, used on, supplier, lead time days, on hand, reorder point, reorder qty, unit cost)
PARTS = [
    (
        "KCW-FR-0101",
        "Heron steel frame, medium",
        "Heron",
        "Tanager Tubeworks",
        70,
        64,
        50,
        80,
        240.00,
    ),
    (
        "KCW-FR-0410",
        "Merlin steel frame, 53 cm",
        "Merlin",
        "Tanager Tubeworks",
        84,
        47,
        40,
        60,
        305.00,
    ),
    (
        "KCW-FR-0412",
        "Merlin steel frame, 56 cm",
        "Merlin",
        "Tanager Tubeworks",
        84,
        38,
        40,
        60,
        310.00,
    ),
    (
        "KCW-FR-0520",
        "Merlin carbon frame, 56 cm",
        "Merlin Carbon",
        "Lindqvist Composites",
        98,
        18,
        15,
        25,
        690.00,
    ),
    (
        "KCW-FR-0700",
        "Osprey cargo frame with box mounts",
        "Osprey",
        "Brightwater Fabrication",
        91,
        22,
        20,
        30,
        520.00,
    ),
    (
        "KCW-MT-0701",
        "Osprey rear hub motor, 250 W",
        "Osprey",
        "Voltaic Drives GmbH",
        56,
        31,
        45,
        100,
        410.00,
    ),
    (
        "KCW-BT-0702",
        "Osprey battery pack, 625 Wh",
        "Osprey",
        "Voltaic Drives GmbH",
        56,
        58,
        45,
        100,
        365.00,
    ),
    ("KCW-BX-0720", "Osprey plywood cargo box", "Osprey", "Alder Joinery", 14, 26, 20, 40, 120.00),
    (
        "KCW-HG-0105",
        "8-speed internal gear hub",
        "Heron",
        "Sorensen Hubs",
        42,
        120,
        90,
        150,
        148.00,
    ),
    ("KCW-DL-0110", "Dynamo front light", "Heron", "Lumen & Co", 30, 85, 100, 200, 33.00),
    ("KCW-RM-0301", "700c rim, 28 hole", "Merlin, Heron", "Ardent Rims", 35, 300, 200, 400, 38.00),
    ("KCW-TY-0310", "Gravel tyre 700x42", "Merlin", "Pathfinder Rubber", 28, 410, 250, 500, 21.50),
    (
        "KCW-DB-0320",
        "Hydraulic disc brake set (pair)",
        "Merlin, Osprey",
        "Halden Components",
        49,
        95,
        80,
        120,
        96.00,
    ),
    (
        "KCW-SP-0330",
        "Carbon seatpost 27.2 mm",
        "Merlin Carbon",
        "Lindqvist Composites",
        63,
        75,
        60,
        100,
        54.00,
    ),
    (
        "KCW-SD-0340",
        "Kestrel saddle, embroidered",
        "All models",
        "Corvid Leather",
        35,
        180,
        120,
        200,
        29.00,
    ),
    (
        "KCW-ST-0350",
        "Stem, 70-120 mm (fitting studio range)",
        "All models",
        "Halden Components",
        49,
        140,
        100,
        150,
        24.00,
    ),
]
SUPPLIERS_HEADER = [
    "Supplier",
    "Country",
    "Contact",
    "E-mail",
    "Supplies",
    "Payment terms",
    "Minimum order",
    "Notes",
]
SUPPLIERS = [
    (
        "Tanager Tubeworks",
        "United Kingdom",
        "Edwin Marsh",
        "orders@tanager.example",
        "Steel frames (Heron, Merlin)",
        "Net 45 days",
        "20 frames",
        "Frames are brazed to our drawings; allow 84 days for Merlin sizes.",
    ),
    (
        "Lindqvist Composites",
        "Sweden",
        "Karin Lindqvist",
        "sales@lindqvist-composites.example",
        "Carbon frames and seatposts",
        "Net 30 days",
        "10 frames",
        "Longest lead time of any supplier. Order carbon frames before the spring launch.",
    ),
    (
        "Brightwater Fabrication",
        "United Kingdom",
        "Sam Okafor",
        "sam@brightwater-fab.example",
        "Osprey cargo frames",
        "Net 30 days",
        "10 frames",
        "Aluminium cargo frames, powder-coated before delivery.",
    ),
    (
        "Voltaic Drives GmbH",
        "Germany",
        "Jana Köhler",
        "j.koehler@voltaic-drives.example",
        "Hub motors and batteries (Osprey)",
        "Net 30 days",
        "50 units",
        "Q3 2024 motor shipments arrived six weeks late. Reorder point for hub motors raised from 30 to 45.",
    ),
    (
        "Alder Joinery",
        "United Kingdom (Alderbank)",
        "Pete Rowley",
        "pete@alderjoinery.example",
        "Osprey plywood cargo boxes",
        "Net 14 days",
        "5 boxes",
        "Local supplier two streets away; can deliver within a day in an emergency.",
    ),
    (
        "Sorensen Hubs",
        "Denmark",
        "Mette Sorensen",
        "orders@sorensen-hubs.example",
        "Internal gear hubs",
        "Net 30 days",
        "50 hubs",
        "",
    ),
    (
        "Lumen & Co",
        "Netherlands",
        "Daan de Vries",
        "support@lumenco.example",
        "Dynamo lights",
        "Net 30 days",
        "100 lights",
        "Replacing a faulty batch from July 2024 free of charge.",
    ),
    (
        "Ardent Rims",
        "Taiwan",
        "Lin Wei",
        "export@ardentrims.example",
        "Rims",
        "Payment in advance",
        "200 rims",
        "Shipped by sea; add 10 days around Lunar New Year.",
    ),
    (
        "Pathfinder Rubber",
        "Germany",
        "Felix Brandt",
        "orders@pathfinder-rubber.example",
        "Tyres",
        "Net 30 days",
        "100 tyres",
        "",
    ),
    (
        "Halden Components",
        "Norway",
        "Ola Halden",
        "b2b@halden-components.example",
        "Brakes, stems, handlebars",
        "Net 30 days",
        "25 sets",
        "",
    ),
    (
        "Corvid Leather",
        "United Kingdom",
        "Ruth Ellison",
        "ruth@corvidleather.example",
        "Saddles",
        "Net 30 days",
        "50 saddles",
        "Embroiders the Kestrel logo on every saddle.",
    ),
]


def build_xlsx(out_path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.properties.creator = "Jonas Whitlock"
    wb.properties.lastModifiedBy = "Jonas Whitlock"
    wb.properties.title = "Parts inventory and suppliers"
    wb.properties.created = FIXED_DATETIME
    wb.properties.modified = (
        FIXED_DATETIME  # openpyxl overwrites this on save; normalize_zip fixes it
    )

    ws = wb.active
    ws.title = "Parts"
    ws.append(PARTS_HEADER)
    for part in PARTS:
        on_hand, reorder_point = part[5], part[6]
        ws.append([*part, "REORDER NOW" if on_hand <= reorder_point else "OK"])

    ws2 = wb.create_sheet("Suppliers")
    ws2.append(SUPPLIERS_HEADER)
    for supplier in SUPPLIERS:
        ws2.append(list(supplier))

    for sheet in (ws, ws2):
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        for col in range(1, sheet.max_column + 1):
            width = max(len(str(c.value or "")) for c in sheet[get_column_letter(col)])
            sheet.column_dimensions[get_column_letter(col)].width = min(max(width + 2, 10), 60)
    for row in ws.iter_rows(min_row=2, min_col=9, max_col=9):
        row[0].number_format = "#,##0.00"

    wb.save(str(out_path))
    normalize_zip(out_path)


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #
def build_all(out_dir: Path) -> list[Path]:
    built: list[Path] = []

    def target(rel: str) -> Path:
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        built.append(path)
        return path

    for src_name, rel, fmt in PANDOC_DOCS:
        build_pandoc(src_name, target(rel), fmt)
    build_pdf("expenses.md", target("policies/expenses.pdf"))
    build_pptx(target("sales/q3-review.pptx"))
    build_xlsx(target("operations/parts-inventory.xlsx"))
    return built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="build into a temp dir and compare with sample_docs/"
    )
    args = parser.parse_args()

    if not args.check:
        for path in build_all(OUT):
            print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size:,} bytes)")
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        stale = [
            p.relative_to(tmp)
            for p in build_all(Path(tmp))
            if not (OUT / p.relative_to(tmp)).exists()
            or not filecmp.cmp(p, OUT / p.relative_to(tmp), shallow=False)
        ]
    for rel in stale:
        print(f"out of date: sample_docs/{rel}")
    print("sample_docs is up to date" if not stale else "run: python scripts/make_sample_docs.py")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
