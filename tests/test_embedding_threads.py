"""A small batch (a query, one note from the watcher) is encoded on one CPU thread; a
large one gets every core back."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from headwater.ingest.embedding import cpu_cores

pytestmark = pytest.mark.slow

# In a process of its own: torch's thread count is global to a process, and in the test
# session other tests' engines, clusters and watchers share it.
CHECK = textwrap.dedent(
    """
    import numpy as np
    import torch
    from headwater.ingest.embedding import ONE_THREAD_TOKENS, Embedder, EmbeddingConfig, cpu_cores

    embedder = Embedder(EmbeddingConfig(device="cpu", precision="fp32"))
    before = torch.get_num_threads()
    small = embedder.embed(["receipts for travel costs"])
    assert torch.get_num_threads() == 1, torch.get_num_threads()
    texts = ["word " * 100] * (ONE_THREAD_TOKENS // 50)
    large = embedder.embed(texts)
    assert torch.get_num_threads() == min(before, cpu_cores()), torch.get_num_threads()
    # The same vectors whatever the threads.
    again = embedder.embed(["receipts for travel costs", *texts[:1]])
    assert np.allclose(again[0], small[0], atol=1e-5)
    assert np.allclose(again[1], large[0], atol=1e-5)
    print("ok")
    """
)


def test_small_batches_use_one_thread_and_large_ones_all_cores() -> None:
    pytest.importorskip("torch")
    if cpu_cores() < 2:
        pytest.skip("needs two cores")
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
