from __future__ import annotations

import pytest

from headwater.ingest.ids import chunk_id, chunk_ids, settings_key
from headwater.ingest.models import DocumentId, source_id


def test_same_inputs_same_id() -> None:
    assert chunk_id("s:a.md", "k", "text", 0) == chunk_id("s:a.md", "k", "text", 0)


def test_each_input_changes_the_id() -> None:
    base = chunk_id("s:a.md", "k", "text", 0)
    assert chunk_id("s:b.md", "k", "text", 0) != base
    assert chunk_id("s:a.md", "k2", "text", 0) != base
    assert chunk_id("s:a.md", "k", "text!", 0) != base
    assert chunk_id("s:a.md", "k", "text", 1) != base


def test_parts_cannot_run_into_each_other() -> None:
    assert chunk_id("s:a", "bc", "t", 0) != chunk_id("s:ab", "c", "t", 0)


def test_occurrence_counts_repeats_only() -> None:
    ids = chunk_ids("s:a", "k", ["x", "y", "x", "x"])
    assert len(set(ids)) == 4
    # Removing the first "y" does not renumber the x's.
    assert chunk_ids("s:a", "k", ["x", "x", "x"]) == [ids[0], ids[2], ids[3]]


def test_settings_key_is_order_independent() -> None:
    assert settings_key({"a": 1, "b": 2}) == settings_key({"b": 2, "a": 1})
    assert settings_key({"a": 1}) != settings_key({"a": 2})


@pytest.mark.parametrize(
    ("text", "source", "path"),
    [
        ("docs:a.md", "docs", "a.md"),
        ("docs:policies/2024: review.pdf", "docs", "policies/2024: review.pdf"),
        ("s3-bucket:deep/dir/x.html", "s3-bucket", "deep/dir/x.html"),
    ],
)
def test_document_ids_build_and_parse_in_one_place(text: str, source: str, path: str) -> None:
    doc = DocumentId.parse(text)
    assert (doc.source, doc.path) == (source, path)
    assert str(doc) == text == source_id(source, path)


@pytest.mark.parametrize("text", ["no-colon", ":a.md", ""])
def test_a_string_that_is_no_document_id_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a document id"):
        DocumentId.parse(text)
