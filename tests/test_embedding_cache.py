"""The embedding cache: text embedded once is not embedded again, whatever file or
strategy it comes from, and never for another model; length-sorted batches keep order."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from headwater.ingest.embedding import Embedder, EmbeddingConfig, length_batches
from headwater.ingest.embedding_cache import EmbeddingCache, cache_key
from headwater.ingest.engine import SyncEngine

from .conftest import SAMPLE_DOCS

Factory = Callable[..., SyncEngine]

RUNBOOK = "engineering/oncall-runbook.html"


def test_length_batches_group_similar_lengths_and_cover_every_index() -> None:
    counts = [5, 90, 7, 90, 40, 3, 41]
    batches = length_batches(counts, 3)
    assert sorted(i for b in batches for i in b) == list(range(len(counts)))
    assert batches == [[1, 3, 6], [4, 2, 0], [5]]  # longest first, ties in input order


def test_bucketed_encode_keeps_order_and_matches_plain_encode() -> None:
    # fp32, so plain encode() computes the same numbers (bf16 is checked in test_precision).
    embedder = Embedder(EmbeddingConfig(device="cpu", precision="fp32"))
    texts = [
        "Short.",
        "A much longer sentence about the on-call rotation, the allowance and who pays it. " * 6,
        "Receipts under ten pounds are optional.",
        "",
        "Medium length text about bicycles and their frames, wheels and gears.",
    ] * 3
    got = embedder.embed(texts)
    plain = embedder.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert got.shape == plain.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, plain, atol=1e-5)
    np.testing.assert_allclose(got[0], got[5], atol=1e-6)  # same text, same vector


def test_cache_is_keyed_by_model_and_text(tmp_path: Path) -> None:
    assert cache_key("m", "ab") != cache_key("m", "abc") != cache_key("n", "ab")
    vectors = np.eye(3, dtype=np.float32)
    one = EmbeddingCache(tmp_path / "c.sqlite", "model-a")
    one.put(["x", "y", "z"], vectors)
    assert set(one.get(["z", "q", "x"], 3)) == {0, 2}
    np.testing.assert_array_equal(one.get(["y"], 3)[0], vectors[1])
    other = EmbeddingCache(tmp_path / "c.sqlite", "model-b")
    assert other.get(["x", "y", "z"], 3) == {}  # another model never reuses a vector
    assert one.get(["x"], 4) == {}  # nor does a model of another width under the same name
    one.close()
    other.close()


def test_cache_drops_least_recently_used_past_its_size(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite", "m", max_entries=3)
    cache.put(["a", "b", "c"], np.ones((3, 2), dtype=np.float32))
    cache.get(["a"], 2)  # a is now the most recently used
    cache.put(["d"], np.ones((1, 2), dtype=np.float32))
    assert len(cache) == 3
    assert set(cache.get(["a", "b", "c", "d"], 2)) == {0, 2, 3}
    cache.close()


def test_text_moved_to_another_file_is_not_embedded_again(
    tmp_path: Path, engine_factory: Factory
) -> None:
    docs = tmp_path / "docs"
    (docs / "engineering").mkdir(parents=True)
    shutil.copy(SAMPLE_DOCS / RUNBOOK, docs / RUNBOOK)
    engine = engine_factory(docs, store={"backend": "faiss"})
    first = engine.run()
    assert first.chunk_counts()["embedded"] > 0

    # The same document moved to a new name: new chunk ids, the same texts.
    (docs / "archive").mkdir()
    (docs / RUNBOOK).rename(docs / "archive" / "runbook.html")
    moved = engine.run()
    files = {f.path: f for f in moved.files}
    assert files["archive/runbook.html"].written == files["archive/runbook.html"].chunks > 0
    assert moved.chunk_counts()["embedded"] == 0
    assert files[RUNBOOK].deleted == first.chunk_counts()["written"]
    # The reused vectors are the ones the model gives.
    stored = engine.state.store.fetch(engine.state.store.source_ids("docs:archive/runbook.html"))
    fresh = engine.embedder.embed([r.chunk.text for r in stored])
    np.testing.assert_allclose(np.stack([r.vector for r in stored]), fresh, atol=1e-5)


def test_the_cache_can_be_turned_off(tmp_path: Path, engine_factory: Factory) -> None:
    docs = tmp_path / "docs"
    (docs / "engineering").mkdir(parents=True)
    shutil.copy(SAMPLE_DOCS / RUNBOOK, docs / RUNBOOK)
    engine = engine_factory(
        docs, store={"backend": "faiss"}, embedding={"device": "cpu", "cache": False}
    )
    first = engine.run()
    assert engine.embedding_cache is None
    (docs / RUNBOOK).rename(docs / "runbook-copy.html")
    assert engine.run().chunk_counts()["embedded"] == first.chunk_counts()["embedded"]
    assert not (engine.state.state_dir / "embeddings.sqlite").exists()


def test_batch_size_auto_follows_the_device(embedder: Embedder) -> None:
    assert embedder.config.batch_size == "auto"
    assert embedder.batch_size == 32  # CPU


@pytest.mark.parametrize("value", ["0", "-1", "big"])
def test_bad_batch_size_is_refused(value: str) -> None:
    from pydantic import ValidationError

    from headwater.ingest.embedding import EmbeddingConfig

    with pytest.raises(ValidationError):
        EmbeddingConfig(batch_size=value)  # type: ignore[arg-type]
