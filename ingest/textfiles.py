"""Text files read without unstructured: encodings, and a fast, lossless split into elements.

unstructured classifies every paragraph of a plain-text file with NLP (minutes for a 3 MB
book), rewrites what it keeps (bullets stripped, lines joined), and reads Markdown by
rendering it to HTML, where a token such as ``<unk>`` is a tag and vanishes. Here plain
text, CSV/TSV and Markdown become the same kinds of elements (Title, NarrativeText,
ListItem, Table, ...) from the file's own characters, in the time it takes to read them.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
from collections.abc import Iterator

from headwater.ingest.errors import LoadError
from headwater.ingest.models import Element

log = logging.getLogger(__name__)

FAST_TYPES = frozenset({"txt", "text", "md", "markdown", "csv", "tsv"})
"""Extensions read here; other text types (.rst, .org) still go through unstructured."""

# -- encodings ----------------------------------------------------------------------------

_SAMPLE = 1 << 16
_BOMS = (
    # UTF-32 first: its little-endian mark begins with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_MULTIBYTE = re.compile(
    r"utf_16|utf_32|shift_jis|cp932|euc_jp|iso2022|gb2312|gbk|gb18030|hz|big5|cp950|euc_kr|"
    r"cp949|johab"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
"""Control characters, less the whitespace ones (tab, line feed, form feed, return)."""

MAX_CONTROL_SHARE = 0.1
"""Text with more control characters than this share is binary data, not text."""


def _nul_share(sample: bytes, phase: int, step: int) -> float:
    column = sample[phase::step]
    return column.count(0) / len(column) if column else 0.0


def wide_encoding(data: bytes) -> str | None:
    """UTF-16 or UTF-32, from a byte-order mark or, without one, from where the NULs are.

    Text in a Latin script stored as UTF-16 has a NUL in every other byte (UTF-32: three
    in every four), always on the same side; binary data has NULs anywhere. Text in
    other scripts without a mark has no such pattern and is left to the other checks.
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    sample = data[: _SAMPLE - _SAMPLE % 4]
    if len(sample) < 4:
        return None
    nul = [_nul_share(sample, i, 4) for i in range(4)]
    candidates = []
    if len(data) % 4 == 0 and min(nul[2], nul[3]) > 0.95 and nul[1] > 0.7 and nul[0] < 0.1:
        candidates.append("utf-32-le")
    if len(data) % 4 == 0 and min(nul[0], nul[1]) > 0.95 and nul[2] > 0.7 and nul[3] < 0.1:
        candidates.append("utf-32-be")
    odd, even = _nul_share(sample, 1, 2), _nul_share(sample, 0, 2)
    if len(data) % 2 == 0 and odd > 0.7 and even < 0.1:
        candidates.append("utf-16-le")
    if len(data) % 2 == 0 and even > 0.7 and odd < 0.1:
        candidates.append("utf-16-be")
    for name in candidates:
        try:
            data.decode(name)
        except UnicodeDecodeError:
            continue
        return name
    return None


def control_share(text: str) -> float:
    """The share of `text` that is NUL or other control characters (whitespace excluded)."""
    if not text:
        return 0.0
    return (len(text) - len(_CONTROL.sub("", text))) / len(text)


def decode_text(path: str, data: bytes, fallback: str) -> str:
    """A text file's characters: UTF-16/32 (marked or detected), UTF-8, a detected
    multi-byte encoding, else `fallback` (single-byte code pages cannot be told apart).

    Raises LoadError when the bytes are not valid in the encoding chosen, or when what
    they decode to is binary data (more than 10% control characters).
    """
    encoding = wide_encoding(data)
    if encoding is None and data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    if encoding is None:
        try:
            text = data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            from charset_normalizer import from_bytes

            best = from_bytes(data).best()
            multibyte = best is not None and _MULTIBYTE.search(best.encoding)
            encoding = best.encoding if best is not None and multibyte else fallback
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise LoadError(
            path,
            f"text is not UTF-8 and not valid {encoding} either ({exc.reason} at byte "
            f"{exc.start}); set loading.text_encoding to the file's encoding",
        ) from exc
    if encoding not in ("utf-8", "utf-8-sig"):
        log.info("%s: not UTF-8; read as %s", path, encoding)
    share = control_share(text)
    if share > MAX_CONTROL_SHARE:
        raise LoadError(
            path,
            f"the content is binary, not text: read as {encoding}, {share:.0%} of its "
            "characters are NUL or other control characters; not stored",
        )
    return text.removeprefix("\ufeff")


