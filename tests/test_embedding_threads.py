"""A small batch (a query, one note from the watcher) is encoded on one CPU thread; a
large one gets every core back."""

from __future__ import annotations

import numpy as np
import pytest

from headwater.ingest.embedding import ONE_THREAD_TOKENS, Embedder, cpu_cores

pytestmark = pytest.mark.slow


def test_small_batches_use_one_thread_and_large_ones_all_cores(embedder: Embedder) -> None:
    torch = pytest.importorskip("torch")
    if embedder.model.device.type != "cpu" or cpu_cores() < 2:
        pytest.skip("needs a CPU model and two cores")
    before = torch.get_num_threads()
    try:
        small = embedder.embed(["receipts for travel costs"])
        assert torch.get_num_threads() == 1
        texts = ["word " * 100] * (ONE_THREAD_TOKENS // 50)
        large = embedder.embed(texts)
        assert torch.get_num_threads() == min(before, cpu_cores())
        # The same vectors whatever the threads.
        again = embedder.embed(["receipts for travel costs", *texts[:1]])
        assert np.allclose(again[0], small[0], atol=1e-5)
        assert np.allclose(again[1], large[0], atol=1e-5)
    finally:
        torch.set_num_threads(before)
