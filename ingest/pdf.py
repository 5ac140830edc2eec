"""PDFs to unstructured elements without unstructured's ``pdf`` extra.

unstructured's own PDF module imports unstructured-inference (and through it timm and a
torchvision that cannot load beside the CPU torch) at import time, even for the "fast"
and "ocr_only" strategies, which need neither. This module reproduces what
unstructured 0.27 returns for those two strategies from the same helpers, which do not
import unstructured-inference: pdfminer text boxes classified by ``element_from_text``
("fast"), and Tesseract on pages rendered by pdfium ("ocr_only"). What is re-implemented
here is marked with the unstructured function it follows. Where unstructured gives up
(a page too complex or too broken for pdfminer fails the whole file) or pdfminer finds
little of a page's text, that page is read by pdfium instead. Call
``loading.ensure_spacy_model()`` first: the classification needs unstructured's spaCy
model, and without it a text layer would read as no elements.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import re
from collections.abc import Iterator
from typing import Any

from pdfminer.layout import LTContainer
from pdfminer.pdfinterp import PDFPageInterpreter
from pdfminer.pdftypes import PDFObjRef
from pdfminer.utils import decode_text
from unstructured.cleaners.core import clean_extra_whitespace_with_index_run
from unstructured.documents.coordinates import PixelSpace
from unstructured.documents.elements import (
    CoordinatesMetadata,
    Element,
    ElementMetadata,
    ListItem,
)
from unstructured.nlp.patterns import PARAGRAPH_PATTERN
from unstructured.partition.pdf_image.pdfminer_utils import (
    PDFMinerConfig,
    get_text_with_deduplication,
    rect_to_bbox,
)
from unstructured.partition.text import element_from_text
from unstructured.partition.utils.config import env_config
from unstructured.partition.utils.constants import SORT_MODE_BASIC, SORT_MODE_XY_CUT
from unstructured.partition.utils.sorting import coord_has_valid_points, sort_page_elements
from unstructured.patches.pdfminer import patch_psparser

from headwater.ingest import pdf_layout
from headwater.ingest.spacy_batch import prepared

log = logging.getLogger(__name__)

# -- the pdfminer patches unstructured's pdf module applies when it is imported ----------
patch_psparser()
_init_resources = PDFPageInterpreter.init_resources


def _init_resources_without_colorspace(self: PDFPageInterpreter, resources: Any) -> None:
    # Pages whose ICC colour space breaks the spec fail in process_page; text needs no
    # colour (unstructured issue #2059).
    if resources and "ColorSpace" in resources:
        del resources["ColorSpace"]
    _init_resources(self, resources)


PDFPageInterpreter.init_resources = _init_resources_without_colorspace  # type: ignore[method-assign]
pdf_layout.install()  # the same text-box grouping, numpy-fast on pages of many boxes


# -- "fast": the text layer -------------------------------------------------------------


class PdfTooLargeError(Exception):
    """The PDF's content streams expand past the caps against decompression bombs."""


class PdfUnreadableError(Exception):
    """Neither pdfminer nor pdfium found a single page: not a scan, a broken file."""