# -- elements -----------------------------------------------------------------------------

LONG_ELEMENT = 4000
"""An element longer than this (characters) is split at its line breaks, if it has any."""

_BLANK_LINES = re.compile(r"\n[ \t\f\v\r]*(?:\n[ \t\f\v\r]*)+")
_UNDERLINE = re.compile(r"[=\-~#*^_+]{3,}")
_BULLET = re.compile(r"[-*+\u2022\u2023\u2043\u25e6\u2219\u00b7\u25aa\u25cf\u25cb\u2013\u2014]\s")
_NUMBERED = re.compile(r"(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)]\s")
_LETTERS = re.compile(r"[^\W\d_]{2}")
_TITLE_WORDS = 12
"""A heading is at most this many words (unstructured's ``title_max_word_length``)."""


def classify(paragraph: str) -> str:
    """The element type of one plain-text paragraph, by its shape.

    A short single line without closing punctuation (or one underlined with ``===`` or
    ``---``) is a Title; a paragraph starting with a bullet or ``1.`` a ListItem; one with
    words a NarrativeText; the rest (rules, numbers, symbols) UncategorizedText.
    """
    lines = paragraph.splitlines()
    first = lines[0].strip()
    if _BULLET.match(first) or _NUMBERED.match(first):
        return "ListItem"
    if not _LETTERS.search(paragraph):
        return "UncategorizedText"
    underlined = len(lines) == 2 and _UNDERLINE.fullmatch(lines[1].strip()) is not None
    if (
        (len(lines) == 1 or underlined)
        and len(first.split()) <= _TITLE_WORDS
        and first[-1] not in ".,;:!"
    ):
        return "Title"
    return "NarrativeText"


def split_long(element: Element, limit: int = LONG_ELEMENT) -> list[Element]:
    """`element` as is, or, when longer than `limit`, one element per non-empty line."""
    if len(element.text) <= limit or "\n" not in element.text:
        return [element]
    return [
        Element(line.strip(), element.category, element.page, element.depth)
        for line in element.text.splitlines()
        if line.strip()
    ]


def _is_item(line: str) -> bool:
    return _BULLET.match(line) is not None or _NUMBERED.match(line) is not None


def list_items(paragraph: str) -> list[str]:
    """A paragraph that starts with a bullet, one item per bullet (lines that follow
    without one continue the item); any other paragraph, whole."""
    lines = paragraph.splitlines()
    if not _is_item(lines[0].strip()):
        return [paragraph]
    items: list[list[str]] = []
    for line in lines:
        if _is_item(line.strip()) or not items:
            items.append([line])
        else:
            items[-1].append(line)
    return ["\n".join(item).strip() for item in items]


def plain_elements(text: str) -> list[Element]:
    """Paragraphs (text between blank lines; list items apart) as elements, every
    character kept."""
    out: list[Element] = []
    for paragraph in _BLANK_LINES.split(text):
        body = paragraph.strip()
        if body:
            out.extend(Element(item, classify(item)) for item in list_items(body))
    return out


def table_elements(text: str, delimiter: str) -> list[Element]:
    """A CSV/TSV file as a Table element: one line per row, cells joined by spaces."""
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    lines = [" ".join(c.strip() for c in row if c.strip()) for row in rows]
    body = "\n".join(line for line in lines if line)
    return [Element(body, "Table")] if body else []


