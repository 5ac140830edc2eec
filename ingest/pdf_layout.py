"""pdfminer's ``group_textboxes``, with the same result in a fraction of the time.

pdfminer orders a page's text boxes by clustering them: it puts the distance of every
pair of boxes in a heap, merges the closest pair that has nothing between it, and pushes
the new group's distance to every box left. In Python that is a tuple and a heap
operation per pair, and on pages of many boxes (tables, forms) it is a third of all PDF
parsing time (benchmarks/results/parse_profile.md). This version computes the distances
with numpy and keeps each batch (all first pairs; one group against what is left) as
one sorted array, so the heap holds only one entry per batch. The order in which pairs
are taken is pdfminer's own: (skipped-once, distance, id of the first, id of the second),
a total order, so the same pairs merge into the same groups in the same order; the
distances are computed with the same operations in the same order, so they are equal to
the last bit. Pages with few boxes keep pdfminer's code.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
from pdfminer.layout import (
    LAParams,
    LTLayoutContainer,
    LTTextBoxVertical,
    LTTextGroupLRTB,
    LTTextGroupTBRL,
)
from pdfminer.utils import Plane

_original = LTLayoutContainer.group_textboxes
SMALL = 40
"""Boxes on a page below which pdfminer's own code runs (it is fast enough there)."""
_CHUNK = 4096


class _Run:
    """Candidate pairs (first, second) sorted by (distance, id(first), id(second))."""

    __slots__ = ("_buf", "_end", "dists", "first", "ids1", "ids2", "left", "pos", "right")

    def __init__(
        self,
        dists: np.ndarray[Any, Any],
        ids1: np.ndarray[Any, Any],
        ids2: np.ndarray[Any, Any],
        left: np.ndarray[Any, Any],
        right: np.ndarray[Any, Any],
    ) -> None:
        order = np.lexsort((ids2, ids1, dists))
        self.dists, self.ids1, self.ids2 = dists[order], ids1[order], ids2[order]
        self.left, self.right = left[order], right[order]
        self.pos = 0
        self._end = 0
        self._buf: tuple[list[float], list[int], list[int], list[int], list[int]] = (
            [],
            [],
            [],
            [],
            [],
        )
        self.first = 0

    def head(self, gone: list[bool]) -> tuple[float, int, int, int, int] | None:
        """The first pair whose two objects are both still unmerged, or None."""
        while True:
            if self.pos >= self._end:
                if self._end >= len(self.dists):
                    return None
                start, self._end = self._end, min(self._end + _CHUNK, len(self.dists))
                self.first = start
                s = slice(start, self._end)
                self._buf = (
                    self.dists[s].tolist(),
                    self.ids1[s].tolist(),
                    self.ids2[s].tolist(),
                    self.left[s].tolist(),
                    self.right[s].tolist(),
                )
                self.pos = start
            i = self.pos - self.first
            a, b = self._buf[3][i], self._buf[4][i]
            if gone[a] or gone[b]:
                self.pos += 1
                continue
            return self._buf[0][i], self._buf[1][i], self._buf[2][i], a, b


def group_textboxes(self: LTLayoutContainer, laparams: LAParams, boxes: Any) -> Any:
    """pdfminer's ``LTLayoutContainer.group_textboxes``, same groups (see the module)."""
    if len(boxes) < SMALL:
        return _original(self, laparams, boxes)
    plane: Plane[Any] = Plane(self.bbox)
    objs: list[Any] = list(boxes)
    n = len(objs)
    gone = [False] * n
    index = {id(b): i for i, b in enumerate(objs)}
    # Room for every group to come: n boxes merge in n - 1 steps.
    coords = np.zeros((2 * n, 4), dtype=np.float64)
    coords[:n] = [(b.x0, b.y0, b.x1, b.y1) for b in objs]
    areas = np.zeros(2 * n, dtype=np.float64)
    areas[:n] = [b.width * b.height for b in objs]
    ids = np.zeros(2 * n, dtype=np.int64)
    ids[:n] = [id(b) for b in objs]
    alive = np.zeros(2 * n, dtype=bool)
    alive[:n] = True

    def distances(i: np.ndarray[Any, Any], j: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        # pdfminer's dist(), elementwise, in its order of operations.
        a, b = coords[i], coords[j]
        x0 = np.minimum(a[:, 0], b[:, 0])
        y0 = np.minimum(a[:, 1], b[:, 1])
        x1 = np.maximum(a[:, 2], b[:, 2])
        y1 = np.maximum(a[:, 3], b[:, 3])
        return (x1 - x0) * (y1 - y0) - areas[i] - areas[j]

    runs: list[_Run] = []
    heads: list[tuple[float, int, int, int]] = []

    def push_head(k: int) -> None:
        found = runs[k].head(gone)
        if found is not None:
            heapq.heappush(heads, (found[0], found[1], found[2], k))

    def add_run(i: np.ndarray[Any, Any], j: np.ndarray[Any, Any]) -> None:
        runs.append(_Run(distances(i, j), ids[i], ids[j], i, j))
        push_head(len(runs) - 1)

    first, second = np.triu_indices(n, 1)
    add_run(first, second)
    plane.extend(objs)
    retry: list[tuple[bool, float, int, int, Any, Any]] = []

    def isany(obj1: Any, obj2: Any) -> bool:
        x0, y0 = min(obj1.x0, obj2.x0), min(obj1.y0, obj2.y0)
        x1, y1 = max(obj1.x1, obj2.x1), max(obj1.y1, obj2.y1)
        return bool(set(plane.find((x0, y0, x1, y1))).difference((obj1, obj2)))

    while heads or retry:
        if heads:
            # Every pair not yet skipped comes before every skipped one (False < True).
            d, id1, id2, k = heapq.heappop(heads)
            found = runs[k].head(gone)
            if found is None or found[1] != id1 or found[2] != id2:
                push_head(k)  # an object merged since this head was pushed
                continue
            a, b = found[3], found[4]
            runs[k].pos += 1
            push_head(k)
            obj1, obj2 = objs[a], objs[b]
            if isany(obj1, obj2):
                heapq.heappush(retry, (True, d, id1, id2, obj1, obj2))
                continue
        else:
            _, d, id1, id2, obj1, obj2 = heapq.heappop(retry)
            a, b = index[id1], index[id2]
            if gone[a] or gone[b]:
                continue
        vertical = (LTTextBoxVertical, LTTextGroupTBRL)
        if isinstance(obj1, vertical) or isinstance(obj2, vertical):
            group: Any = LTTextGroupTBRL([obj1, obj2])
        else:
            group = LTTextGroupLRTB([obj1, obj2])
        plane.remove(obj1)
        plane.remove(obj2)
        gone[a] = gone[b] = True
        alive[a] = alive[b] = False
        g = len(objs)
        objs.append(group)
        gone.append(False)
        index[id(group)] = g
        coords[g] = (group.x0, group.y0, group.x1, group.y1)
        areas[g] = group.width * group.height
        ids[g] = id(group)
        others = np.flatnonzero(alive)
        if len(others):
            add_run(np.full(len(others), g), others)
        alive[g] = True
        plane.add(group)
    return list(plane)


def install() -> None:
    """Use this version for every page pdfminer lays out in this process."""
    LTLayoutContainer.group_textboxes = group_textboxes  # type: ignore[method-assign]
