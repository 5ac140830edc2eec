"""Shared fixtures: the real embedding model (loaded once), configs in temp folders."""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from headwater.compose import build_engine
from headwater.config import HeadwaterConfig
from headwater.ingest.embedding import Embedder, EmbeddingConfig
from headwater.ingest.engine import SyncEngine

if TYPE_CHECKING:
    from tests.weaviate_server.server import WeaviateServer

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DOCS = ROOT / "sample_docs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


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


@pytest.fixture(scope="session")
def weaviate_test_server() -> Iterator[WeaviateServer]:
    """The in-process Weaviate (tests/weaviate_server): real REST and gRPC on loopback."""
    pytest.importorskip("weaviate", reason="the weaviate extra is not installed")
    from tests.weaviate_server.server import WeaviateServer

    with WeaviateServer() as server:
        yield server


@pytest.fixture(scope="session")
def weaviate_server_url() -> str:
    """A real Weaviate: $WEAVIATE_URL (with $WEAVIATE_API_KEY when it needs one)."""
    url = os.environ.get("WEAVIATE_URL")
    if not url:
        pytest.skip("no Weaviate server: set WEAVIATE_URL (and WEAVIATE_API_KEY if it needs one)")
    return url


@dataclass(frozen=True)
class WeaviateEndpoint:
    url: str
    grpc_port: int | None = None
    """None: the store derives it from the URL (a real server's default)."""


@pytest.fixture(scope="session")
def weaviate_endpoint(request: pytest.FixtureRequest) -> WeaviateEndpoint:
    """A real Weaviate when $WEAVIATE_URL is set, else the in-process one."""
    if url := os.environ.get("WEAVIATE_URL"):
        return WeaviateEndpoint(url)
    server = request.getfixturevalue("weaviate_test_server")
    return WeaviateEndpoint(server.url, server.grpc_port)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real default model, loaded once per test session. fp32: tests that compare
    vectors across batches, workers and runtimes need them bit-stable; bf16 (the `auto`
    choice on CPUs with AMX) is checked against fp32 in test_precision.py."""
    return Embedder(EmbeddingConfig(device="cpu", precision="fp32"))


@pytest.fixture(scope="session")
def sample_queries() -> list[dict[str, Any]]:
    return json.loads((FIXTURES / "sample_queries.json").read_text())


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A private copy of sample_docs/ that a test may edit."""
    target = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, target)
    return target


def make_config(tmp_path: Path, docs: Path, **overrides: Any) -> HeadwaterConfig:
    data: dict[str, Any] = {
        "sources": [{"name": "docs", "path": str(docs)}],
        "state": {"dir": str(tmp_path / "state")},
        "embedding": {"device": "cpu", "precision": "fp32"},  # as the `embedder` fixture
        "config_dir": tmp_path,
    }
    data.update(overrides)
    # Parsing in this process keeps engine tests fast; test_workers.py, test_bad_input.py
    # and the CLI tests run the default worker pool.
    data["loading"] = {"workers": 0, **data.get("loading", {})}
    return HeadwaterConfig(**data)


@pytest.fixture
def engine_factory(tmp_path: Path, embedder: Embedder) -> Iterator[Callable[..., SyncEngine]]:
    """Build engines that share the session's model; every engine is closed afterwards."""
    made: list[SyncEngine] = []

    def factory(docs: Path, **overrides: Any) -> SyncEngine:
        engine = build_engine(make_config(tmp_path, docs, **overrides), embedder=embedder)
        made.append(engine)
        return engine

    yield factory
    for e in made:
        e.close()


@pytest.fixture(scope="session")
def synced_config(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> HeadwaterConfig:
    """sample_docs/ synced once into a FAISS store in a temp folder; tests only read it."""
    root = tmp_path_factory.mktemp("synced")
    config = make_config(root, SAMPLE_DOCS, store={"backend": "faiss"})
    engine = build_engine(config, embedder=embedder)
    try:
        report = engine.run()
    finally:
        engine.close()
    assert report.ok, report.to_dict()["failures"]
    return config


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API on loopback: moto's server mode, with an empty account."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


class RecordingExecutor(ThreadPoolExecutor):
    """The loop's default executor (what `asyncio.to_thread` uses), noting what it runs."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.ran: list[Any] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        # to_thread submits functools.partial(context.run, func, *args)
        self.ran.append(fn.args[0] if isinstance(fn, functools.partial) else fn)
        return super().submit(fn, *args, **kwargs)
