"""The Python API: open a configured knowledge base, search it with filters, sync it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.api import KnowledgeBase, hit_metadata
from headwater.config import HeadwaterConfig
from headwater.ingest.embedding import Embedder
from headwater.ingest.errors import HeadwaterError, StoreError
from headwater.ingest.models import QueryFilter

from .conftest import make_config


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
