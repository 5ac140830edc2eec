"""Hybrid search's fusion of a dense and a lexical ranking: pure functions, by table."""

from __future__ import annotations

import pytest

from headwater.ingest.fusion import fuse, rrf_scores, weighted_scores
from headwater.ingest.models import ChunkMetadata, Fusion, FusionMethod, QueryHit, SearchMode
from headwater.ingest.search import SearchConfig, as_mode

META = ChunkMetadata("s:a.md", "s", "a.md", "md", 0, 0, 1)


def hits(*pairs: tuple[str, float]) -> list[QueryHit]:
    return [QueryHit(cid, score, f"text {cid}", META) for cid, score in pairs]


@pytest.mark.parametrize(
    ("rankings", "rrf_k", "expected"),
    [
        ([["a", "b"], ["b", "c"]], 60, {"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 62}),
        ([["a"], []], 60, {"a": 1 / 61}),
        ([[], []], 60, {}),
        ([["a", "b", "c"]], 1, {"a": 1 / 2, "b": 1 / 3, "c": 1 / 4}),
        ([["x", "y"], ["y", "x"]], 10, {"x": 1 / 11 + 1 / 12, "y": 1 / 12 + 1 / 11}),
    ],
)
def test_rrf_scores(rankings: list[list[str]], rrf_k: int, expected: dict[str, float]) -> None:
    assert rrf_scores(rankings, rrf_k) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("dense", "lexical", "alpha", "expected"),
    [
        # Min-max within each list: best 1, worst 0; missing from a list adds nothing.
        ([("a", 0.9), ("b", 0.5)], [("b", 12.0), ("c", 3.0)], 0.5, {"a": 0.5, "b": 0.5, "c": 0}),
        ([("a", 0.9), ("b", 0.5)], [("b", 12.0), ("c", 3.0)], 0.8, {"a": 0.8, "b": 0.2, "c": 0}),
        ([("a", 0.9), ("b", 0.7), ("c", 0.5)], [], 0.5, {"a": 0.5, "b": 0.25, "c": 0}),
        # One hit, or all equal: each is its list's best.
        ([("a", 0.3)], [("a", 7.0)], 0.5, {"a": 1.0}),
        ([("a", 0.4), ("b", 0.4)], [], 1.0, {"a": 1.0, "b": 1.0}),
        ([("a", 0.9)], [("b", 2.0)], 0.0, {"a": 0.0, "b": 1.0}),
    ],
)
def test_weighted_scores(
    dense: list[tuple[str, float]],
    lexical: list[tuple[str, float]],
    alpha: float,
    expected: dict[str, float],
) -> None:
    assert weighted_scores(dense, lexical, alpha) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("dense", "lexical", "fusion", "k", "expected"),
    [
        # In both lists beats first in one.
        ([("a", 0.9), ("b", 0.8)], [("b", 5.0), ("c", 4.0)], Fusion(), 3, ["b", "a", "c"]),
        ([("a", 0.9), ("b", 0.8)], [("b", 5.0), ("c", 4.0)], Fusion(), 1, ["b"]),
        # Ties keep first appearance, dense before lexical.
        ([("a", 0.9)], [("c", 4.0)], Fusion(), 2, ["a", "c"]),
        ([], [("c", 4.0), ("d", 1.0)], Fusion(), 5, ["c", "d"]),
        ([("a", 0.9), ("b", 0.1)], [], Fusion(), 5, ["a", "b"]),
        ([], [], Fusion(), 5, []),
        # Weighted: a strong lexical match outweighs a dense one when alpha leans lexical.
        (
            [("a", 0.9), ("b", 0.8), ("c", 0.1)],
            [("c", 9.0), ("b", 1.0)],
            Fusion(FusionMethod.WEIGHTED, alpha=0.3),
            3,
            ["c", "a", "b"],
        ),
        (
            [("a", 0.9), ("b", 0.8), ("c", 0.1)],
            [("c", 9.0), ("b", 1.0)],
            Fusion(FusionMethod.WEIGHTED, alpha=0.9),
            3,
            ["a", "b", "c"],
        ),
    ],
)
def test_fuse_orders_and_cuts(
    dense: list[tuple[str, float]],
    lexical: list[tuple[str, float]],
    fusion: Fusion,
    k: int,
    expected: list[str],
) -> None:
    fused = fuse(hits(*dense), hits(*lexical), k, fusion)
    assert [h.id for h in fused] == expected
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)
    assert all(h.text == f"text {h.id}" and h.metadata == META for h in fused)


def test_fused_scores_replace_the_originals() -> None:
    (top,) = fuse(hits(("a", 0.9)), hits(("a", 12.0)), 1)
    assert top.score == pytest.approx(2 / 61)


@pytest.mark.parametrize(
    ("given", "default", "expected"),
    [
        (None, SearchMode.DENSE, SearchMode.DENSE),
        (None, SearchMode.HYBRID, SearchMode.HYBRID),
        ("lexical", SearchMode.DENSE, SearchMode.LEXICAL),
        (SearchMode.HYBRID, SearchMode.DENSE, SearchMode.HYBRID),
    ],
)
def test_as_mode(given: str | None, default: SearchMode, expected: SearchMode) -> None:
    assert as_mode(given, default) is expected


def test_unknown_mode_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="'bm25': use one of dense, hybrid, lexical"):
        as_mode("bm25")


def test_search_config_is_validated_and_described() -> None:
    config = SearchConfig.model_validate({"mode": "hybrid", "fusion": "weighted", "alpha": 0.7})
    assert config.fusion_settings() == Fusion(FusionMethod.WEIGHTED, 60, 0.7, 4)
    assert SearchConfig().mode is SearchMode.HYBRID  # the measured best (retrieval_eval.md)
    assert all(f.description for f in SearchConfig.model_fields.values())
    with pytest.raises(ValueError, match="alpha"):
        SearchConfig.model_validate({"alpha": 1.5})
    with pytest.raises(ValueError, match="mode"):
        SearchConfig.model_validate({"mode": "semantic"})
