"""A real Milvus server stopped mid-run: writes are retried with backoff, the run ends
with a clear error, the manifest records only what was written, and the next run
completes the work.

Needs the server the session starts (HEADWATER_TEST_MILVUS_SERVER=start, in a private
network namespace: see README); the test stops it and starts it again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import headwater.ingest.engine as engine_module
from headwater.compose import build_engine
from headwater.ingest.embedding import Embedder
from headwater.ingest.errors import StoreUnavailableError
from headwater.ingest.verify import verify

from .conftest import make_config


@pytest.fixture
def stoppable_server(milvus_server_uri: str) -> Iterator[str]:
    if os.environ.get("HEADWATER_TEST_MILVUS_URI"):
        pytest.skip("the server at HEADWATER_TEST_MILVUS_URI was not started here: not stopping it")
    from milvus import default_server

    try:
        yield milvus_server_uri
    finally:
        if not default_server.running:
            restart(default_server, milvus_server_uri)


def restart(server: Any, uri: str) -> None:
    """Start the stopped server on its old port, which the other tests' URI names."""
    port = int(uri.rsplit(":", 1)[1])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(1)
    server.start()
    assert server.listen_port == port, "the restarted server took another port"
    # start() returns when the port is open; on a busy machine the server needs longer
    # before it serves requests.
    from pymilvus import MilvusClient

    while True:
        try:
            MilvusClient(uri=uri, timeout=5).list_collections()
            return
        except Exception:
            if time.monotonic() > deadline + 120:
                raise
            time.sleep(1)


@pytest.mark.slow
def test_server_stopped_mid_run_then_next_run_completes(
    stoppable_server: str,
    tmp_path: Path,
    docs: Path,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from milvus import default_server

    # Small batches: the server goes down after the first batch is written and committed.
    monkeypatch.setattr(engine_module, "FLUSH_CHUNKS", 20)
    cfg = make_config(
        tmp_path,
        docs,
        store={
            "backend": "milvus",
            "collection": f"outage_{uuid.uuid4().hex[:8]}",
            "milvus": {"uri": stoppable_server, "timeout": 5},
            "retry": {"attempts": 3, "initial_s": 0.5, "max_s": 2},
        },
    )
    batches = 0

    def stop_on_second_batch(stage: str, done: int, total: int) -> None:
        nonlocal batches
        if stage == "embed" and done == 0:
            batches += 1
            if batches == 2:
                default_server.stop()

    engine = build_engine(cfg, embedder=embedder, progress=stop_on_second_batch)
    with pytest.raises(StoreUnavailableError) as failed:
        engine.run()
    message = str(failed.value)
    assert f"the milvus store at {stoppable_server} failed to" in message
    assert "3 time(s) in a row" in message
    assert "run the sync again once the store is back" in message
    committed = engine.state.manifest.entries()
    assert 0 < len(committed) < 11, "the first batch is committed, the rest is not"
    # Closing a client whose server is gone may complain; nothing is pending.
    with contextlib.suppress(Exception):
        engine.close()

    restart(default_server, stoppable_server)
    again = build_engine(cfg, embedder=embedder)
    try:
        # The manifest never records what the store lacks: nothing it names is missing.
        before = verify(again.state)
        assert all(d.missing == 0 for d in before.drift), before.to_dict()
        report = again.run()
        assert report.ok, report.to_dict()
        counts = report.file_counts()
        assert counts["added"] == 11 - len(committed)
        assert counts["unchanged"] == len(committed)
        after = verify(again.state)
        assert after.ok and after.store_chunks == after.manifest_chunks
    finally:
        again.close()
