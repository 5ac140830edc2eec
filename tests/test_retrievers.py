"""LangChain and LlamaIndex retrievers over a synced sample_docs/ store.

LangChain's own standard retriever suite (`langchain-tests`) runs against
HeadwaterRetriever unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from headwater.api import KnowledgeBase
from headwater.config import HeadwaterConfig
from headwater.ingest.embedding import Embedder
from headwater.ingest.models import SearchMode
from headwater.ingest.search import SearchConfig
from headwater.ingest.store import LexicalSearchUnsupportedError

pytest.importorskip("langchain_core", reason="the langchain extra is not installed")
pytest.importorskip("llama_index.core", reason="the llamaindex extra is not installed")
standard = pytest.importorskip(
    "langchain_tests.integration_tests", reason="langchain-tests is not installed"
)

from langchain_core.documents import Document  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode  # noqa: E402

from headwater.connectors.retrievers.langchain import HeadwaterRetriever  # noqa: E402
from headwater.connectors.retrievers.llamaindex import HeadwaterRetriever as LlamaRetriever  # noqa: E402

pytestmark = pytest.mark.slow

QUESTION = "How many days of holiday do I get each year?"


@pytest.fixture
def kb(synced_config: HeadwaterConfig, embedder: Embedder) -> Iterator[KnowledgeBase]:
    with KnowledgeBase(synced_config, embedder=embedder) as opened:
        yield opened


class TestLangChainStandardSuite(standard.RetrieversIntegrationTests):
    """langchain-tests' RetrieversIntegrationTests, with nothing overridden."""

    @pytest.fixture(autouse=True)
    def _knowledge_base(self, kb: KnowledgeBase) -> None:
        self.kb = kb

    @property
    def retriever_constructor(self) -> type[HeadwaterRetriever]:
        return HeadwaterRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"knowledge_base": self.kb}

    @property
    def retriever_query_example(self) -> str:
        return QUESTION


def test_langchain_documents_carry_headwater_metadata(kb: KnowledgeBase) -> None:
    retriever = HeadwaterRetriever(knowledge_base=kb, k=3)
    docs = retriever.invoke(QUESTION)
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.metadata["source"] == "docs:policies/leave-policy.docx"
    assert top.metadata["path"] == "policies/leave-policy.docx"
    assert {"page", "pages", "section", "file_type", "score", "start", "end"} <= set(top.metadata)
    assert top.id == top.metadata["id"]
    assert top.metadata["score"] >= docs[-1].metadata["score"]


def test_langchain_filters_from_constructor_and_invoke(kb: KnowledgeBase) -> None:
    pdf_only = HeadwaterRetriever(knowledge_base=kb, k=5, filters={"file_types": ["pdf"]})
    docs = pdf_only.invoke("receipts")
    assert docs and all(d.metadata["file_type"] == "pdf" for d in docs)
    assert all(d.metadata["page"] for d in docs)
    docs = HeadwaterRetriever(knowledge_base=kb).invoke(
        "receipts", filters={"source_glob": "it/*"}, k=2
    )
    assert len(docs) == 2 and all(d.metadata["path"].startswith("it/") for d in docs)


def test_llamaindex_nodes_carry_headwater_metadata(kb: KnowledgeBase) -> None:
    retriever = LlamaRetriever(kb, k=3)
    nodes = retriever.retrieve(QUESTION)
    assert len(nodes) == 3
    assert all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    top = nodes[0]
    assert top.node.metadata["source"] == "docs:policies/leave-policy.docx"
    assert top.score == top.node.metadata["score"]
    assert top.node.node_id == top.node.metadata["id"]
    # What an LLM sees: the chunk with its source, page and section, not offsets or ids.
    shown = top.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "source: docs:policies/leave-policy.docx" in shown and "start:" not in shown
    assert top.node.get_content(metadata_mode=MetadataMode.EMBED) == top.node.text


def test_llamaindex_filters_and_async(kb: KnowledgeBase) -> None:
    retriever = LlamaRetriever(kb, k=4, filters={"file_types": ["pdf"]})
    nodes = asyncio.run(retriever.aretrieve("receipts"))
    assert nodes and all(n.node.metadata["file_type"] == "pdf" for n in nodes)