def partition_text_layer(data: bytes, languages: list[str]) -> list[Element]:
    """unstructured's ``partition_pdf(strategy="fast")``, page by page: a page pdfminer
    cannot read, or that is too complex for it (unstructured then gives up on the whole
    file), or where it finds less than half the text pdfium does, is read by pdfium."""
    skip = _complex_pages(data)
    pages: dict[int, list[Element]] = {}
    try:
        for number, page in _pdfminer_pages(io.BytesIO(data), languages, skip):
            # _partition_pdf_with_pdfparser
            pages[number] = sort_page_elements(
                sort_page_elements(page, SORT_MODE_BASIC), SORT_MODE_XY_CUT
            )
    except Exception as exc:  # a broken page tree: pdfium may still find the pages
        log.warning("pdfminer stopped reading the PDF: %s: %s", type(exc).__name__, exc)
        failure = f"{type(exc).__name__}: {exc}"
    else:
        failure = "no pages"
    texts = _pdfium_texts(data)
    if not pages and not texts:
        raise PdfUnreadableError(f"neither pdfminer nor pdfium finds a page ({failure})")
    for number, text in texts.items():
        # pdfium reads text pdfminer misses (and the pages it skipped or failed on)
        mined = sum(_letters(e.text or "") for e in pages.get(number, []))
        if _letters(text) > 2 * mined:
            if mined:
                log.info("page %d: pdfium finds much more text than pdfminer; using it", number)
            pages[number] = _paragraphs(text, number, languages)
    return [element for _, found in sorted(pages.items()) for element in found]


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _letters(text: str) -> int:
    return sum(1 for c in text if not c.isspace())


def _pdfminer_pages(
    fp: io.BytesIO, languages: list[str], skip: set[int]
) -> Iterator[tuple[int, list[Element]]]:
    """unstructured's ``_process_pdfminer_pages``, less link metadata; a page in `skip` or
    one pdfminer fails on comes out empty (unstructured repairs a page with a syntax
    error through pikepdf; here pdfium reads it)."""
    from pdfminer.pdfpage import PDFPage
    from unstructured.partition.pdf_image.pdfminer_utils import init_pdfminer

    device, interpreter = init_pdfminer(PDFMinerConfig(word_margin=0.185))  # the default
    for number, page in enumerate(PDFPage.get_pages(fp, password=""), 1):
        if number in skip:
            yield number, []
            continue
        try:
            interpreter.process_page(page)
            layout = device.get_result()
            elements = _page_elements(number, page, layout, languages)
        except Exception as exc:
            log.info("page %d: pdfminer failed (%s: %s)", number, type(exc).__name__, exc)
            elements = []
        yield number, elements


def _page_elements(number: int, page: Any, layout: Any, languages: list[str]) -> list[Element]:
    system = PixelSpace(width=layout.width, height=layout.height)
    found: list[tuple[str, tuple[float, float, float, float]]] = []
    for obj in layout:
        bbox = rect_to_bbox(obj.bbox, layout.height)
        if hasattr(obj, "get_text"):
            snippets = [get_text_with_deduplication(obj, env_config.PDF_CHAR_DUPLICATE_THRESHOLD)]
        else:
            snippets = re.split(PARAGRAPH_PATTERN, _extract_text(obj))
        for snippet in snippets:
            text = clean_extra_whitespace_with_index_run(snippet)[0]
            if text.strip():
                found.append((text, bbox))
    if page.annots:
        found += _widget_texts(page.annots, layout.height)
    elements = []
    with prepared(text for text, _ in found):
        for text, (x1, y1, x2, y2) in found:
            points = ((x1, y1), (x1, y2), (x2, y2), (x2, y1))
            element = element_from_text(text, coordinates=points, coordinate_system=system)
            element.metadata = ElementMetadata(
                page_number=number,
                coordinates=CoordinatesMetadata(points=points, system=system),
                languages=languages,
            )
            element.metadata.detection_origin = "pdfminer"
            elements.append(element)
    return _combine_list_elements(elements, system)


def _pdfium_texts(data: bytes) -> dict[int, str]:
    """Each page's text layer as pdfium reads it; empty when pdfium cannot open the file."""
    import pypdfium2 as pdfium

    texts: dict[int, str] = {}
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        log.info("pdfium cannot open the PDF: %s", exc)
        return texts
    try:
        for number in range(1, len(pdf) + 1):
            try:
                page = pdf[number - 1]
                textpage = page.get_textpage()
                texts[number] = textpage.get_text_range()
                textpage.close()
                page.close()
            except pdfium.PdfiumError as exc:
                log.info("page %d: pdfium failed (%s)", number, exc)
    finally:
        pdf.close()
    return texts


