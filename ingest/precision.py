"""Embedding precision: which one to run, whether its vectors share a collection, and the
quality check that decides it.

A lower precision (bf16 on a CPU's AMX or AVX512-BF16 units) encodes faster but moves every
vector slightly. Vectors of two precisions share a collection only where the lower one
passed the quality check against fp32 for that model (`CHECKED`): then switching
precision embeds nothing again. Elsewhere the vectors belong to their own vector space
(`vector_space`), which the collection and the manifest record, so a switch stops with an
error that says what to do instead of mixing incomparable vectors. No torch here: the
query path decides the vector space without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Precision = Literal["auto", "fp32", "bf16"]
"""What ``embedding.precision`` accepts."""

Resolved = Literal["fp32", "bf16"]

MIN_MEAN_COSINE = 0.999
"""The quality check's bar on the mean cosine similarity to the fp32 vectors."""
MIN_COSINE = 0.99
"""... and on the smallest one: no chunk may move far, even if the mean is fine."""
MAX_RECALL_DROP = 0.01
"""... and on `headwater eval` recall: within 1 point of fp32 on the shipped question sets."""

_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
CHECKED: dict[str, frozenset[str]] = {
    # benchmarks/results/precision.md: mean cosine 0.999985, min 0.999967 on 600 bench
    # corpus chunks; eval recall at k=5 equal to fp32's on both shipped question sets.
    _MINILM: frozenset({"bf16"}),
    "all-MiniLM-L6-v2": frozenset({"bf16"}),
}
"""Per model, the precisions that passed the quality check against fp32 (recorded)."""


def passed_check(model: str, precision: str) -> bool:
    """Whether `precision`'s vectors of `model` are interchangeable with fp32's."""
    return precision == "fp32" or precision in CHECKED.get(model, frozenset())


def vector_space(model: str, precision: Precision) -> str:
    """What the collection and the manifest record as the vectors' model.

    fp32, and every precision that passed the check for this model, are one space named
    by the model alone (so collections made before precision existed stay valid); any
    other precision is a space of its own, ``"<model> [<precision>]"``. 'auto' only ever
    picks a precision that passed, so it is the model's space too.
    """
    if precision == "auto" or passed_check(model, precision):
        return model
    return f"{model} [{precision}]"


def model_of(space: str) -> str:
    """The model half of a `vector_space` name."""
    return space.split(" [", 1)[0]


def precision_mismatch(where: str, stored: str, wanted: str) -> str:
    """The error for a collection whose vectors are of another precision's space."""

    def named(space: str) -> str:
        return space[len(model_of(space)) :].strip(" []") or "fp32"

    auto = " (or 'auto')" if stored == model_of(stored) else ""
    return (
        f"{where} holds {model_of(stored)} vectors computed in {named(stored)}, and "
        f"embedding.precision = {named(wanted)!r} has not passed the quality check against "
        f"them, so the two would rank wrongly together: set embedding.precision = "
        f"{named(stored)!r}{auto}, or set store.collection to a new name and sync to "
        "embed everything into it"
    )


def pick_precision(
    requested: Precision, model: str, device_kind: str, bf16_units: bool
) -> Resolved:
    """The precision to encode in. 'auto': bf16 on a CPU with bf16 matrix units (AMX or
    AVX512-BF16) for a model whose bf16 vectors passed the check, else fp32. On a GPU
    'auto' leaves the choice to ``embedding.fp16``; without bf16 units bf16 runs, slowly,
    when asked for by name."""
    if requested != "auto":
        return requested
    if device_kind == "cpu" and bf16_units and passed_check(model, "bf16"):
        return "bf16"
    return "fp32"


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX tiles or AVX512-BF16)."""
    import torch

    cpu: Any = torch.cpu
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


@dataclass(frozen=True)
class QualityCheck:
    """How close a precision's vectors are to fp32's, and its retrieval recall beside fp32's."""

    precision: str
    chunks: int
    mean_cosine: float
    min_cosine: float
    recall: dict[str, tuple[float, float]]
    """Per question set: (fp32 recall, this precision's recall)."""

    @property
    def passed(self) -> bool:
        close = self.mean_cosine >= MIN_MEAN_COSINE and self.min_cosine >= MIN_COSINE
        recall_kept = all(
            fp32 - other <= MAX_RECALL_DROP + 1e-9 for fp32, other in self.recall.values()
        )
        return close and recall_kept


def cosines(
    reference: np.ndarray[Any, Any], candidate: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Row-wise cosine similarity of two equally shaped matrices of vectors."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-12)


def quality_check(
    precision: str,
    reference: np.ndarray[Any, Any],
    candidate: np.ndarray[Any, Any],
    recall: dict[str, tuple[float, float]] | None = None,
) -> QualityCheck:
    """The check's figures for `candidate` vectors against the fp32 `reference` ones."""
    sims = cosines(reference, candidate)
    return QualityCheck(
        precision=precision,
        chunks=len(sims),
        mean_cosine=float(sims.mean()) if len(sims) else 1.0,
        min_cosine=float(sims.min()) if len(sims) else 1.0,
        recall=dict(recall or {}),
    )
