"""Fusing a dense and a lexical ranking into one, for hybrid search: pure functions."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import TypeVar

from headwater.ingest.models import Fusion, FusionMethod, QueryHit

K = TypeVar("K", bound=Hashable)
"""A ranked item's key: a chunk id, or a store's row id."""


def rrf_scores(rankings: Sequence[Sequence[K]], rrf_k: int = 60) -> dict[K, float]:
    """Reciprocal rank fusion: each ranking adds 1 / (rrf_k + rank), rank counted from 1."""
    fused: dict[K, float] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking, 1):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (rrf_k + rank)
    return fused


def _min_max(scores: Sequence[float]) -> list[float]:
    """Scores scaled to 0..1; all equal (or one) scale to 1: each is its list's best."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high == low:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def weighted_scores(
    dense: Sequence[tuple[K, float]], lexical: Sequence[tuple[K, float]], alpha: float
) -> dict[K, float]:
    """alpha x the dense score + (1 - alpha) x the lexical score, each min-max scaled to
    0..1 within its list (Weaviate's relativeScoreFusion); missing from a list adds 0."""
    fused: dict[K, float] = {}
    for weight, ranking in ((alpha, dense), (1.0 - alpha, lexical)):
        for (cid, _), scaled in zip(ranking, _min_max([s for _, s in ranking]), strict=True):
            fused[cid] = fused.get(cid, 0.0) + weight * scaled
    return fused


def fuse_ranked(
    dense: Sequence[tuple[K, float]],
    lexical: Sequence[tuple[K, float]],
    k: int,
    fusion: Fusion = Fusion(),
) -> list[tuple[K, float]]:
    """The top `k` (key, fused score) of two rankings of (key, score), best first.

    A store fuses keys (row ids) before it reads any row, so only the `k` it returns are
    fetched. Ties keep the order of first appearance, dense before lexical.
    """
    if fusion.method is FusionMethod.RRF:
        scores = rrf_scores([[key for key, _ in dense], [key for key, _ in lexical]], fusion.rrf_k)
    else:
        scores = weighted_scores(dense, lexical, fusion.alpha)
    order = list(dict.fromkeys(key for key, _ in (*dense, *lexical)))
    order.sort(key=lambda key: -scores[key])  # sort is stable
    return [(key, scores[key]) for key in order[:k]]


def fuse(
    dense: Sequence[QueryHit], lexical: Sequence[QueryHit], k: int, fusion: Fusion = Fusion()
) -> list[QueryHit]:
    """The top `k` of two rankings merged; each hit's score becomes its fused score.

    Ties keep the order of first appearance, dense before lexical, so a result is stable.
    """
    first: dict[str, QueryHit] = {}
    for hit in (*dense, *lexical):
        first.setdefault(hit.id, hit)
    fused = fuse_ranked(
        [(h.id, h.score) for h in dense], [(h.id, h.score) for h in lexical], k, fusion
    )
    return [replace(first[cid], score=score) for cid, score in fused]
