"""Backends under the shared `VectorStore` contract. Every backend added here runs it unchanged."""

from __future__ import annotations

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


BACKENDS: dict[str, Callable[[Path], StoreFactory]] = {
    "milvus-lite": _milvus_lite,
}


@pytest.fixture(params=sorted(BACKENDS))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes store instances that all point at the same (fresh) collection."""
    opened: list[VectorStore] = []
    base = BACKENDS[request.param](tmp_path)

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