def _paragraphs(text: str, number: int, languages: list[str]) -> list[Element]:
    """pdfium's text as elements, one a paragraph; pdfium gives no layout, so nothing is
    classed as a header or footer."""
    elements = []
    text = _CONTROL.sub("", text)  # pdfium marks soft hyphens and unknown glyphs so
    paragraphs = [" ".join(p.split()) for p in re.split(r"(?:\r?\n[ \t]*){2,}", text)]
    paragraphs = [p for p in paragraphs if p]
    with prepared(paragraphs):
        for cleaned in paragraphs:
            element = element_from_text(cleaned)
            element.metadata = ElementMetadata(page_number=number, languages=languages)
            element.metadata.detection_origin = "pdfium"
            elements.append(element)
    return elements


def _extract_text(item: Any) -> str:
    """unstructured's ``_extract_text``: text of a container such as a figure."""
    if hasattr(item, "get_text"):
        return str(item.get_text())
    if isinstance(item, LTContainer):
        return "".join(_extract_text(child) or "" for child in item)
    return "\n"


def _resolve(obj: Any) -> Any:
    with contextlib.suppress(Exception):
        return obj.resolve()
    return obj


def _field_text(value: Any) -> str | None:
    value = _resolve(value)
    if isinstance(value, list | tuple):
        texts = [t.strip() for v in value if (t := _scalar_text(_resolve(v))) and t.strip()]
        return "\n".join(texts) if texts else None
    return _scalar_text(value)


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return decode_text(value)
    if isinstance(value, str):
        return value
    name = getattr(value, "name", None)  # a choice field's export value
    if isinstance(name, bytes):
        return name.decode("utf-8", "replace")
    return name if isinstance(name, str) else None


def _widget_texts(annots: Any, height: float) -> list[tuple[str, Any]]:
    """unstructured's ``get_widget_text_from_annots``: filled form-field values."""
    found: list[tuple[str, Any]] = []
    resolved = annots if isinstance(annots, list) else _resolve(annots)
    for annot in resolved if isinstance(resolved, list) else []:
        field = _resolve(annot)
        if not isinstance(field, dict) or getattr(field.get("Subtype"), "name", None) != "Widget":
            continue
        kind, value, parent, seen = field.get("FT"), field.get("V"), field.get("Parent"), 0
        while (kind is None or value is None) and parent is not None and seen < 32:
            parent, seen = _resolve(parent), seen + 1
            if not isinstance(parent, dict):
                break
            kind, value = kind or parent.get("FT"), value or parent.get("V")
            parent = parent.get("Parent")
        text = _field_text(value) if getattr(kind, "name", None) in ("Tx", "Ch") else None
        rect = field.get("Rect")
        if not text or not text.strip() or not rect or isinstance(rect, PDFObjRef):
            continue
        with contextlib.suppress(TypeError, ValueError):
            if len(rect) == 4:
                x1, y1, x2, y2 = (float(v) for v in rect)
                found.append((text.strip(), rect_to_bbox((x1, y1, x2, y2), height)))
    return found


def _combine_list_elements(elements: list[Element], system: PixelSpace) -> list[Element]:
    """unstructured's ``_combine_list_elements``, kept as it is (a list item absorbs the
    text that follows it within its bounds; coordinates feed the page sort)."""
    item: Element | None = None
    item_text, item_coords = "", None
    out: list[Element] = []
    for element in elements:
        if isinstance(element, ListItem):
            item, item_text, item_coords = element, element.text, element.metadata.coordinates
        elif item is not None and _within(element.metadata.coordinates, item_coords):
            item.text = f"{item_text} {element.text}"
            a: Any = item.metadata.coordinates.points  # type: ignore[union-attr]
            b: Any = element.metadata.coordinates.points  # type: ignore[union-attr]
            x1, x2 = min(a[0][0], b[0][0]), max(a[2][0], b[2][0])
            y1, y2 = min(a[0][1], b[0][1]), max(a[1][1], b[1][1])
            points = ((x1, y1), (x1, y2), (x2, y2), (x2, y1))
            item.metadata.coordinates = CoordinatesMetadata(points=points, system=system)
            element = copy.deepcopy(item)
            out.pop()
        out.append(element)
    return out


