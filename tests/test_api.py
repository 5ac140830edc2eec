"""The Python API: open a configured knowledge base, search it with filters, sync it."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.api import KnowledgeBase, hit_metadata
from headwater.config import HeadwaterConfig
from headwater.ingest.embedding import Embedder
from headwater.ingest.errors import HeadwaterError, StoreError
from headwater.ingest.models import QueryFilter
from headwater.ingest.store import LexicalSearchUnsupportedError

from .conftest import RecordingExecutor, make_config


@pytest.fixture
def kb(synced_config: HeadwaterConfig, embedder: Embedder) -> Iterator[KnowledgeBase]:
    with KnowledgeBase(synced_config, embedder=embedder) as opened:
        yield opened


def test_open_does_no_io(tmp_path: Path) -> None:
    (tmp_path / "headwater.toml").write_text(
        '[[sources]]\nname = "docs"\npath = "docs"\n[store]\nbackend = "faiss"\n'
    )
    kb = KnowledgeBase.open(tmp_path / "headwater.toml")
    assert kb.config.sources[0].name == "docs"
    kb.close()
    assert not (tmp_path / ".headwater").exists()
    assert "store" not in vars(kb) and "embedder" not in vars(kb)


@pytest.mark.slow
def test_search_answers_from_the_right_document(
    kb: KnowledgeBase, sample_queries: list[dict[str, Any]]
) -> None:
    for q in sample_queries[:8]:
        hits = kb.search(q["question"], k=3)
        assert len(hits) == 3
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert q["expected_source"] in {h.metadata.path for h in hits}, q["question"]


@pytest.mark.slow
def test_filters_as_query_filter_or_mapping(kb: KnowledgeBase) -> None:
    pdf = kb.search("Do I need a receipt?", k=5, filters={"file_types": "pdf"})
    assert pdf and all(h.metadata.file_type == "pdf" for h in pdf)
    assert all(h.metadata.pages for h in pdf)
    policies = kb.search("Do I need a receipt?", k=5, filters=QueryFilter(source_glob="policies/*"))
    assert policies and all(h.metadata.path.startswith("policies/") for h in policies)
    one = kb.search("receipts", k=5, filters={"source_ids": ["docs:handbook/welcome.md"]})
    assert {h.metadata.source_id for h in one} == {"docs:handbook/welcome.md"}
    with pytest.raises(HeadwaterError, match="unknown key 'file_type'"):
        kb.search("receipts", filters={"file_type": "pdf"})
    with pytest.raises(ValueError, match="k must be at least 1"):
        kb.search("receipts", k=0)


@pytest.mark.slow
def test_hit_metadata_is_flat_and_complete(kb: KnowledgeBase) -> None:
    hit = kb.search("expenses receipts", k=1, filters={"file_types": ["pdf"]})[0]
    meta = hit_metadata(hit)
    assert meta["source"] == "docs:policies/expenses.pdf"
    assert meta["page"] == hit.metadata.pages[0] and meta["pages"] == list(hit.metadata.pages)
    assert meta["id"] == hit.id and meta["score"] == hit.score
    assert {"section", "file_type", "path", "start", "end", "element_types"} <= set(meta)


def test_search_refuses_a_store_made_for_another_model(
    synced_config: HeadwaterConfig,
) -> None:
    other = synced_config.model_copy(
        update={"embedding": synced_config.embedding.model_copy(update={"model": "other/model"})}
    )
    with KnowledgeBase(other) as kb, pytest.raises(StoreError, match="other/model"):
        kb.search("receipts")


@pytest.mark.slow
def test_sync_then_search_in_one_process(tmp_path: Path, docs: Path, embedder: Embedder) -> None:
    config = make_config(tmp_path, docs, store={"backend": "faiss"})
    for extra in docs.iterdir():
        if extra.name not in ("policies", "it"):
            for f in extra.iterdir():
                f.unlink()
    with KnowledgeBase(config, embedder=embedder) as kb:
        first = kb.sync()
        assert first.ok and first.file_counts()["added"] == 3
        assert kb.search("How many days of annual leave?", k=1)[0].metadata.path == (
            "policies/leave-policy.docx"
        )
        (docs / "it" / "security-faq.txt").unlink()
        second = kb.sync()
        assert second.file_counts()["deleted"] == 1 and second.chunk_counts()["embedded"] == 0
        assert kb.search("password", k=5, filters={"source_glob": "it/*"}) == []


ASYNC_QUERIES = [
    ("How many vacation days?", {"k": 3, "mode": "dense"}),
    ("receipts", {"k": 4, "mode": "hybrid", "filters": {"file_types": ["pdf"]}}),
    ("GDPR article 17", {"k": 2, "mode": "lexical"}),
    ("vpn router", {"k": 3}),  # the config's mode
]


@pytest.mark.slow
async def test_asearch_answers_as_search(kb: KnowledgeBase) -> None:
    # In pytest-asyncio's loop; test_framework_stores.py runs the adapters under asyncio.run.
    expected = [kb.search(text, **kw) for text, kw in ASYNC_QUERIES]
    got = await asyncio.gather(*(kb.asearch(text, **kw) for text, kw in ASYNC_QUERIES))
    assert got == expected and all(expected)
    vector = await kb.aembed_query("receipts")
    assert vector == kb.embed_query("receipts")
    assert await kb.asearch_by_vector(vector, k=3) == kb.search_by_vector(vector, k=3)
    ids = [h.id for h in expected[0]]
    assert await kb.arecords(ids) == kb.records(ids)
    with pytest.raises(ValueError, match="k must be at least 1"):
        await kb.asearch("x", k=0)


def test_asearch_on_a_milvus_server_is_native(
    milvus_server_uri: str, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymilvus import AsyncMilvusClient

    from headwater.connectors.stores.milvus import has_bm25

    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "bikes.md").write_text("# Bikes\n\nA road bike has drop handlebars and thin tyres.\n")
    (docs / "tyres.txt").write_text("Tyre pressure for a road bike is about 6 to 8 bar.\n")
    (docs / "lunch.md").write_text("# Lunch\n\nThe canteen serves soup on Fridays.\n")
    store = {
        "backend": "milvus",
        "collection": "api_async_" + uuid.uuid4().hex[:8],
        "milvus": {"uri": milvus_server_uri},
    }
    config = make_config(tmp_path, docs, store=store)  # search.mode unset: hybrid, or dense
    questions = ["What tyre pressure in bar?", "soup", "handlebars", "bike tyres"]
    with KnowledgeBase(config, embedder=embedder) as writer:
        assert writer.sync().ok
        vectors = [writer.embed_query(q) for q in questions]
        # Milvus 2.3/2.4 (the `milvus` test package is 2.3) has no BM25: hybrid by default
        # falls back to dense there, as in the sync search.
        bm25 = has_bm25(writer.store.server_version())  # type: ignore[attr-defined]
        modes = [None, "dense", *(("lexical", "hybrid") if bm25 else ())]
        expected = {
            mode: [
                writer.search(q, k=2, mode=mode, vector=v)
                for q, v in zip(questions, vectors, strict=True)
            ]
            for mode in modes
        }
        by_text = [writer.search(q, k=2) for q in questions]
    assert all(all(hits) for hits in expected.values())

    searched: list[threading.Thread] = []
    real_search = AsyncMilvusClient.search

    async def search(self: AsyncMilvusClient, *args: Any, **kwargs: Any) -> Any:
        searched.append(threading.current_thread())
        return await real_search(self, *args, **kwargs)

    monkeypatch.setattr(AsyncMilvusClient, "search", search)

    kb = KnowledgeBase(config, embedder=embedder)

    async def concurrently(executor: RecordingExecutor, **kw: Any) -> list[list[Any]]:
        asyncio.get_running_loop().set_default_executor(executor)
        return await asyncio.gather(
            *(kb.asearch(q, k=2, vector=v, **kw) for q, v in zip(questions, vectors, strict=True))
        )

    try:
        for mode in modes:
            # A loop per mode: each gets its own AsyncMilvusClient.
            executor = RecordingExecutor()
            assert asyncio.run(concurrently(executor, mode=mode)) == expected[mode]
            assert executor.ran == []  # no worker thread: the store's calls are native
        assert set(searched) == {threading.main_thread()}  # asyncio.run's loop thread
        assert len(searched) >= len(questions) * len(modes)
        assert kb.store._client is None  # type: ignore[attr-defined]
        if not bm25:
            with pytest.raises(LexicalSearchUnsupportedError, match="no BM25"):
                asyncio.run(kb.asearch("soup", mode="lexical"))

        # With a text to embed, only the model runs on a worker thread.
        executor = RecordingExecutor()

        async def by_text_async() -> list[list[Any]]:
            asyncio.get_running_loop().set_default_executor(executor)
            got = await asyncio.gather(*(kb.asearch(q, k=2) for q in questions))
            await kb.aclose()
            return list(got)

        assert asyncio.run(by_text_async()) == by_text
        assert executor.ran and all(fn == kb.embed_query for fn in executor.ran)
    finally:
        kb.close()
