"""Text files: encodings found without a mark, binary refused, and every word kept."""

from __future__ import annotations

import codecs
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from headwater.ingest.config import LoadingConfig
from headwater.ingest.errors import LoadError
from headwater.ingest.loading import load_document
from headwater.ingest.models import Document, SourceFile
from headwater.ingest.textfiles import (
    LONG_ELEMENT,
    classify,
    control_share,
    decode_text,
    markdown_elements,
    text_elements,
    wide_encoding,
)

from .conftest import SAMPLE_DOCS

NOTE = "Grüße: the workshop opens at 08:00.\nBring gloves."


def load(name: str, data: bytes) -> Document:
    f = SourceFile("docs", name, f"/docs/{name}", len(data), "fp")
    return load_document(f, data, LoadingConfig())


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (NOTE.encode("utf-16-le"), "utf-16-le"),
        (NOTE.encode("utf-16-be"), "utf-16-be"),
        (NOTE.encode("utf-32-le"), "utf-32-le"),
        (NOTE.encode("utf-32-be"), "utf-32-be"),
        (NOTE.encode("utf-16"), "utf-16"),
        (NOTE.encode("utf-32"), "utf-32"),
        (codecs.BOM_UTF16_BE + NOTE.encode("utf-16-be"), "utf-16"),
        (NOTE.encode(), None),
        (NOTE.encode("utf-16-le")[:-1], None),  # cut in the middle of a character
        (bytes(range(256)) * 8, None),
        (random.Random(1).randbytes(5000), None),
        (b"\0" * 4000, None),
        (b"ab", None),
    ],
    ids=lambda v: v if isinstance(v, str | None) else None,
)
def test_wide_encodings_are_found_with_or_without_a_mark(data: bytes, expected: str | None) -> None:
    assert wide_encoding(data) == expected


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_without_a_mark_load_as_text(encoding: str) -> None:
    doc = load("note.txt", NOTE.encode(encoding))
    assert "\n\n".join(e.text for e in doc.elements) == NOTE


@pytest.mark.parametrize(
    ("text", "share"),
    [("", 0.0), ("plain\ttext\r\n\f", 0.0), ("a\0b\0", 0.5), ("\x01\x02\x7f\x9f", 1.0)],
)
def test_control_share(text: str, share: float) -> None:
    assert control_share(text) == share


@pytest.mark.parametrize(
    "data",
    [
        b"A short line of text.\n" * 400 + b"\0" * 100_000,  # NULs only after the first 8 KB
        b"header\n" + bytes(range(1, 9)) * 2000,  # control characters, no NUL
    ],
)
def test_text_that_is_mostly_control_characters_is_refused(data: bytes) -> None:
    with pytest.raises(LoadError, match=r"binary, not text: read as .*% of its characters"):
        decode_text("x.txt", data, "cp1252")
    with pytest.raises(LoadError, match="binary"):
        load("x.txt", data)


def test_a_few_control_characters_do_not_make_text_binary() -> None:
    text = "A line with a stray \x07 bell and a form feed\f between pages. " * 20
    assert decode_text("x.txt", text.encode(), "cp1252") == text


@pytest.mark.parametrize(
    ("paragraph", "category"),
    [
        ("PASSWORDS", "Title"),
        ("PASSWORDS\n---------", "Title"),
        ("Chapter One\n===========", "Title"),
        ("MULTI-FACTOR AUTHENTICATION (MFA)", "Title"),
        ("Q: How long?\nA: Fourteen characters.", "NarrativeText"),
        ("This sentence ends with a full stop.", "NarrativeText"),
        ("- a bullet point", "ListItem"),
        ("• a bullet point", "ListItem"),
        ("3. the third step", "ListItem"),
        ("---------", "UncategorizedText"),
        ("42", "UncategorizedText"),
        (
            "one two three four five six seven eight nine ten eleven twelve thirteen",
            "NarrativeText",
        ),
    ],
)
def test_plain_text_paragraphs_are_typed_by_shape(paragraph: str, category: str) -> None:
    assert classify(paragraph) == category


def non_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


def words(text: str) -> Counter[str]:
    return Counter(re.findall(r"[^\W_]+", text))


ADVERSARIAL_TEXT = """\
TITLE WITH <unk> TOKEN
======================

•  bullet kept with its bullet
* another <b>unclosed tag
  continued on a second line
1) numbered

  indented paragraph with   double  spaces\x0b and a vertical tab
<script>alert("x")</script> stays as text



42
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_plain_text_keeps_every_character(newline: str) -> None:
    source = ADVERSARIAL_TEXT.replace("\n", newline)
    elements = text_elements("txt", source)
    assert non_space("".join(e.text for e in elements)) == non_space(source)
    assert [e.category for e in elements] == [
        "Title",
        *["ListItem"] * 3,
        "NarrativeText",
        "UncategorizedText",
    ]


ADVERSARIAL_MD = """\
# Valkyria Chronicles <unk>

Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : 戦場のヴァルキュリア3 ) is a game.
The <unk> <unk> team returned , as did <ref name="x"> Hitoshi Sakimoto .

<script>alert("not a script here")</script>

<div class="note">An unclosed div with <span>unclosed span text

## Code and tables

```python
if a < b and c > d: print("<tag>")
```

    indented <code> block

| name | value |
|------|-------|
| <unk> | 42 <b> |
| second | row |

- item with <unk> token
  - nested <item>
> quoted <unk> words