def markdown_elements(text: str) -> list[Element]:
    """Markdown blocks as elements: headings (with levels), paragraphs, list items, code,
    tables. Every word of the file is kept, and every character a reader of the source
    would call text: raw HTML (a token like ``<unk>`` keeps its place), backslash escapes
    and entities as written (``\\'``, ``&amp;``), code spans' content. What goes is
    structure markup: heading ``#``, list bullets, ``>``, table pipes, a code fence and its
    language, emphasis ``*``/``_``, code spans' backticks and link brackets. A link's or
    image's target (and title) follows its text in parentheses (``[guide](setup.md)``:
    ``guide (setup.md)``; a reference link ``[guide][id]`` likewise, its label ``id``
    kept where it is defined); lines no block claims, such as reference definitions
    (``[id]: url``), are kept as written, in their place."""
    from markdown_it import MarkdownIt

    # text_join would merge escapes and entities into the text already decoded; kept
    # apart, each still has its source form (token.markup).
    md = MarkdownIt("commonmark", {"html": False}).enable("table").disable("text_join")
    tokens = md.parse(text)
    out: list[tuple[int, Element]] = []
    """(first line of the block, element): the file's order, with unclaimed lines."""
    claimed: set[int] = set()
    line = 0
    lists = 0
    heading: int | None = None
    cells: list[str] | None = None
    for token in tokens:
        kind = token.type
        if token.level == 0 and token.map:
            line = token.map[0]
            claimed.update(range(*token.map))
        if kind in ("bullet_list_open", "ordered_list_open"):
            lists += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists -= 1
        elif kind == "heading_open":
            heading = int(token.tag[1:]) - 1
        elif kind == "heading_close":
            heading = None
        elif kind == "table_open":
            cells = []
        elif kind == "table_close" and cells is not None:
            out.append((line, Element(" ".join(c for c in cells if c), "Table")))
            cells = None
        elif kind in ("fence", "code_block"):
            if token.content.strip():
                out.append((line, Element(token.content.strip(), "CodeSnippet")))
        elif kind == "inline":
            body = "".join(_inline_text(token)).strip()
            if cells is not None:
                cells.append(body)
            elif not body:
                continue
            elif heading is not None:
                out.append((line, Element(body, "Title", depth=heading)))
            elif lists:
                out.append((line, Element(body, "ListItem", depth=lists)))
            else:
                out.append((line, Element(body, "NarrativeText")))
    out.extend(_unclaimed(text.splitlines(), claimed))
    return [element for _, element in sorted(out, key=lambda pair: pair[0])]


def _unclaimed(lines: list[str], claimed: set[int]) -> Iterator[tuple[int, Element]]:
    """Runs of non-blank lines outside every block (reference definitions), as written."""
    run: list[int] = []
    for i, line in enumerate([*lines, ""]):
        if i not in claimed and line.strip():
            run.append(i)
            continue
        if run:
            yield run[0], Element("\n".join(lines[run[0] : run[-1] + 1]).strip(), "NarrativeText")
            run = []


def _target(href: object, shown: str, title: object = None) -> str:
    """A link's target (and title) after its text; none where the text is the target
    (autolinks)."""
    if not href or href in (shown, f"mailto:{shown}"):
        return ""
    return f' ({href} "{title}")' if title else f" ({href})"


def _inline_text(token: object) -> Iterator[str]:
    href: object = None
    title: object = None
    shown: list[str] = []
    for child in getattr(token, "children", None) or []:
        if child.type in ("softbreak", "hardbreak"):
            piece = "\n"
        elif child.type == "image":
            alt = "".join(_inline_text(child))
            piece = alt + _target(child.attrGet("src"), alt, child.attrGet("title"))
        elif child.type == "text_special":  # an escape or entity, as the file has it
            piece = child.markup
        elif child.type == "link_open":
            href, title, shown = child.attrGet("href"), child.attrGet("title"), []
            continue
        elif child.type == "link_close":
            piece, href = _target(href, "".join(shown), title), None
        else:
            piece = child.content
        if href is not None:
            shown.append(piece)
        yield piece


def text_elements(kind: str, text: str) -> list[Element]:
    """Elements of a text file of type `kind` (one of FAST_TYPES), long ones split."""
    if kind in ("md", "markdown"):
        elements = markdown_elements(text)
    elif kind in ("csv", "tsv"):
        elements = table_elements(text, "\t" if kind == "tsv" else ",")
    else:
        elements = plain_elements(text)
    return [piece for element in elements for piece in split_long(element)]
