"""Fusing a dense and a lexical ranking into one, for hybrid search: pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from headwater.ingest.models import Fusion, FusionMethod, QueryHit


def rrf_scores(rankings: Sequence[Sequence[str]], rrf_k: int = 60) -> dict[str, float]:
    """Reciprocal rank fusion: each ranking adds 1 / (rrf_k + rank), rank counted from 1."""
    fused: dict[str, float] = {}
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
    dense: Sequence[tuple[str, float]], lexical: Sequence[tuple[str, float]], alpha: float
) -> dict[str, float]:
    """alpha x the dense score + (1 - alpha) x the lexical score, each min-max scaled to
    0..1 within its list (Weaviate's relativeScoreFusion); missing from a list adds 0."""
    fused: dict[str, float] = {}
    for weight, ranking in ((alpha, dense), (1.0 - alpha, lexical)):
        for (cid, _), scaled in zip(ranking, _min_max([s for _, s in ranking]), strict=True):
            fused[cid] = fused.get(cid, 0.0) + weight * scaled
    return fused


def fuse(
    dense: Sequence[QueryHit], lexical: Sequence[QueryHit], k: int, fusion: Fusion = Fusion()
) -> list[QueryHit]:
    """The top `k` of two rankings merged; each hit's score becomes its fused score.

    Ties keep the order of first appearance, dense before lexical, so a result is stable.
    """
    if fusion.method is FusionMethod.RRF:
        scores = rrf_scores([[h.id for h in dense], [h.id for h in lexical]], fusion.rrf_k)
    else:
        scores = weighted_scores(
            [(h.id, h.score) for h in dense], [(h.id, h.score) for h in lexical], fusion.alpha
        )
    first: dict[str, QueryHit] = {}
    for hit in (*dense, *lexical):
        first.setdefault(hit.id, hit)
    order = sorted(first, key=lambda cid: -scores[cid])  # sorted is stable
    return [replace(first[cid], score=scores[cid]) for cid in order[:k]]
