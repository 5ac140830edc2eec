"""What a Weaviate user notices beyond the shared contract (tests/contract)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from headwater.connectors.registry import store_options
from headwater.connectors.stores.weaviate import (
    WeaviateConfig,
    WeaviateStore,
    class_name,
    object_uuid,
    resolve_endpoint,
)
from headwater.ingest.errors import ConfigError, MissingExtraError, StoreError
from headwater.ingest.models import CollectionSpec, QueryFilter
from tests.conftest import RecordingExecutor, WeaviateEndpoint
from tests.contract.test_vector_store import record

if TYPE_CHECKING:
    from tests.weaviate_server.server import WeaviateServer

SPEC = CollectionSpec(8, "test-model")
KEY = "s3cret-test-key"


def new_server(**options: Any) -> WeaviateServer:
    """A test server, not yet started; skips the test without the weaviate extra."""
    pytest.importorskip("weaviate", reason="the weaviate extra is not installed")
    from tests.weaviate_server.server import WeaviateServer

    return WeaviateServer(**options)


@pytest.fixture(scope="module")
def server() -> Iterator[WeaviateServer]:
    with new_server() as s:
        yield s


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[WeaviateServer]:
    with new_server(api_keys={KEY}) as s:
        yield s


def make_store(server: WeaviateServer, tmp_path: Path, **options: Any) -> WeaviateStore:
    config = WeaviateConfig(url=server.url, grpc_port=server.grpc_port, **options)
    name = "t_" + uuid.uuid4().hex[:10]
    return WeaviateStore(config, collection=name, state_dir=tmp_path)


def test_refused_objects_are_named_and_the_rest_are_written(
    server: WeaviateServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(server, tmp_path, batch_size=2)
    store.ensure_collection(SPEC)
    # Skip the client-side size check so the server refuses the odd vector itself, as it
    # would after another writer put vectors of another size in the collection.
    monkeypatch.setattr(store, "check_vectors", lambda records: None)
    records = [record("ok1", seed=1), record("bad", "b.md", dim=9), record("ok2", seed=2)]
    with pytest.raises(StoreError) as err:
        store.upsert(records)
    message = str(err.value)
    assert "refused 1 of 3" in message and "bad (docs:b.md)" in message
    assert "vector with length 9" in message and "ok1" not in message
    assert store.existing_ids(["ok1", "bad", "ok2"]) == {"ok1", "ok2"}

    # A batch in which every object fails is reported the same way.
    with pytest.raises(StoreError, match=r"refused 2 of 2.*x1 \(docs:x.md\), x2 \(docs:x.md\)"):
        store.upsert([record("x1", "x.md", dim=9), record("x2", "x.md", dim=9)])
    assert store.count() == 2
    store.close()


def test_object_ids_are_uuid5_of_chunk_ids_for_every_client(
    server: WeaviateServer, tmp_path: Path
) -> None:
    from weaviate.util import generate_uuid5

    assert object_uuid("docs:a.md#3") == uuid.UUID(generate_uuid5("docs:a.md#3"))
    first = make_store(server, tmp_path)
    first.ensure_collection(SPEC)
    first.upsert([record("c1", seed=1)])
    second = WeaviateStore(first.config, collection=first.collection, state_dir=tmp_path)
    second.upsert([record("c1", seed=1, text="again")])
    assert second.count() == 1
    # Any client finds the chunk under the same id.
    obj = second.client.collections.use(second.class_name).query.fetch_object_by_id(
        generate_uuid5("c1")
    )
    assert obj is not None and obj.properties["text"] == "again"
    first.close()
    second.close()


def test_api_key_comes_from_the_named_variable_and_stays_secret(
    keyed_server: WeaviateServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_WEAVIATE_KEY", KEY)
    store = make_store(keyed_server, tmp_path, api_key_env="HW_TEST_WEAVIATE_KEY")
    store.ensure_collection(SPEC)
    store.upsert([record("c1", seed=1)])
    assert store.count() == 1
    assert ("rest", f"Bearer {KEY}") in keyed_server.authorizations
    assert ("grpc", f"Bearer {KEY}") in keyed_server.authorizations
    for shown in (store.location, repr(store), repr(store.config), str(store.config)):
        assert KEY not in shown
    store.close()

    monkeypatch.setenv("HW_TEST_WEAVIATE_KEY", KEY + "-wrong")
    wrong = WeaviateStore(store.config, collection=store.collection, state_dir=tmp_path)
    with pytest.raises(StoreError, match=r"401.*\$HW_TEST_WEAVIATE_KEY") as err:
        wrong.count()
    assert KEY not in str(err.value)

    monkeypatch.delenv("HW_TEST_WEAVIATE_KEY")
    anonymous = WeaviateStore(store.config, collection=store.collection, state_dir=tmp_path)
    with pytest.raises(StoreError, match="anonymous access not enabled"):
        anonymous.count()


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"url": "ftp://example.com"}, "url"),
        ({"url": "localhost:8080"}, "url"),
        ({"url": "http://user:hunter2@example.com"}, "url"),
        ({"url": "http://example.com/weaviate"}, "url"),
        ({"grpc_port": 0}, "grpc_port"),
        (
            {"url": "https://abc123.c0.europe-west3.gcp.weaviate.cloud", "grpc_port": 50051},
            "grpc_port",
        ),
        ({"cloud": True, "grpc_host": "grpc.example.com"}, "grpc_host"),
        ({"api_key_env": "my key"}, "api_key_env"),
        ({"timeout": 0}, "timeout"),
        ({"batch_size": 0}, "batch_size"),
        ({"api_key": "x"}, "api_key"),
    ],
)
def test_config_errors_name_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^store\.weaviate\.{key}: ") as err:
        store_options("weaviate", table)
    assert "hunter2" not in str(err.value)


def test_endpoints_and_class_names() -> None:
    local = resolve_endpoint(WeaviateConfig())
    assert (local.url, local.cloud, local.http_port, local.grpc_port) == (
        "http://localhost:8080",
        False,
        8080,
        50051,
    )
    tls = resolve_endpoint(WeaviateConfig(url="https://weaviate.example.com/"))
    assert (tls.url, tls.http_port, tls.grpc_host, tls.grpc_port, tls.secure) == (
        "https://weaviate.example.com",
        443,
        "weaviate.example.com",
        443,
        True,
    )
    cloud = resolve_endpoint(WeaviateConfig(url="abc123.c0.europe-west3.gcp.weaviate.cloud"))
    assert cloud.cloud and cloud.url == "https://abc123.c0.europe-west3.gcp.weaviate.cloud"
    assert [class_name(n) for n in ("headwater", "docs-v2", "2024 notes", "Über")] == [
        "Headwater",
        "Docs_v2",
        "C2024_notes",
        "C_ber",
    ]


def test_weaviate_cloud_needs_a_key_before_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("weaviate", reason="the weaviate extra is not installed")
    monkeypatch.delenv("WEAVIATE_API_KEY", raising=False)
    config = WeaviateConfig(url="https://abc123.c0.europe-west3.gcp.weaviate.cloud")
    store = WeaviateStore(config, collection="docs", state_dir=tmp_path)
    with pytest.raises(StoreError, match=r"needs an API key: set \$WEAVIATE_API_KEY"):
        store.count()


def test_unreachable_server_is_a_store_error(tmp_path: Path) -> None:
    with new_server() as gone:
        config = WeaviateConfig(url=gone.url, grpc_port=gone.grpc_port, timeout=2)
    store = WeaviateStore(config, collection="docs", state_dir=tmp_path)
    for read in (store.count, lambda: asyncio.run(store.aquery([0.0] * 8))):  # sync, async
        with pytest.raises(StoreError, match=rf"Weaviate at {config.url}.*connecting failed"):
            read()
    store.close()
    store.close()


def test_missing_client_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "weaviate" or m.startswith("weaviate.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "weaviate", None)
    store = WeaviateStore(WeaviateConfig(), collection="docs", state_dir=tmp_path)
    with pytest.raises(MissingExtraError, match=r"pip install 'headwater\[weaviate\]'"):
        store.count()


def test_wrong_grpc_port_fails_fast_and_names_the_keys(
    server: WeaviateServer, tmp_path: Path
) -> None:
    with new_server() as other:
        unused = other.grpc_port
    config = WeaviateConfig(url=server.url, grpc_port=unused)
    store = WeaviateStore(config, collection="docs", state_dir=tmp_path)
    with pytest.raises(StoreError, match=r"not over gRPC.*store\.weaviate\.grpc_port"):
        store.count()


def test_lexical_and_hybrid_use_weaviates_own_search(
    server: WeaviateServer, tmp_path: Path
) -> None:
    from weaviate.proto.v1 import base_search_pb2

    from headwater.connectors.testing import corpus, unit
    from headwater.ingest.models import Fusion, FusionMethod, QueryFilter

    store = make_store(server, tmp_path)
    try:
        store.ensure_collection(SPEC)
        store.upsert(corpus())
        md_only = QueryFilter(file_types=("md",))
        assert [h.id for h in store.lexical_query("router", k=3, filters=md_only)] == ["vpn"]
        sent = server.database.searches[-1]
        assert sent.collection == store.class_name and sent.limit == 3
        assert sent.bm25_search.query == "router"
        assert list(sent.bm25_search.properties) == ["text"]  # not the ids and paths
        assert sent.HasField("filters") and sent.metadata.score

        rrf = store.hybrid_query(unit(3), "holiday", k=2, filters=md_only)
        assert {h.id for h in rrf} == {"vpn", "leave"}
        hybrid = server.database.searches[-1].hybrid_search
        assert hybrid.fusion_type == base_search_pb2.Hybrid.FUSION_TYPE_RANKED
        assert hybrid.alpha == 0.5 and list(hybrid.properties) == ["text"]
        assert list(hybrid.targets.target_vectors) == ["default"] and hybrid.vector_bytes
        assert server.database.searches[-1].HasField("filters")

        weighted = Fusion(FusionMethod.WEIGHTED, alpha=0.25)
        store.hybrid_query(unit(3), "holiday", k=2, fusion=weighted)
        hybrid = server.database.searches[-1].hybrid_search
        assert hybrid.fusion_type == base_search_pb2.Hybrid.FUSION_TYPE_RELATIVE_SCORE
        assert hybrid.alpha == pytest.approx(0.25)
        assert not server.database.searches[-1].HasField("filters")
    finally:
        store.close()


def test_async_reads_use_weaviates_async_client(
    weaviate_endpoint: WeaviateEndpoint, tmp_path: Path
) -> None:
    """Against the in-process server, or a real Weaviate when $WEAVIATE_URL is set."""
    from headwater.connectors.testing import corpus, unit

    config = WeaviateConfig(url=weaviate_endpoint.url, grpc_port=weaviate_endpoint.grpc_port)
    name = "t_" + uuid.uuid4().hex[:10]
    writer = WeaviateStore(config, collection=name, state_dir=tmp_path)
    reader = WeaviateStore(config, collection=name, state_dir=tmp_path)
    try:
        writer.ensure_collection(SPEC)
        writer.upsert(corpus())
        md_only = QueryFilter(file_types=("md",))
        expected = [
            writer.query(unit(3), k=3, filters=md_only),
            writer.lexical_query("router", k=3),
            writer.hybrid_search("holiday", lambda _: unit(3), k=2),
            writer.fetch(["vpn", "inv"]),
        ]

        async def embed(text: str) -> list[float]:
            return unit(3)

        async def reads(executor: RecordingExecutor) -> list[Any]:
            asyncio.get_running_loop().set_default_executor(executor)
            return list(
                await asyncio.gather(
                    reader.aquery(unit(3), k=3, filters=md_only),
                    reader.alexical_query("router", k=3),
                    reader.ahybrid_search("holiday", embed, k=2),
                    reader.afetch(["vpn", "inv"]),
                )
            )

        for _ in range(2):  # two loops, one async client each
            executor = RecordingExecutor()
            assert asyncio.run(reads(executor)) == expected
            assert executor.ran == []  # native: no worker thread
        assert reader._client is None  # the sync client was never opened
        assert all(expected)
    finally:
        writer.close()
        reader.close()


async def test_each_event_loop_gets_its_own_async_client(
    server: WeaviateServer, tmp_path: Path
) -> None:
    from headwater.connectors.testing import corpus, unit

    store = make_store(server, tmp_path)
    try:
        store.ensure_collection(SPEC)
        store.upsert(corpus())
        here = await store.aquery(unit(3), k=2)  # pytest-asyncio's loop
        # An application's asyncio.run in another thread, while this loop's client lives.
        there = await asyncio.to_thread(asyncio.run, store.aquery(unit(3), k=2))
        assert here == there == await store.aquery(unit(3), k=2) == store.query(unit(3), k=2)
        await store.aclose()
        assert await store.aquery(unit(3), k=2) == here  # reopened in this loop
    finally:
        await store.aclose()
        store.close()
