"""Backends under the shared `VectorStore` contract. Every backend added here runs it unchanged."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest.store import VectorStore

StoreFactory = Callable[[], VectorStore]


def _milvus_lite(tmp_path: Path) -> StoreFactory:
    from connectors.stores.milvus import MilvusConfig, MilvusStore

    def make() -> VectorStore:
        return MilvusStore(
            MilvusConfig(uri=str(tmp_path / "lite.db")), collection="contract", state_dir=tmp_path
        )

    return make


@pytest.fixture(scope="session")
def milvus_server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Milvus server: $HEADWATER_TEST_MILVUS_URI, or one started from the `milvus`
    package when HEADWATER_TEST_MILVUS_SERVER=start (it listens on all interfaces, so
    run the tests inside a private network namespace: see ENVIRONMENT.md)."""
    uri = os.environ.get("HEADWATER_TEST_MILVUS_URI")
    if uri:
        yield uri
        return
    if os.environ.get("HEADWATER_TEST_MILVUS_SERVER") != "start":
        pytest.skip(
            "no Milvus server: set HEADWATER_TEST_MILVUS_URI or HEADWATER_TEST_MILVUS_SERVER=start"
        )
    from milvus import default_server

    default_server.set_base_dir(str(tmp_path_factory.mktemp("milvus-server")))
    default_server.start()
    try:
        yield f"http://127.0.0.1:{default_server.listen_port}"
    finally:
        default_server.stop()


def _milvus_server(tmp_path: Path, uri: str) -> StoreFactory:
    from connectors.stores.milvus import MilvusConfig, MilvusStore

    # One collection per test on a shared server.
    collection = "contract_" + uuid.uuid4().hex[:12]

    def make() -> VectorStore:
        return MilvusStore(MilvusConfig(uri=uri), collection=collection, state_dir=tmp_path)

    return make


BACKENDS = ["milvus-lite", "milvus-server"]


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes store instances that all point at the same (fresh) collection."""
    opened: list[VectorStore] = []
    if request.param == "milvus-server":
        base = _milvus_server(tmp_path, request.getfixturevalue("milvus_server_uri"))
    else:
        base = _milvus_lite(tmp_path)

    def make() -> VectorStore:
        s = base()
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> VectorStore:
    return store_factory()
