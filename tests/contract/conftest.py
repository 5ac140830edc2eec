"""Backends under the shared `VectorStore` contract. Every backend added here runs it unchanged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.connectors.testing import StoreFactory
from headwater.ingest.store import VectorStore


def _milvus_lite(tmp_path: Path) -> StoreFactory:
    from headwater.connectors.stores.milvus import MilvusConfig, MilvusStore

    def make() -> VectorStore:
        return MilvusStore(
            MilvusConfig(uri=str(tmp_path / "lite.db")), collection="contract", state_dir=tmp_path
        )

    return make


def _milvus_server(tmp_path: Path, uri: str) -> StoreFactory:
    from headwater.connectors.stores.milvus import MilvusConfig, MilvusStore

    # One collection per test on a shared server.
    collection = "contract_" + uuid.uuid4().hex[:12]

    def make() -> VectorStore:
        return MilvusStore(MilvusConfig(uri=uri), collection=collection, state_dir=tmp_path)

    return make


def _faiss(tmp_path: Path, index: str) -> StoreFactory:
    from headwater.connectors.stores.faiss import FaissConfig, FaissStore

    # A small nlist so the 10,000-vector test trains IVF; a small M keeps HNSW builds quick.
    config = FaissConfig.model_validate({"index": index, "nlist": 16, "hnsw_m": 16})

    def make() -> VectorStore:
        return FaissStore(config, collection="contract", state_dir=tmp_path)

    return make


def _weaviate(tmp_path: Path, url: str, grpc_port: int | None = None) -> StoreFactory:
    from headwater.connectors.stores.weaviate import WeaviateConfig, WeaviateStore

    config = WeaviateConfig(url=url, grpc_port=grpc_port)
    # One collection per test on a shared server.
    collection = "contract_" + uuid.uuid4().hex[:12]

    def make() -> VectorStore:
        return WeaviateStore(config, collection=collection, state_dir=tmp_path)

    return make


BACKENDS = [
    "milvus-lite",
    "milvus-server",
    "faiss-flat",
    "faiss-ivf",
    "faiss-hnsw",
    "weaviate",
    "weaviate-server",
]


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes store instances that all point at the same (fresh) collection."""
    opened: list[VectorStore] = []
    if request.param == "milvus-server":
        base = _milvus_server(tmp_path, request.getfixturevalue("milvus_server_uri"))
    elif request.param.startswith("faiss-"):
        base = _faiss(tmp_path, request.param.removeprefix("faiss-"))
    elif request.param == "weaviate":
        server = request.getfixturevalue("weaviate_test_server")
        base = _weaviate(tmp_path, server.url, server.grpc_port)
    elif request.param == "weaviate-server":
        base = _weaviate(tmp_path, request.getfixturevalue("weaviate_server_url"))
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
