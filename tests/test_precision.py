"""Embedding precision: which one runs, which collections it may share, and the check."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from headwater.ingest.embedding import Embedder, EmbeddingConfig
from headwater.ingest.engine import SyncEngine
from headwater.ingest.errors import StoreError
from headwater.ingest.models import CollectionSpec
from headwater.ingest.precision import (
    cpu_has_bf16_units,
    pick_precision,
    quality_check,
    vector_space,
)

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
OTHER = "/models/my-bert"


@pytest.mark.parametrize(
    ("requested", "model", "device", "bf16_units", "expected"),
    [
        ("auto", MINILM, "cpu", True, "bf16"),
        ("auto", MINILM, "cpu", False, "fp32"),  # emulated bf16 is slower than fp32
        ("auto", OTHER, "cpu", True, "fp32"),  # never checked: fp32 keeps its vectors
        ("auto", MINILM, "cuda", False, "fp32"),  # embedding.fp16 decides on a GPU
        ("fp32", MINILM, "cpu", True, "fp32"),
        ("bf16", MINILM, "cpu", False, "bf16"),  # asked for by name
        ("bf16", OTHER, "cpu", True, "bf16"),
    ],
)
def test_pick_precision(
    requested: str, model: str, device: str, bf16_units: bool, expected: str
) -> None:
    assert pick_precision(requested, model, device, bf16_units) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "precision", "space"),
    [
        (MINILM, "fp32", MINILM),
        (MINILM, "bf16", MINILM),  # passed the check: shares fp32's collection
        (MINILM, "auto", MINILM),
        ("all-MiniLM-L6-v2", "bf16", "all-MiniLM-L6-v2"),
        (OTHER, "fp32", OTHER),
        (OTHER, "auto", OTHER),  # auto picks fp32 for an unchecked model
        (OTHER, "bf16", f"{OTHER} [bf16]"),  # unchecked: a space of its own
    ],
)
def test_vector_space(model: str, precision: str, space: str) -> None:
    assert vector_space(model, precision) == space  # type: ignore[arg-type]
    assert EmbeddingConfig(model=model, precision=precision).vector_space == space  # type: ignore[arg-type]


def test_precision_is_validated() -> None:
    with pytest.raises(ValueError, match="precision"):
        EmbeddingConfig(precision="int4")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("noise", "recall", "passed"),
    [
        (0.0, {"sample_docs": (1.0, 1.0)}, True),
        (0.001, {"sample_docs": (0.98, 0.971)}, True),  # 0.9 points down: within 1
        (0.001, {"sample_docs": (0.98, 0.96)}, False),  # 2 points down
        (0.001, {"a": (0.8, 0.81), "b": (0.8, 0.78)}, False),  # any set counts
        (0.3, {"sample_docs": (1.0, 1.0)}, False),  # vectors moved too far
    ],
)
def test_quality_check(noise: float, recall: dict[str, tuple[float, float]], passed: bool) -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(50, 16)).astype(np.float32)
    candidate = reference + noise * rng.normal(size=reference.shape).astype(np.float32)
    check = quality_check("bf16", reference, candidate, recall)
    assert check.chunks == 50
    assert check.min_cosine <= check.mean_cosine <= 1.0 + 1e-9
    assert check.passed is passed


def test_bf16_vectors_stay_close_to_fp32_and_normalized(embedder: Embedder) -> None:
    if not cpu_has_bf16_units():
        pytest.skip("this CPU has no bf16 matrix units; 'auto' runs fp32")
    texts = [
        "Expense claims must be filed within thirty days of purchase.",
        "The on-call engineer is paid an allowance for each week on the rota. " * 8,
        "Ünïcödé text, numbers 12,345.67 and symbols <>&.",
    ]
    auto = Embedder(EmbeddingConfig(device="cpu"))
    auto._model = embedder.model  # one copy of the weights; precision is per call
    assert auto.precision == "bf16"  # 'auto' on this machine
    low, full = auto.embed(texts), embedder.embed(texts)  # the fixture runs fp32
    assert low.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-6)
    check = quality_check("bf16", full, low)
    assert check.min_cosine > 0.999
    assert not np.array_equal(low, full)  # bf16 really ran


def test_collection_of_another_precision_space_names_the_fix(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    from headwater.connectors.stores.faiss import FaissConfig, FaissStore

    store = FaissStore(FaissConfig(), collection="c", state_dir=tmp_path)
    store.ensure_collection(CollectionSpec(16, OTHER))
    store.ensure_collection(CollectionSpec(16, vector_space(OTHER, "auto")))  # same space
    with pytest.raises(StoreError) as err:
        store.ensure_collection(CollectionSpec(16, vector_space(OTHER, "bf16")))
    message = str(err.value)
    assert "embedding.precision = 'fp32'" in message and "store.collection" in message
    assert "quality check" in message
    store.close()


def test_switching_between_checked_precisions_embeds_nothing_again(
    docs: Path, engine_factory: Callable[..., SyncEngine]
) -> None:
    for extra in sorted(docs.iterdir())[2:]:
        shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
    first = engine_factory(docs, embedding={"device": "cpu", "precision": "fp32"}).run()
    assert first.ok and first.chunk_counts()["embedded"] > 0
    switched = engine_factory(docs, embedding={"device": "cpu", "precision": "bf16"}).run()
    assert switched.ok
    assert switched.file_counts()["unchanged"] == first.file_counts()["added"]
    assert switched.chunk_counts() == {"embedded": 0, "written": 0, "deleted": 0}