Term with *emphasis* and `inline <code>` and __strong__ words.
"""


def test_markdown_keeps_html_like_tokens_and_every_word() -> None:
    elements = markdown_elements(ADVERSARIAL_MD)
    text = "\n".join(e.text for e in elements)
    assert words(text) == words(ADVERSARIAL_MD) - Counter(["python"])  # the fence's language
    assert text.count("<unk>") == ADVERSARIAL_MD.count("<unk>")
    assert '<script>alert("not a script here")</script>' in text
    categories = Counter(e.category for e in elements)
    assert categories["Title"] == 2 and categories["Table"] == 1
    assert categories["CodeSnippet"] == 2 and categories["ListItem"] == 2
    assert [e.depth for e in elements if e.category == "Title"] == [0, 1]


MARKUP_MD = r"""# Escapes \& entities

It\'s a \*literal\* star, a back\\slash and \[brackets\]; AT&amp;T &lt;b&gt; &#35;5 &copy; done.
Tags <unk> <ref name="x"> and </div> stay; so does a lone < and a 3 > 2.
Code `a\'b` and ``x `y` z`` and `<code>` spans; *em*, **strong**, _under_ and ~~strike~~.
See [the guide](docs/setup-guide.md "Setup title"), ![a diagram](img/flow.png), <https://auto.example/x>,
<ops@example.org>, [a reference][ref1] and [a missing one][nowhere].

[ref1]: https://example.com/ref-target "Ref title"

- item with `code` and \_escaped\_ underscores
"""


def test_markdown_keeps_escapes_entities_and_the_words_of_links() -> None:
    """The file's characters where they are text; only structure markup goes (documented
    in markdown_elements and docs/search-and-eval.md)."""
    elements = markdown_elements(MARKUP_MD)
    text = "\n".join(e.text for e in elements)
    # Nothing lost; a reference link [text][ref1] becomes text (target), so its target is
    # written both there and where it is defined, and its label only at the definition.
    assert not words(MARKUP_MD) - words(text) - Counter(["ref1"])
    assert set(words(MARKUP_MD)) <= set(words(text))
    assert words(text) - words(MARKUP_MD) == words("https://example.com/ref-target Ref title")
    # Escapes and entities as the file writes them: an excerpt copied from it is found.
    for written in (
        r"It\'s a \*literal\* star, a back\\slash and \[brackets\];",
        "AT&amp;T &lt;b&gt; &#35;5 &copy; done.",
        'Tags <unk> <ref name="x"> and </div> stay; so does a lone < and a 3 > 2.',
        r"Code a\'b and x `y` z and <code> spans;",
        'See the guide (docs/setup-guide.md "Setup title"), a diagram (img/flow.png), '
        "https://auto.example/x,\nops@example.org, a reference (https://example.com/ref-target "
        '"Ref title") and [a missing one][nowhere].',
        '[ref1]: https://example.com/ref-target "Ref title"',
        r"item with code and \_escaped\_ underscores",
    ):
        assert written in text
    assert "em, strong, under and ~~strike~~." in text  # commonmark has no strikethrough
    assert [e.category for e in elements] == [
        "Title",
        "NarrativeText",
        "NarrativeText",  # the reference definition, in its place
        "ListItem",
    ]
    assert elements[0].text == r"Escapes \& entities"


def test_a_huge_markdown_paragraph_is_split_into_its_lines() -> None:
    """wikitext-like: 2,000 lines with no blank line between them are one Markdown
    paragraph of 150,000 characters; it becomes one element per line."""
    lines = [f" = = Section {i} = = <unk> text of line {i} @-@ with words . " for i in range(2000)]
    source = "# Title\n\n" + "\n".join(lines) + "\n"
    assert len(source) > 100_000
    doc = load("wiki.md", source.encode())
    assert max(len(e.text) for e in doc.elements) <= LONG_ELEMENT
    assert len(doc.elements) == 2001
    assert words("\n".join(e.text for e in doc.elements)) == words(source)


def test_a_long_paragraph_without_line_breaks_stays_whole() -> None:
    source = "word <unk> " * 20_000
    elements = text_elements("md", source)
    assert len(elements) == 1
    assert words(elements[0].text) == words(source)


def test_csv_and_tsv_keep_every_cell() -> None:
    csv_text = 'name,role,notes\nAda,"Engineer, lead","likes <unk> tokens"\nBob,Ops,"multi\nline"\n'
    (table,) = text_elements("csv", csv_text)
    assert table.category == "Table"
    assert table.text.splitlines()[:2] == [
        "name role notes",
        "Ada Engineer, lead likes <unk> tokens",
    ]
    assert words(table.text) == words(csv_text)
    (tsv,) = text_elements("tsv", "a\tb c\n1\t2\n")
    assert tsv.text == "a b c\n1 2"


def test_sample_markdown_reads_as_unstructured_read_it() -> None:
    """The handbook's elements (types, heading levels, text) are those unstructured gave."""
    doc = load("welcome.md", (SAMPLE_DOCS / "handbook/welcome.md").read_bytes())
    assert len(doc.elements) == 38
    titles = [(e.text, e.depth) for e in doc.elements if e.category == "Title"]
    assert titles[:3] == [
        ("Welcome to Kestrel Cycle Works", 0),
        ("Who we are", 1),
        ("A short history", 1),
    ]
    items = re.findall(
        r"(?m)^[ \t]*(?:[-*+]|\d+\.) ", (SAMPLE_DOCS / "handbook/welcome.md").read_text()
    )
    assert sum(e.category == "ListItem" for e in doc.elements) == len(items)
    (table,) = [e for e in doc.elements if e.category == "Table"]
    assert table.text.startswith("Name Role Go to them for Ingrid Halvorsen")


def test_whitespace_only_text_is_a_failure(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="only whitespace"):
        load("blank.md", b"\n\n   \n")
