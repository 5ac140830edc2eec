"""The contract every `VectorStore` backend keeps, as a test kit a backend package can run.

In a test module of your backend::

    import pytest
    from headwater.connectors.testing import *  # noqa: F403 (the contract's tests)

    @pytest.fixture
    def store_factory(tmp_path):
        # Each call returns a new, unconnected instance on the same fresh collection.
        return lambda: MyStore(MyConfig(...), collection="contract", state_dir=tmp_path)

    @pytest.fixture
    def store(store_factory):
        return store_factory()

Needs pytest (not a dependency of Headwater itself).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from headwater.ingest.errors import StoreError
from headwater.ingest.fusion import fuse
from headwater.ingest.models import (
    Chunk,
    ChunkMetadata,
    CollectionSpec,
    Fusion,
    FusionMethod,
    QueryFilter,
    VectorRecord,
)
from headwater.ingest.store import LexicalSearchUnsupportedError, VectorStore

StoreFactory = Callable[[], VectorStore]
"""Makes store instances that all point at the same (fresh) collection."""

DIM = 8
SPEC = CollectionSpec(DIM, "test-model")


def unit(seed: int, dim: int = DIM) -> list[float]:
    rng = random.Random(seed)
    v = [rng.gauss(0, 1) for _ in range(dim)]
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def record(
    cid: str,
    path: str = "a.md",
    *,
    seed: int | None = None,
    page: int | None = 1,
    text: str | None = None,
    file_type: str | None = None,
    section: str | None = "Intro",
    dim: int = DIM,
) -> VectorRecord:
    meta = ChunkMetadata(
        source_id=f"docs:{path}",
        source="docs",
        path=path,
        file_type=file_type or path.rsplit(".", 1)[-1],
        position=0,
        start=0,
        end=4,
        pages=(page,) if page is not None else (),
        section=section,
        element_types=("NarrativeText",),
    )
    vec = unit(seed if seed is not None else hash(cid) % 10_000, dim)
    return VectorRecord(Chunk(cid, text or f"text of {cid}", meta), vec)


def test_constructor_does_no_io(store_factory: StoreFactory, tmp_path: Path) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    store_factory()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_empty_store_answers_without_a_collection(store: VectorStore) -> None:
    assert store.count() == 0
    assert store.existing_ids(["x"]) == set()
    assert store.source_ids("docs:a.md") == set()
    assert store.query(unit(1), k=3) == []
    assert store.fetch(["x"]) == []
    assert store.lexical_query("anything", k=3) == []


def test_upsert_is_idempotent_and_replaces(store: VectorStore) -> None:
    store.ensure_collection(SPEC)
    recs = [record(f"c{i}", seed=i) for i in range(5)]
    assert store.upsert(recs) == 5
    store.upsert(recs)
    assert store.count() == 5
    store.upsert([record("c0", "b.pdf", seed=0, text="replaced")])
    assert store.count() == 5
    (got,) = store.fetch(["c0"])
    assert got.chunk.text == "replaced" and got.chunk.metadata.path == "b.pdf"


def test_delete_by_ids_and_by_source(store: VectorStore) -> None:
    store.ensure_collection(SPEC)
    store.upsert(
        [record(f"a{i}", "a.md") for i in range(4)] + [record(f"b{i}", "b.md") for i in range(3)]
    )
    assert store.source_ids("docs:a.md") == {"a0", "a1", "a2", "a3"}
    store.delete_ids(["a0", "a1", "missing"])
    assert store.existing_ids(["a0", "a1", "a2", "b0"]) == {"a2", "b0"}
    assert store.delete_source("docs:b.md") == 3
    assert store.count() == 2
    assert store.source_ids("docs:b.md") == set()


def test_ids_by_source_answers_many_documents_at_once(store: VectorStore) -> None:
    assert store.ids_by_source(["docs:a.md"]) == {"docs:a.md": set()}
    store.ensure_collection(SPEC)
    store.upsert([record(f"d{i}", f"{i % 3}.md") for i in range(9)])
    asked = [f"docs:{i}.md" for i in range(4)]
    assert store.ids_by_source(asked) == {
        "docs:0.md": {"d0", "d3", "d6"},
        "docs:1.md": {"d1", "d4", "d7"},
        "docs:2.md": {"d2", "d5", "d8"},
        "docs:3.md": set(),
    }


def test_flushed_writes_are_found_after_reopening(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.ensure_collection(SPEC)
    store.upsert([record(f"f{i}", seed=i) for i in range(20)])
    store.delete_ids(["f0"])
    store.flush()
    assert [h.id for h in store.query(unit(3), k=1)] == ["f3"]
    store.close()
    reopened = store_factory()
    try:
        assert reopened.count() == 19
        assert [h.id for h in reopened.query(unit(5), k=1)] == ["f5"]
    finally:
        reopened.close()


def test_query_ranks_by_similarity_and_filters(store: VectorStore) -> None:
    store.ensure_collection(SPEC)
    store.upsert(
        [
            record("pdf1", "policies/x.pdf", seed=1, page=1),
            record("pdf3", "policies/x.pdf", seed=3, page=3),
            record("md1", "handbook/y.md", seed=2, page=None),
            record("txt", "it/z.txt", seed=4, page=None),
        ]
    )
    hits = store.query(unit(1), k=4)
    assert hits[0].id == "pdf1"
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert {h.id for h in store.query(unit(1), k=4, filters=QueryFilter(file_types=("md",)))} == {
        "md1"
    }
    assert {h.id for h in store.query(unit(1), k=4, filters=QueryFilter(pages=(3,)))} == {"pdf3"}
    # A page bound passes only chunks with a page: md1 and txt have none.
    from_2 = QueryFilter(page_min=2)
    assert {h.id for h in store.query(unit(1), k=4, filters=from_2)} == {"pdf3"}
    assert {h.id for h in store.query(unit(1), k=4, filters=QueryFilter(page_max=2))} == {"pdf1"}
    assert store.count(QueryFilter(page_min=1, page_max=3)) == 2
    assert {
        h.id for h in store.query(unit(1), k=4, filters=QueryFilter(source_glob="policies/*"))
    } == {
        "pdf1",
        "pdf3",
    }
    assert {h.id for h in store.query(unit(1), k=4, filters=QueryFilter(source_glob="*.txt"))} == {
        "txt"
    }
    by_id = QueryFilter(source_ids=("docs:handbook/y.md",))
    assert [h.id for h in store.query(unit(1), k=4, filters=by_id)] == ["md1"]
    assert store.count(QueryFilter(source_glob="policies/*")) == 2
    hit = store.query(unit(3), k=1)[0]
    assert hit.metadata.pages == (3,) and hit.metadata.section == "Intro"
    assert hit.text == "text of pdf3"


def test_data_survives_close_and_reopen(store_factory: StoreFactory) -> None:
    first = store_factory()
    first.ensure_collection(SPEC)
    first.upsert([record(f"c{i}", seed=i) for i in range(10)])
    first.close()
    second = store_factory()
    assert second.count() == 10
    assert second.query(unit(7), k=1)[0].id == "c7"


def test_unicode_long_text_and_odd_metadata(store: VectorStore) -> None:
    store.ensure_collection(SPEC)
    odd = 'we"ird\\ 100%_done [x] ünïcødé 文档 🚲.md'
    long_text = "Ærøskøbing — naïve café 文字 🚴 " * 800
    store.upsert([record("u1", odd, text=long_text, section='Qu"ote\\d'), record("u2", "plain.md")])
    (got,) = store.fetch(["u1"])
    assert got.chunk.text == long_text
    assert got.chunk.metadata.path == odd and got.chunk.metadata.section == 'Qu"ote\\d'
    assert store.source_ids(f"docs:{odd}") == {"u1"}
    assert store.count(QueryFilter(source_glob="we*")) == 1
    # A literal % or _ in a path must not act as a wildcard.
    assert store.count(QueryFilter(source_glob="100%*")) == 0
    assert store.delete_source(f"docs:{odd}") == 1
    assert store.count() == 1


def test_wrong_dimension_or_model_is_a_clear_error(store_factory: StoreFactory) -> None:
    store = store_factory()
    with pytest.raises(StoreError, match="does not exist"):
        store.upsert([record("a", seed=1)])
    store.ensure_collection(SPEC)
    store.upsert([record("a", seed=1)])
    with pytest.raises(StoreError, match=r"chunk b has 9 dimensions.*expects 8"):
        store.upsert([record("ok", seed=2), record("b", dim=DIM + 1)])
    store.close()
    # A fresh instance reads what the collection was made for from the store itself.
    reopened = store_factory()
    assert reopened.collection_spec() == SPEC
    with pytest.raises(StoreError, match=f"holds {DIM}-dimensional"):
        reopened.ensure_collection(CollectionSpec(DIM * 2, "test-model"))
    with pytest.raises(StoreError, match="made with model 'test-model', not 'other-model'"):
        reopened.ensure_collection(CollectionSpec(DIM, "other-model"))
    reopened.ensure_collection(SPEC)
    assert reopened.existing_ids(["a", "ok", "b"]) == {"a"}


def test_scan_returns_every_record_with_its_vector(store: VectorStore) -> None:
    assert list(store.scan()) == []
    store.ensure_collection(SPEC)
    recs = {f"s{i}": record(f"s{i}", f"d{i % 3}.pdf", seed=i, page=i % 4 + 1) for i in range(25)}
    store.upsert(list(recs.values()))
    batches = list(store.scan(batch_size=10))
    assert all(1 <= len(b) <= 10 for b in batches)
    got = {r.id: r for b in batches for r in b}
    assert got.keys() == recs.keys()
    for cid, r in got.items():
        assert r.chunk == recs[cid].chunk
        assert list(r.vector) == pytest.approx(list(recs[cid].vector), abs=1e-6)


def test_ten_thousand_vectors(store: VectorStore) -> None:
    store.ensure_collection(SPEC)
    recs = [record(f"n{i}", f"doc{i % 50}.md", seed=i) for i in range(10_000)]
    store.upsert(recs)
    assert store.count() == 10_000
    store.upsert(recs[:2000])
    assert store.count() == 10_000
    assert store.query(unit(4242), k=1)[0].id == "n4242"
    assert store.count(QueryFilter(source_glob="doc7.md")) == 200
    assert store.delete_source("docs:doc7.md") == 200
    assert store.count() == 9_800
    assert len(store.source_ids("docs:doc8.md")) == 200
    assert len(store.existing_ids([r.id for r in recs[:5000]])) == 4900


# -- lexical and hybrid search -------------------------------------------------------


def lexical_store(store: VectorStore) -> VectorStore:
    """`store` with its collection made; skips where the backend says it has no
    full-text search, which it must say with `LexicalSearchUnsupportedError`."""
    store.ensure_collection(SPEC)
    try:
        store.lexical_query("probe", k=1)
    except LexicalSearchUnsupportedError as exc:
        pytest.skip(f"no lexical search here: {exc}")
    return store


def lexical_ids(store: VectorStore, text: str, k: int = 10, **filters: object) -> list[str]:
    query_filter = QueryFilter.from_mapping(filters) if filters else None
    return [h.id for h in store.lexical_query(text, k=k, filters=query_filter)]


CORPUS = {
    "inv": ("billing/inv.pdf", "Invoice INV-20417 from Zyxel for router firmware support"),
    "leave": ("hr/leave.md", "Employees get twenty five days of paid holiday each year"),
    "vpn": ("it/vpn.md", "Connect to the VPN before opening the router admin page"),
    "oncall": ("it/oncall.txt", "The on-call engineer answers pages within fifteen minutes"),
    "move": ("hr/move.pdf", "The office moves to the fourth floor in March"),
}


def corpus() -> list[VectorRecord]:
    return [
        record(cid, path, seed=n, text=text, page=None)
        for n, (cid, (path, text)) in enumerate(CORPUS.items(), 1)
    ]


def test_lexical_ranks_by_words_and_filters(store: VectorStore) -> None:
    lexical_store(store).upsert(corpus())
    # An exact code and a name: the case lexical search is for.
    assert lexical_ids(store, "INV-20417", k=3)[0] == "inv"
    assert lexical_ids(store, "zyxel", k=3) == ["inv"]  # case does not matter
    hits = store.lexical_query("router", k=5)
    assert {h.id for h in hits} == {"inv", "vpn"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].text == dict(CORPUS.values())[hits[0].metadata.path]
    assert len(lexical_ids(store, "router", k=1)) == 1
    assert lexical_ids(store, "router", file_types="md") == ["vpn"]
    assert lexical_ids(store, "router", source_glob="billing/*") == ["inv"]
    assert lexical_ids(store, "router", source_ids="docs:it/vpn.md") == ["vpn"]
    assert lexical_ids(store, "floor minutes", source_glob="hr/*") == ["move"]
    assert lexical_ids(store, "kangaroo") == []
    assert lexical_ids(store, "  ?! ") == []  # no words, no hits
    # Query syntax of the engines is plain text here, never an error.
    assert lexical_ids(store, 'router AND "admin* NEAR( text: OR -zyxel') != []


def test_lexical_index_follows_every_write(store_factory: StoreFactory) -> None:
    store = lexical_store(store_factory())
    store.upsert(corpus())
    inv = record("inv", "billing/inv.pdf", seed=1, page=None, text="Receipt for espresso beans")
    store.upsert([inv])  # changed text, same vector
    vpn = record("vpn", "it/vpn.md", seed=99, page=None, text="Wireguard keys rotate monthly")
    store.upsert([vpn])  # changed text and vector
    assert lexical_ids(store, "zyxel router") == []
    assert lexical_ids(store, "espresso") == ["inv"]
    assert lexical_ids(store, "wireguard") == ["vpn"]
    moved = record("leave", "policies/leave.md", seed=2, page=None, text=CORPUS["leave"][1])
    store.upsert([moved])  # the same chunk in a moved file
    assert lexical_ids(store, "holiday", source_glob="policies/*") == ["leave"]
    assert lexical_ids(store, "holiday", source_glob="hr/*") == []
    store.delete_ids(["inv"])
    store.delete_source("docs:hr/move.pdf")
    assert lexical_ids(store, "espresso floor") == []
    store.close()
    reopened = store_factory()
    found = lexical_ids(reopened, "holiday wireguard pages espresso")
    assert sorted(found) == ["leave", "oncall", "vpn"]


@pytest.mark.parametrize("method", list(FusionMethod))
def test_hybrid_fuses_dense_and_lexical(store: VectorStore, method: FusionMethod) -> None:
    lexical_store(store).upsert(corpus())
    fusion = Fusion(method=method)
    # unit(3) is the "vpn" vector; "holiday" is in "leave" only: each ranking's best is in.
    hits = store.hybrid_query(unit(3), "holiday", k=2, fusion=fusion)
    assert {h.id for h in hits} == {"vpn", "leave"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # Agreeing rankings: the chunk first in both comes first.
    assert store.hybrid_query(unit(1), "zyxel invoice", k=3, fusion=fusion)[0].id == "inv"
    only_pdf = QueryFilter(file_types=("pdf",))
    found = store.hybrid_query(unit(3), "holiday router", k=5, filters=only_pdf, fusion=fusion)
    assert {h.id for h in found} <= {"inv", "move"} and found
    # No words: what the dense ranking says.
    assert [h.id for h in store.hybrid_query(unit(4), "?", k=1, fusion=fusion)] == ["oncall"]
    # However a store fuses (in its engine, or by row id before reading rows), the hits
    # are the two rankings fused, each with its own text and metadata.
    depth = 3 * fusion.candidates
    dense, lexical = store.query(unit(5), k=depth), store.lexical_query("router admin", k=depth)
    got = store.hybrid_query(unit(5), "router admin", k=3, fusion=fusion)
    assert [h.id for h in got] == [h.id for h in fuse(dense, lexical, 3, fusion)]
    assert {h.id: (h.text, h.metadata) for h in got}.items() <= {
        h.id: (h.text, h.metadata) for h in (*dense, *lexical)
    }.items()
    # A query's text embedded while the store searches its words: the same answer.
    asked: list[str] = []

    def embed(text: str) -> list[float]:
        asked.append(text)
        return unit(5)

    searched = store.hybrid_search("router admin", embed, k=3, fusion=fusion)
    assert [h.id for h in searched] == [h.id for h in got] and asked == ["router admin"]


# -- async reads ---------------------------------------------------------------------


def test_async_reads_match_sync(store_factory: StoreFactory) -> None:
    """Every async read answers as its sync twin, in two event loops one after the other
    (a store's async client must belong to the loop that uses it), and after `aclose`."""
    store = store_factory()
    assert asyncio.run(store.acollection_spec()) is None
    assert asyncio.run(store.aquery(unit(1), k=3)) == []
    store.ensure_collection(SPEC)
    store.upsert(corpus())
    try:
        store.lexical_query("probe", k=1)
        lexical = True
    except LexicalSearchUnsupportedError:
        lexical = False
    pdf = QueryFilter(file_types=("pdf",))
    fusion = Fusion()

    async def embed(text: str) -> list[float]:
        return unit(5)

    def sync_reads() -> list[object]:
        reads: list[object] = [
            store.collection_spec(),
            store.query(unit(3), k=3),
            store.query(unit(3), k=3, filters=pdf),
            store.fetch(["vpn", "missing", "inv"]),
        ]
        if lexical:
            reads.append(store.lexical_query("router holiday", k=3))
            reads.append(store.hybrid_search("router admin", lambda _: unit(5), k=3, fusion=fusion))
        return reads

    async def async_reads() -> list[object]:
        reads = [
            store.acollection_spec(),
            store.aquery(unit(3), k=3),
            store.aquery(unit(3), k=3, filters=pdf),
            store.afetch(["vpn", "missing", "inv"]),
        ]
        if lexical:
            reads.append(store.alexical_query("router holiday", k=3))
            reads.append(store.ahybrid_search("router admin", embed, k=3, fusion=fusion))
        return list(await asyncio.gather(*reads))

    expected = sync_reads()
    assert all(expected)
    assert asyncio.run(async_reads()) == expected
    assert asyncio.run(async_reads()) == expected  # a new loop: a new async client
    if not lexical:
        with pytest.raises(LexicalSearchUnsupportedError):
            asyncio.run(store.alexical_query("router", k=3))

    async def closed_then_reopened() -> list[object]:
        await store.aclose()
        return await async_reads()

    reopened = asyncio.run(closed_then_reopened())
    assert reopened == sync_reads()  # sync again: a reopened engine may score in new float noise
    store.close()
