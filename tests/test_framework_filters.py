"""LangChain filter dicts and LlamaIndex MetadataFilters as Headwater QueryFilters, by tables."""

from __future__ import annotations

from typing import Any

import pytest

from headwater.connectors.retrievers.common import NOTHING, langchain_filter
from headwater.connectors.retrievers.filters import UnsupportedFilterError
from headwater.ingest.models import QueryFilter

pytest.importorskip("llama_index.core", reason="the llamaindex extra is not installed")

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from headwater.connectors.retrievers.llamaindex import llamaindex_filter

LANGCHAIN = [
    ({"file_type": "pdf"}, QueryFilter(file_types=("pdf",))),
    ({"file_type": {"$eq": "pdf"}}, QueryFilter(file_types=("pdf",))),
    ({"file_type": {"$in": ["pdf", "docx"]}}, QueryFilter(file_types=("docx", "pdf"))),
    ({"source": "docs:it/a.txt"}, QueryFilter(source_ids=("docs:it/a.txt",))),
    ({"source_id": "docs:it/a.txt"}, QueryFilter(source_ids=("docs:it/a.txt",))),
    ({"path": "it/a.txt"}, QueryFilter(source_glob="it/a.txt")),
    ({"page": 2}, QueryFilter(pages=(2,))),
    ({"page": {"$gte": 2}}, QueryFilter(page_min=2)),
    ({"page": {"$gt": 2}}, QueryFilter(page_min=3)),
    ({"page": {"$lt": 3}}, QueryFilter(page_max=2)),
    ({"page": {"$gte": 2, "$lte": 4}}, QueryFilter(page_min=2, page_max=4)),
    ({"page": {"$in": [1, 2, 5], "$lte": 2}}, QueryFilter(pages=(1, 2))),
    (
        {"$and": [{"file_type": "pdf"}, {"page": {"$gte": 2}}]},
        QueryFilter(file_types=("pdf",), page_min=2),
    ),
    ({"file_type": "pdf", "page": 1}, QueryFilter(file_types=("pdf",), pages=(1,))),
    (
        {"$or": [{"file_type": "pdf"}, {"file_type": {"$in": ["md"]}}]},
        QueryFilter(file_types=("md", "pdf")),
    ),
    (
        {"$and": [{"file_type": {"$in": ["pdf", "md"]}}, {"file_type": "md"}]},
        QueryFilter(file_types=("md",)),
    ),
    ({}, None),
    # Conditions no chunk can pass: the search finds nothing, without asking the store.
    ({"$and": [{"file_type": "pdf"}, {"file_type": "md"}]}, NOTHING),
    ({"page": {"$gt": 4, "$lt": 3}}, NOTHING),
]


@pytest.mark.parametrize(("spec", "expected"), LANGCHAIN)
def test_langchain_filters(spec: dict[str, Any], expected: object) -> None:
    assert langchain_filter(spec) == expected


UNSUPPORTED = [
    ({"file_type": {"$ne": "pdf"}}, "'file_type' ne is not supported"),
    ({"file_type": {"$nin": ["pdf"]}}, "nin is not supported"),
    ({"section": "Intro"}, "filter on 'section' is not supported"),
    ({"$or": [{"file_type": "pdf"}, {"page": 2}]}, r"\(file_type eq OR page eq\)"),
    ({"$not": {"file_type": "pdf"}}, "'\\$not' is not supported"),
    ({"file_type": {"$gte": "a"}}, "'file_type' gte is not supported"),
    ({"page": {"$gte": "two"}}, "'two' is not a page number"),
    ({"path": {"$in": ["a.md", "b.md"]}}, "several paths"),
    ({"path": "policies/*"}, "would read as a glob"),
    ({"file_type": {"pdf": 1}}, "not an operator"),
    ({"$and": {"file_type": "pdf"}}, "takes a list"),
    ({"$or": [{"$and": [{"file_type": "pdf"}, {"page": 1}]}, {"page": 2}]}, "inside an OR"),
]


@pytest.mark.parametrize(("spec", "message"), UNSUPPORTED)
def test_unsupported_langchain_filters_raise(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(UnsupportedFilterError, match=message):
        langchain_filter(spec)


def _mf(*filters: MetadataFilter | MetadataFilters, condition: str = "and") -> MetadataFilters:
    return MetadataFilters(filters=list(filters), condition=FilterCondition(condition))


def _f(key: str, value: Any, op: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


LLAMAINDEX = [
    (_mf(_f("file_type", "pdf")), QueryFilter(file_types=("pdf",))),
    (_mf(_f("file_type", ["pdf", "md"], FilterOperator.IN)), QueryFilter(file_types=("md", "pdf"))),
    (_mf(_f("page", 2, FilterOperator.GT)), QueryFilter(page_min=3)),
    (_mf(_f("page", 2, FilterOperator.GTE)), QueryFilter(page_min=2)),
    (_mf(_f("page", 2, FilterOperator.LT)), QueryFilter(page_max=1)),
    (_mf(_f("page", 2, FilterOperator.LTE)), QueryFilter(page_max=2)),
    (
        _mf(_f("file_type", "pdf"), _mf(_f("page", 1), _f("page", 3), condition="or")),
        QueryFilter(file_types=("pdf",), pages=(1, 3)),
    ),
    (
        _mf(_f("file_type", "pdf"), _f("file_type", "md"), condition="or"),
        QueryFilter(file_types=("md", "pdf")),
    ),
    (_mf(), None),
    (None, None),
    ({"file_types": ["pdf"]}, QueryFilter(file_types=("pdf",))),  # Headwater's own form
]


@pytest.mark.parametrize(("filters", "expected"), LLAMAINDEX)
def test_llamaindex_filters(filters: Any, expected: object) -> None:
    assert llamaindex_filter(filters) == expected


LLAMA_UNSUPPORTED = [
    (_mf(_f("file_type", "pdf", FilterOperator.NE)), "'file_type' ne is not supported"),
    (_mf(_f("file_type", ["pdf"], FilterOperator.NIN)), "nin is not supported"),
    (_mf(_f("section", "x", FilterOperator.TEXT_MATCH)), "filter on 'section'"),
    (_mf(_f("file_type", "pd", FilterOperator.TEXT_MATCH)), "text_match is not supported"),
    (_mf(_f("file_type", "pdf"), condition="not"), "condition NOT is not supported"),
    (_mf(_f("file_type", "pdf"), _f("page", 1), condition="or"), "OR page eq"),
]


@pytest.mark.parametrize(("filters", "message"), LLAMA_UNSUPPORTED)
def test_unsupported_llamaindex_filters_raise(filters: MetadataFilters, message: str) -> None:
    with pytest.raises(UnsupportedFilterError, match=message):
        llamaindex_filter(filters)


def test_page_bounds_match_only_chunks_with_pages() -> None:
    from headwater.ingest.models import ChunkMetadata

    def meta(page: int | None) -> ChunkMetadata:
        pages = () if page is None else (page,)
        return ChunkMetadata("docs:a", "docs", "a", "pdf", 0, 0, 1, pages)

    assert [QueryFilter(page_min=2).matches(meta(p)) for p in (None, 1, 2, 3)] == [
        False,
        False,
        True,
        True,
    ]
    assert [QueryFilter(page_max=2).matches(meta(p)) for p in (None, 1, 2, 3)] == [
        False,
        True,
        True,
        False,
    ]
