"""The test server answers the unmodified client as Weaviate would (no Headwater code here)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, HybridFusion, MetadataQuery
from weaviate.collections import Collection
from weaviate.connect.v4 import _ConnectionBase
from weaviate.exceptions import WeaviateQueryError

from .server import WeaviateServer


@pytest.fixture(scope="module")
def server() -> Iterator[WeaviateServer]:
    with WeaviateServer() as s:
        yield s


@pytest.fixture
def client(server: WeaviateServer) -> Iterator[weaviate.WeaviateClient]:
    with weaviate.connect_to_custom(
        "127.0.0.1", server.http_port, False, "127.0.0.1", server.grpc_port, False,
        skip_init_checks=True,
    ) as c:  # fmt: skip
        yield c


@pytest.fixture
def notes(client: weaviate.WeaviateClient) -> Iterator[Collection]:
    coll = client.collections.create(
        "notes",
        properties=[
            Property(name="title", data_type=DataType.TEXT),
            Property(name="key", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
            Property(name="n", data_type=DataType.INT),
        ],
        vector_config=Configure.Vectors.self_provided(),
    )
    coll.data.insert_many(
        [
            DataObject({"title": "Hello World", "key": "Hello World", "n": 1}, vector=[1.0, 0.0]),
            DataObject({"title": "hello there", "key": "a/b.md", "n": 2}, vector=[0.0, 1.0]),
        ]
    )
    yield coll
    client.collections.delete("notes")


def test_client_init_checks_pass(server: WeaviateServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Everything the client checks on connect but the PyPI lookup: OIDC discovery, gRPC health.
    monkeypatch.setattr(_ConnectionBase, "_check_package_version", lambda self, colour: None)
    with weaviate.connect_to_local(port=server.http_port, grpc_port=server.grpc_port) as c:
        assert c.is_ready() and c.is_live()
        assert c.get_meta()["version"] == server.version


def test_filters_follow_tokenization(notes: Collection) -> None:
    def titles(where: object) -> set[str]:
        return {o.properties["title"] for o in notes.query.fetch_objects(filters=where).objects}

    # Word tokenization: lower-cased words; field: the whole value.
    assert titles(Filter.by_property("title").equal("hello")) == {"Hello World", "hello there"}
    assert titles(Filter.by_property("key").equal("hello")) == set()
    assert titles(Filter.by_property("key").like("Hello W?rld")) == {"Hello World"}
    assert titles(Filter.by_property("key").like("*.md")) == {"hello there"}
    assert titles(Filter.by_property("title").like("wor*")) == {"Hello World"}
    assert titles(Filter.by_property("n").contains_any([2, 3])) == {"hello there"}
    assert notes.aggregate.over_all(total_count=True).total_count == 2


def test_writes_report_per_object_errors(notes: Collection) -> None:
    result = notes.data.insert_many(
        [
            DataObject({"title": "ok", "n": 3}, vector=[1.0, 1.0]),
            DataObject({"title": "short", "n": 4}, vector=[1.0]),
            DataObject({"title": "typed", "n": 1.5}, vector=[1.0, 1.0]),
            DataObject({"title": "unknown", "color": "red"}, vector=[1.0, 1.0]),
        ]
    )
    assert sorted(result.errors) == [1, 2, 3]
    assert "vector with length 1" in result.errors[1].message
    assert "requires integer" in result.errors[2].message
    assert "no such prop with name 'color'" in result.errors[3].message
    assert len(notes) == 3


def test_deletes_count_and_dry_runs(notes: Collection) -> None:
    where = Filter.by_property("title").equal("hello")
    dry = notes.data.delete_many(where=where, dry_run=True, verbose=True)
    assert (dry.matches, len(dry.objects or []), len(notes)) == (2, 2, 2)
    assert notes.data.delete_many(where=where).successful == 2
    assert len(notes) == 0


def test_refusals_match_weaviate_limits(notes: Collection) -> None:
    first = notes.query.fetch_objects(limit=1).objects[0].uuid
    with pytest.raises(WeaviateQueryError, match="cursor api"):
        notes.query.fetch_objects(after=first, filters=Filter.by_property("n").equal(1))
    with pytest.raises(WeaviateQueryError, match="query maximum results exceeded"):
        notes.query.fetch_objects(offset=9_999, limit=2)
    with pytest.raises(WeaviateQueryError, match="not supported by this server"):
        notes.query.near_text("hello")
    with pytest.raises(WeaviateQueryError, match="needs a vectorizer module"):
        notes.query.hybrid("hello")


def test_bm25_and_hybrid_rank_as_weaviate_does(notes: Collection) -> None:
    # "world" is in one of two titles of two words: idf ln(1 + 1.5 / 1.5), tf part 1.
    (hit,) = notes.query.bm25("World", return_metadata=MetadataQuery(score=True)).objects
    assert hit.properties["n"] == 1 and hit.metadata.score == pytest.approx(math.log(2))
    # Field tokenization keeps "Hello World" whole: a word of it does not match the key.
    assert notes.query.bm25("world", query_properties=["key"]).objects == []
    only_two = Filter.by_property("n").equal(2)
    assert [o.properties["n"] for o in notes.query.bm25("hello", filters=only_two).objects] == [2]
    # Vector [0, 1] is n=2's, "world" is n=1's. Relative scores: alpha decides.
    for alpha, first in ((0.9, 2), (0.1, 1)):
        found = notes.query.hybrid(
            "world", vector=[0.0, 1.0], alpha=alpha, fusion_type=HybridFusion.RELATIVE_SCORE
        ).objects
        assert [o.properties["n"] for o in found] == [first, 3 - first]
    # Ranked: n=1 is in both rankings (second by vector), which outweighs one first place
    # until alpha is near 1.
    ranked = notes.query.hybrid(
        "world", vector=[0.0, 1.0], alpha=0.9, fusion_type=HybridFusion.RANKED
    ).objects
    assert [o.properties["n"] for o in ranked] == [1, 2]
