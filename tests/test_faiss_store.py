"""FAISS backend behaviour beyond the shared contract: files on disk, crashes, index types."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from headwater.connectors.registry import store_class, store_options
from headwater.ingest.errors import ConfigError, MissingExtraError
from headwater.ingest.models import QueryFilter, VectorRecord
from tests.contract.test_vector_store import SPEC, record, unit

faiss = pytest.importorskip("faiss")

from headwater.connectors.stores import faiss as faiss_store  # noqa: E402
from headwater.connectors.stores.faiss import FaissConfig, FaissStore  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def make(tmp_path: Path, index: str = "flat", **options: object) -> FaissStore:
    config = FaissConfig.model_validate({"index": index, **options})
    return FaissStore(config, collection="c", state_dir=tmp_path)


def records(n: int, start: int = 0) -> list[VectorRecord]:
    return [
        record(f"r{i}", f"dir{i % 3}/doc{i % 7}.{'pdf' if i % 2 else 'md'}", seed=i, page=i % 4)
        for i in range(start, start + n)
    ]


def index_files(store: FaissStore) -> list[str]:
    return sorted(p.name for p in store.folder.iterdir() if p.name.startswith("index."))


def saved_index(store: FaissStore) -> Any:
    (name,) = index_files(store)
    return faiss.read_index(str(store.folder / name))


def brute_force(recs: list[VectorRecord], q: list[float], k: int, f: QueryFilter | None) -> list:
    """The exact answer: (id, cosine) of the k best records passing the filter."""
    keep = [r for r in recs if f is None or f.matches(r.chunk.metadata)]
    if not keep:
        return []
    x = np.array([r.vector for r in keep], dtype=np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores = x @ np.asarray(q)
    order = np.argsort(-scores)[:k]
    return [(keep[i].id, float(scores[i])) for i in order]


def run_python(
    tmp_path: Path, body: str, config: FaissConfig | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `body` in a fresh interpreter with `store` open on the test's collection."""
    script = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        import faiss
        from headwater.connectors.stores.faiss import FaissConfig, FaissStore
        from tests.test_faiss_store import records
        from tests.contract.test_vector_store import SPEC, record
        config = FaissConfig.model_validate_json(sys.argv[2])
        store = FaissStore(config, collection="c", state_dir=Path(sys.argv[1]))
        """
    ) + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The same default as make(): a flat index, whatever the shipped default is.
    options = (config or FaissConfig(index="flat")).model_dump_json()
    return subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- config and wiring -------------------------------------------------------------


def test_registered_and_configured(tmp_path: Path) -> None:
    assert store_class("faiss") is FaissStore
    with pytest.raises(ConfigError, match=r"store\.faiss\.index"):
        store_options("faiss", {"index": "ivfpq"})
    with pytest.raises(ConfigError, match=r"store\.faiss\.nlsit"):
        store_options("faiss", {"nlsit": 8})
    assert all(f.description for f in FaissConfig.model_fields.values())
    assert make(tmp_path).location == str(tmp_path / "faiss" / "c")
    assert make(tmp_path, path="vectors").location == str(tmp_path / "vectors" / "c")
    assert make(tmp_path, path=str(tmp_path / "abs")).location == str(tmp_path / "abs" / "c")


def test_missing_faiss_gives_the_install_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)
    store = make(tmp_path)
    with pytest.raises(MissingExtraError, match=r"pip install 'headwater\[faiss\]'"):
        store.ensure_collection(SPEC)
    with pytest.raises(MissingExtraError):
        store.count()
    store.close()


def test_files_on_disk(tmp_path: Path) -> None:
    store = make(tmp_path)
    assert store.count() == 0 and not (tmp_path / "faiss").exists()  # reads create nothing
    store.ensure_collection(SPEC)
    store.upsert(records(20))
    store.close()
    store.close()
    assert sorted(p.name for p in store.folder.iterdir()) == ["index.flat.1.faiss", "meta.sqlite"]
    assert saved_index(store).ntotal == 20


# -- crash consistency -------------------------------------------------------------


def test_failed_save_keeps_the_previous_index_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = make(tmp_path)
    store.ensure_collection(SPEC)
    store.upsert(records(50))
    store.close()
    before = (store.folder / "index.flat.1.faiss").read_bytes()

    store = make(tmp_path)
    store.upsert(records(20, start=50))
    store.delete_ids(["r0", "r1"])
    real_write = faiss.write_index

    def torn_write(index: object, path: str) -> None:
        real_write(index, path)
        with open(path, "r+b") as f:  # half the file reaches the disk, then it fails
            f.truncate(os.path.getsize(path) // 2)
        raise RuntimeError("No space left on device")

    monkeypatch.setattr(faiss, "write_index", torn_write)
    with caplog.at_level(logging.WARNING):
        store.close()  # the index is a cache: close still succeeds
    assert "could not save the FAISS index" in caplog.text
    monkeypatch.undo()
    assert index_files(store) == ["index.flat.1.faiss"]
    assert (store.folder / "index.flat.1.faiss").read_bytes() == before
    assert not list(store.folder.glob(".index-*"))

    reopened = make(tmp_path)
    assert reopened.count() == 68
    assert reopened.query(unit(60), k=1)[0].id == "r60"
    assert "r0" not in {h.id for h in reopened.query(unit(0), k=68)}
    reopened.close()
    assert index_files(reopened) == ["index.flat.3.faiss"]


def test_process_killed_during_save_reopens_with_all_data(tmp_path: Path) -> None:
    done = run_python(
        tmp_path,
        """
        store.ensure_collection(SPEC)
        store.upsert(records(30))
        store.close()
        store.upsert(records(30, start=30))
        store.delete_ids(["r5"])
        real_write = faiss.write_index
        def dying_write(index, path):
            real_write(index, path)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 3)
            os._exit(9)  # killed mid-save: no cleanup runs
        faiss.write_index = dying_write
        store.close()
        """,
    )
    assert done.returncode == 9, done.stderr
    store = make(tmp_path)
    (leftover,) = store.folder.glob(".index-*.tmp")
    assert index_files(store) == ["index.flat.1.faiss"]
    assert store.count() == 59
    for i in (0, 29, 30, 59):
        assert store.query(unit(i), k=1)[0].id == f"r{i}"
    assert "r5" not in {h.id for h in store.query(unit(5), k=59)}
    store.close()
    assert index_files(store) == ["index.flat.3.faiss"]
    # A crashed save's temp file goes once it is clearly not a save in progress.
    old = time.time() - 2 * faiss_store._STALE_TEMP_SECONDS
    os.utime(leftover, (old, old))
    store = make(tmp_path)
    store.upsert(records(1, start=60))
    store.close()
    assert not leftover.exists()


@pytest.mark.parametrize("damage", ["missing", "stale", "corrupt"])
@pytest.mark.parametrize("index", ["flat", "ivf"])
def test_lost_or_stale_index_is_rebuilt_from_sqlite(
    tmp_path: Path, index: str, damage: str
) -> None:
    recs = records(200)
    store = make(tmp_path, index, nlist=4)  # IVF: trained, nprobe covers every list
    store.ensure_collection(SPEC)
    store.upsert(recs)
    store.close()
    (name,) = index_files(store)
    path = store.folder / name
    if damage == "missing":
        path.unlink()
    elif damage == "corrupt":
        path.write_bytes(path.read_bytes()[:100] + b"\0" * 1000)
    else:
        # Another process writes and dies before saving: SQLite moves on, the file does not.
        done = run_python(
            tmp_path,
            """
            store.upsert(records(10, start=200))
            store.delete_ids([f"r{i}" for i in range(10)])
            os._exit(0)
            """,
            store.config,
        )
        assert done.returncode == 0, done.stderr
        assert index_files(store) == [name]  # same count, other ids: only the name says so
        recs = recs[10:] + records(10, start=200)

    store = make(tmp_path, index, nlist=4)
    filters = [None, QueryFilter(file_types=("pdf",)), QueryFilter(source_glob="dir1/*")]
    for seed in (3, 150, 205, 999):
        for f in filters:
            got = [(h.id, h.score) for h in store.query(unit(seed), k=10, filters=f)]
            expected = brute_force(recs, unit(seed), 10, f)
            assert [i for i, _ in got] == [i for i, _ in expected]
            assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-5)
    store.close()
    assert saved_index(store).ntotal == len(recs)


def test_reader_sees_what_another_process_commits(tmp_path: Path) -> None:
    writer = make(tmp_path)
    writer.ensure_collection(SPEC)
    writer.upsert(records(40))
    writer.close()
    reader = make(tmp_path)
    assert reader.query(unit(3), k=1)[0].id == "r3"
    done = run_python(
        tmp_path,
        """
        store.upsert([record("new", "new.md", seed=4242)])
        store.delete_ids(["r3"])
        store.close()
        """,
    )
    assert done.returncode == 0, done.stderr
    assert reader.query(unit(4242), k=1)[0].id == "new"
    assert "r3" not in {h.id for h in reader.query(unit(3), k=40)}
    assert reader.count() == 40
    reader.close()


def test_rewriting_metadata_with_the_same_vector_leaves_the_index_alone(tmp_path: Path) -> None:
    store = make(tmp_path, "hnsw", hnsw_m=8)
    store.ensure_collection(SPEC)
    recs = records(30)
    store.upsert(recs)
    store.close()
    store = make(tmp_path, "hnsw", hnsw_m=8)
    moved = [record(r.id, "moved.md", seed=i, text="moved") for i, r in enumerate(recs)]
    store.upsert(moved)
    assert store.fetch(["r7"])[0].chunk.text == "moved"
    assert store.query(unit(7), k=1)[0].metadata.path == "moved.md"
    store.close()
    # Generation 1 still: nothing to rebuild or rewrite, no tombstones made.
    assert index_files(store) == ["index.hnsw8.1.faiss"]
    assert saved_index(store).ntotal == 30


# -- index types ---------------------------------------------------------------------


def test_hnsw_never_returns_deleted_or_replaced_vectors(tmp_path: Path) -> None:
    recs = records(300)
    store = make(tmp_path, "hnsw", hnsw_m=8)
    store.ensure_collection(SPEC)
    store.upsert(recs)
    deleted = {f"r{i}" for i in range(40)}
    store.delete_ids(deleted)
    # New vectors for 30 ids: HNSW keeps the old ones in the graph as tombstones.
    replaced = [record(f"r{i}", seed=10_000 + i) for i in range(40, 70)]
    store.upsert(replaced)

    def check(s: FaissStore) -> None:
        for i in range(70):
            hits = s.query(unit(i), k=10)
            assert len(hits) == 10
            assert not deleted & {h.id for h in hits}
            assert all(h.score < 0.999 for h in hits)  # no old vector comes back
        for r in replaced:
            assert s.query(r.vector, k=1)[0].id == r.id
        everything = s.query(unit(1), k=1000)
        assert len(everything) == 260 and not deleted & {h.id for h in everything}

    check(store)
    store.close()
    assert saved_index(store).ntotal == 330  # 70 tombstones
    store = make(tmp_path, "hnsw", hnsw_m=8)
    check(store)  # tombstones recovered from the saved graph and SQLite

    # Past a quarter of the graph deleted, it is rebuilt from the stored vectors.
    store.delete_ids([f"r{i}" for i in range(70, 130)])
    deleted |= {f"r{i}" for i in range(70, 130)}
    assert store.count() == 200
    assert not deleted & {h.id for h in store.query(unit(75), k=200)}
    store.close()
    assert saved_index(store).ntotal == 200


def test_ivf_is_exact_until_trained_then_trains_on_stored_vectors(tmp_path: Path) -> None:
    options = {"nlist": 4, "nprobe": 1}  # trains at 39 * 4 = 156 vectors
    store = make(tmp_path, "ivf", **options)
    store.ensure_collection(SPEC)
    recs = records(100)
    store.upsert(recs)
    store.close()
    assert faiss.try_extract_index_ivf(saved_index(store)) is None

    store = make(tmp_path, "ivf", **options)
    recs += records(100, start=100)
    store.upsert(recs[100:])
    store.close()
    ivf = faiss.extract_index_ivf(saved_index(store))
    assert ivf.is_trained and ivf.nlist == 4 and ivf.ntotal == 200

    store = make(tmp_path, "ivf", **options)
    for i in range(0, 200, 7):  # a stored vector lands in the cell its own query probes
        assert store.query(unit(i), k=1)[0].id == f"r{i}"
    # nprobe=1 sees about a quarter of the vectors; asking for all still gets all, exactly.
    got = [h.id for h in store.query(unit(5), k=200)]
    assert got == [i for i, _ in brute_force(recs, unit(5), 200, None)]
    store.delete_source("docs:dir0/doc0.md")
    assert store.count() == 200 - len([r for r in recs if r.chunk.metadata.path == "dir0/doc0.md"])
    store.close()


@pytest.mark.parametrize("index", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("exact_limit", [0, 10_000], ids=["selector", "small-filter"])
def test_filtered_queries_return_the_top_k_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: str, exact_limit: int
) -> None:
    # exact_limit=0 sends every filtered query through the index with an IDSelector,
    # where IVF (nprobe=1) and HNSW come up short and must fall back to exact search.
    monkeypatch.setattr(faiss_store, "_EXACT_LIMIT", exact_limit)
    recs = records(400)
    store = make(tmp_path, index, nlist=4, nprobe=1, hnsw_m=8)
    store.ensure_collection(SPEC)
    store.upsert(recs)
    approximate = exact_limit == 0 and index != "flat"
    filters = [
        QueryFilter(pages=(2,)),
        QueryFilter(source_ids=("docs:dir1/doc4.md",)),
        QueryFilter(source_glob="docs:dir2/doc?.pdf", file_types=("pdf",)),
        QueryFilter(source_glob="*5.pdf", pages=(1, 3)),
        QueryFilter(source_glob="*5.md", pages=(1, 3)),  # matches nothing
        QueryFilter(page_min=2, file_types=("pdf",)),
        QueryFilter(page_max=1),
    ]
    for f in filters:
        for seed in (1, 77, 5000):
            got = store.query(unit(seed), k=8, filters=f)
            expected = brute_force(recs, unit(seed), 8, f)
            assert all(f.matches(h.metadata) for h in got)
            assert len(got) == len(expected)  # never fewer because the filter is selective
            assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
            if not approximate:
                assert [h.id for h in got] == [i for i, _ in expected], f
            assert store.count(f) == sum(f.matches(r.chunk.metadata) for r in recs)
    store.close()


def test_full_text_index_is_added_to_a_format_1_collection(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.ensure_collection(SPEC)
    store.upsert([record("a", text="Zyxel router firmware"), record("b", text="espresso beans")])
    db = store._db
    assert db is not None
    # What a Headwater 0.2 database looks like: no chunks_fts, no triggers, format 1.
    for trigger in ("insert", "delete", "update"):
        db.execute(f"DROP TRIGGER chunks_fts_{trigger}")
    db.execute("DROP TABLE chunks_fts")
    db.execute("PRAGMA user_version = 1")
    store.close()
    reopened = make(tmp_path)
    try:
        assert [h.id for h in reopened.lexical_query("routers")] == ["a"]  # porter stems
        reopened.upsert([record("c", text="more espresso")])
        assert sorted(h.id for h in reopened.lexical_query("espresso")) == ["b", "c"]
        db = reopened._db
        assert db is not None and db.execute("PRAGMA user_version").fetchone()[0] == 2
        # FTS5's own check that the index holds exactly the rows of the chunks table.
        db.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('integrity-check')")
    finally:
        reopened.close()
