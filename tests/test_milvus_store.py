"""Milvus beyond the shared contract: which versions get a full-text (BM25) index, and what
a user is told where there is none."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from headwater.connectors.stores.milvus import MilvusConfig, MilvusStore, has_bm25, version_tuple
from headwater.connectors.testing import SPEC, record, unit
from headwater.ingest.errors import StoreUnavailableError
from headwater.ingest.store import LexicalSearchUnsupportedError

pytest.importorskip("pymilvus", reason="the milvus extra is not installed")


@pytest.mark.parametrize(
    ("version", "parsed", "bm25"),
    [
        ("v2.3.5", (2, 3, 5), False),
        ("v2.4.15", (2, 4, 15), False),
        ("v2.5.0", (2, 5, 0), True),
        ("2.6.1-dev", (2, 6, 1), True),
        ("milvus_lite-3.2.2", (3, 2, 2), True),
        ("milvus_lite-2.4.10", (2, 4, 10), False),
        ("v3.0", (3, 0), True),
        ("unknown", (), False),
    ],
)
def test_which_versions_have_bm25(version: str, parsed: tuple[int, ...], bm25: bool) -> None:
    assert version_tuple(version) == parsed
    assert has_bm25(version) is bm25


def lite(tmp_path: Path) -> MilvusStore:
    return MilvusStore(
        MilvusConfig(uri=str(tmp_path / "lite.db")), collection="c", state_dir=tmp_path
    )


def test_a_server_without_bm25_says_so_and_dense_search_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MilvusStore, "server_version", lambda self: "v2.3.5")
    store = lite(tmp_path)
    try:
        store.ensure_collection(SPEC)
        store.upsert([record("a", seed=1, text="zyxel router")])
        assert store.query(unit(1), k=1)[0].id == "a"
        for search in (
            lambda: store.lexical_query("zyxel"),
            lambda: store.hybrid_query(unit(1), "zyxel"),
        ):
            with pytest.raises(LexicalSearchUnsupportedError) as exc:
                search()
            assert "version v2.3.5" in str(exc.value) and "Milvus 2.5 or later" in str(exc.value)
            assert "mode 'dense'" in str(exc.value)
    finally:
        store.close()


def test_a_collection_made_without_the_index_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(MilvusStore, "server_version", lambda self: "v2.4.0")
        old = lite(tmp_path)
        old.ensure_collection(SPEC)
        old.upsert([record("a", seed=1, text="zyxel router")])
        old.close()
    store = lite(tmp_path)  # the real Lite version: it could, the collection cannot
    try:
        assert store.query(unit(1), k=1)[0].id == "a"
        with pytest.raises(LexicalSearchUnsupportedError, match="made without a full-text index"):
            store.lexical_query("zyxel")
        with pytest.raises(LexicalSearchUnsupportedError, match="headwater migrate"):
            store.lexical_query("zyxel")
    finally:
        store.close()


def test_the_real_server_version_is_named(milvus_server_uri: str, tmp_path: Path) -> None:
    store = MilvusStore(MilvusConfig(uri=milvus_server_uri), collection="lex", state_dir=tmp_path)
    try:
        store.ensure_collection(SPEC)
        if has_bm25(store.server_version()):
            assert store.lexical_query("anything") == []
            return
        with pytest.raises(LexicalSearchUnsupportedError, match=r"version v?2\.[0-4].*2\.5"):
            store.lexical_query("anything")
    finally:
        store.close()


def test_async_reads_of_an_unreachable_server_say_so(tmp_path: Path) -> None:
    config = MilvusConfig(uri="http://127.0.0.1:9", timeout=1)  # nothing listens on port 9
    store = MilvusStore(config, collection="c", state_dir=tmp_path)
    with pytest.raises(StoreUnavailableError, match=r"cannot open Milvus at http://127\.0\.0\.1:9"):
        asyncio.run(store.aquery(unit(1), k=1))
    store.close()