def _within(coords: Any, boundary: Any, horizontal: float = 0.2, vertical: float = 0.3) -> bool:
    """unstructured's ``check_coords_within_boundary``."""
    if not coord_has_valid_points(coords) and not coord_has_valid_points(boundary):
        return False
    (bx1, by1), (_, by2), (bx2, _) = boundary.points[:3]
    width, height = bx2 - bx1, by2 - by1
    (x1, y1), _, (x2, _) = coords.points[:3]
    return bool(
        x1 > bx1 - horizontal * width
        and x2 < bx2 + horizontal * width
        and x1 >= bx1
        and by1 - vertical * height < y1 < by2 + vertical * height
    )


_GRAPHICS_OPS = re.compile(
    rb"(?:^|(?<=\s))(?:m|l|c|v|y|h|re|S|s|f|F|f\*|B|B\*|b|b\*|n|W|W\*|cm|q|Q|Do|"
    rb"g|G|rg|RG|k|K|cs|CS|w|J|j|M|d|i|gs)(?=\s|$)",
    re.M,
)
_TEXT_OPS = re.compile(rb"(?:^|(?<=\s))(?:Tj|TJ|'|\"|Tf|Td|TD|Tm|T\*|BT|ET)(?=\s|$)", re.M)


def _complex_pages(data: bytes) -> set[int]:
    """The pages unstructured's ``is_pdf_too_complex`` (default limits) would balk at: more
    than 10,000 drawing operators at over 20 per text operator (a CAD drawing). unstructured
    then reads nothing of the whole file; here only those pages skip pdfminer. Content
    streams past its caps against decompression bombs (CVE-2026-33123) raise
    PdfTooLargeError."""
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError
    from pypdf.generic import ArrayObject

    bomb = PdfTooLargeError(
        "its content streams expand past 50 MB a page or 1 GB in all (a decompression bomb?)"
    )
    found: set[int] = set()
    total_bytes = total_entries = 0
    try:
        pages = list(PdfReader(io.BytesIO(data)).pages)
    except Exception as exc:
        log.debug("complexity check skipped: %s", exc)
        return found
    for index, page in enumerate(pages, 1):
        try:
            contents: Any = page.get("/Contents")
            contents = contents.get_object() if hasattr(contents, "get_object") else contents
        except Exception:
            continue
        streams = list(contents) if isinstance(contents, ArrayObject) else [contents]
        if isinstance(contents, ArrayObject):
            total_entries += len(contents)
            if len(contents) > 10_000:
                found.add(index)
                continue
            if total_entries > 1_000_000:
                raise bomb
        raw = bytearray()
        item: Any
        for item in streams:
            try:
                stream = item.get_object() if hasattr(item, "get_object") else item
                chunk = stream.get_data() if hasattr(stream, "get_data") else None
            except LimitReachedError:
                raise bomb from None
            except Exception:
                continue
            if chunk is None:
                continue
            total_bytes += len(chunk)
            if total_bytes > 2**30 or len(raw) + len(chunk) > 50 * 2**20:
                raise bomb
            raw += chunk
        if len(raw) < 100_000:
            continue
        graphics = sum(1 for _ in _GRAPHICS_OPS.finditer(raw))
        if graphics > 10_000:
            text = sum(1 for _ in _TEXT_OPS.finditer(raw))
            if graphics / max(text, 1) > 20.0:
                log.info(
                    "page %d: %d drawing operators, %d text: read by pdfium", index, graphics, text
                )
                found.add(index)
    return found


# -- "ocr_only": Tesseract --------------------------------------------------------------