def test_search_modes_in_the_api(synced_config: HeadwaterConfig, embedder: Embedder) -> None:
    with KnowledgeBase(synced_config) as kb:
        (hit,) = kb.search("BitLocker", k=1, mode="lexical")
        assert hit.metadata.path == "it/security-faq.txt" and "BitLocker" in hit.text
        assert "embedder" not in vars(kb)  # lexical search loads no model
        assert kb.search("BitLocker", k=2, mode="lexical", filters={"file_types": "pdf"}) == []
    with KnowledgeBase(synced_config, embedder=embedder) as kb:
        hybrid = kb.search(QUESTION, k=3, mode="hybrid")
        assert hybrid[0].metadata.path == "policies/leave-policy.docx"
        assert kb.search("BitLocker", k=1, mode="hybrid")[0].id == hit.id
        with pytest.raises(ValueError, match="use one of dense, hybrid, lexical"):
            kb.search(QUESTION, mode="semantic")
    # The config's search.mode is the default; a query's mode overrides it.
    lexical_default = synced_config.model_copy(
        update={"search": SearchConfig(mode=SearchMode.LEXICAL)}
    )
    with KnowledgeBase(lexical_default, embedder=embedder) as kb:
        assert kb.search("BitLocker", k=1)[0].score == hit.score
        assert kb.search("BitLocker", k=1, mode="dense")[0].score != hit.score


def test_default_mode_falls_back_to_dense_where_the_store_has_no_full_text(
    synced_config: HeadwaterConfig, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with KnowledgeBase(synced_config, embedder=embedder) as kb:
        dense = kb.search(QUESTION, k=3, mode="dense")

        def no_bm25(*args: object, **kwargs: object) -> None:
            # What a Milvus 2.3 server's store says (tests/test_milvus_store.py checks it).
            raise LexicalSearchUnsupportedError("Milvus 2.3.5 has no BM25 full-text search")

        monkeypatch.setattr(kb.store, "lexical_query", no_bm25)
        assert kb.search(QUESTION, k=3) == dense  # the default (hybrid) answers by embeddings
        with pytest.raises(LexicalSearchUnsupportedError, match="no BM25"):
            kb.search(QUESTION, k=3, mode="hybrid")  # asked for by name: the error stands


def test_retrievers_take_a_mode(kb: KnowledgeBase) -> None:
    lexical = HeadwaterRetriever(knowledge_base=kb, k=2, mode="lexical")
    docs = lexical.invoke("BitLocker FileVault")
    assert docs[0].metadata["path"] == "it/security-faq.txt"
    assert lexical.invoke("BitLocker", mode="hybrid")[0].metadata["path"] == "it/security-faq.txt"
    dense = HeadwaterRetriever(knowledge_base=kb, k=2, mode="dense").invoke("BitLocker FileVault")
    assert [d.metadata["score"] for d in dense] != [d.metadata["score"] for d in docs]
    nodes = LlamaRetriever(kb, k=2, mode="lexical").retrieve("BitLocker")
    assert nodes[0].node.metadata["path"] == "it/security-faq.txt"
    with pytest.raises(ValueError, match="use one of"):
        LlamaRetriever(kb, mode="fuzzy")


def test_async_retrievers_over_a_search_without_asearch(kb: KnowledgeBase) -> None:
    """An object with only ``search`` (written before Headwater had async) still serves
    the async retrievers: its search runs on a worker thread."""
    import threading

    class OnlySearch:
        def __init__(self) -> None:
            self.searched_on: set[threading.Thread] = set()

        def search(self, text: str, k: int = 5, filters: Any = None) -> list[Any]:
            self.searched_on.add(threading.current_thread())
            return kb.search(text, k=k, filters=filters)

    only = OnlySearch()
    lc = HeadwaterRetriever(knowledge_base=only, k=2)
    llama = LlamaRetriever(only, k=2)

    async def both() -> list[Any]:
        return list(await asyncio.gather(lc.ainvoke(QUESTION), llama.aretrieve(QUESTION)))

    docs, nodes = asyncio.run(both())
    assert docs == lc.invoke(QUESTION) and nodes == llama.retrieve(QUESTION)
    assert len(docs) == 2 and threading.main_thread() in only.searched_on
    assert len(only.searched_on) > 1  # the async calls ran on worker threads