def partition_ocr(data: bytes, languages: list[str]) -> list[Element]:
    """unstructured's ``partition_pdf(strategy="ocr_only")``: each page rendered by
    pdfium at ``PDF_RENDER_DPI`` (350), read by Tesseract, its words grouped by the
    paragraphs of Tesseract's plain text, each group classified by ``element_from_text``.
    """
    import pypdfium2 as pdfium
    from unstructured.partition.common.lang import prepare_languages_for_tesseract
    from unstructured.partition.utils.ocr_models.tesseract_ocr import OCRAgentTesseract

    agent = OCRAgentTesseract(language=prepare_languages_for_tesseract(languages))
    scale = env_config.PDF_RENDER_DPI / 72
    limit = env_config.PDF_RENDER_MAX_PIXELS_PER_PAGE
    elements: list[Element] = []
    pdf = pdfium.PdfDocument(data)
    try:
        with contextlib.suppress(pdfium.PdfiumError):
            pdf.init_forms()  # paint filled form fields too
        for number in range(1, len(pdf) + 1):
            page = pdf[number - 1]
            try:
                width, height = page.get_size()
                if 0 < limit < math.ceil(width * scale) * math.ceil(height * scale):
                    raise ValueError(f"page {number} would render to over {limit} pixels")
                bitmap = page.render(scale=scale, optimize_mode="print")
                image = bitmap.to_pil()
                bitmap.close()
            finally:
                page.close()
            words = _ocr_words(agent, image)
            text = agent.get_text_from_image(image)
            for group in _group_words(words, text):
                element = element_from_text(" ".join(group))
                element.metadata = ElementMetadata(page_number=number, languages=languages)
                elements.append(element)
            image.close()
    finally:
        pdf.close()
    return elements


def _ocr_words(agent: Any, image: Any) -> list[str]:
    """``OCRAgentTesseract.get_layout_from_image`` and ``parse_data``, less coordinates:
    the page is OCRed again, zoomed, when its median text height is out of range."""
    import numpy as np
    from unstructured.partition.utils.constants import IMAGE_COLOR_DEPTH, TESSERACT_MAX_SIZE
    from unstructured.partition.utils.ocr_models.tesseract_ocr import zoom_image

    def words(img: Any) -> Any:
        return agent.image_to_data_with_character_confidence_filter(
            np.array(img),
            lang=agent.language,
            character_confidence_threshold=env_config.TESSERACT_CHARACTER_CONFIDENCE_THRESHOLD,
        ).dropna()

    found = words(image)
    height = found["height"].quantile(env_config.TESSERACT_TEXT_HEIGHT_QUANTILE)
    if not env_config.TESSERACT_MIN_TEXT_HEIGHT <= height <= env_config.TESSERACT_MAX_TEXT_HEIGHT:
        max_zoom = max(
            0, np.round(np.sqrt(TESSERACT_MAX_SIZE / np.prod(image.size) / IMAGE_COLOR_DEPTH), 1)
        )
        zoom = min(np.round(env_config.TESSERACT_OPTIMUM_TEXT_HEIGHT / height, 1), max_zoom)
        found = words(zoom_image(image, zoom))
    texts = [t.strip() if isinstance(t, str) else str(t) for t in found["text"]]
    return [t for t in texts if t != ""]


def _group_words(words: list[str], text: str) -> list[list[str]]:
    """unstructured's ``build_layout_elements_from_ocr_regions(group_by_ocr_text=True)``:
    for each paragraph of the plain text, in order, the unused words (in reading order)
    that occur in it."""
    left = list(enumerate(words))
    groups = []
    for section in text.split("\n\n"):
        wanted, taken = section.replace("\n", " ").split(), []
        for index, word in left:
            if not wanted:
                break
            if word in wanted:
                taken.append(index)
                wanted.remove(word)
        if taken:
            left = [(i, w) for i, w in left if i not in set(taken)]
            groups.append([words[i] for i in taken])
    return groups
