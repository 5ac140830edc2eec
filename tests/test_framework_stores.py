"""The LangChain VectorStore and the LlamaIndex vector store over a real knowledge base.

sample_docs/ synced into FAISS (the session's `synced_config`); one case on Milvus Lite.
LangChain's standard suites run here too: RetrieversIntegrationTests on the store's
``as_retriever()`` (similarity and MMR), and VectorStoreIntegrationTests, whose write
tests must fail with ReadOnlyKnowledgeBaseError (strict xfail): the store refuses writes.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from headwater.api import KnowledgeBase
from headwater.config import HeadwaterConfig
from headwater.ingest.embedding import Embedder
from tests.conftest import make_config

pytest.importorskip("langchain_core", reason="the langchain extra is not installed")
pytest.importorskip("llama_index.core", reason="the llamaindex extra is not installed")
standard = pytest.importorskip(
    "langchain_tests.integration_tests", reason="langchain-tests is not installed"
)

from langchain_core.documents import Document  # noqa: E402
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from headwater.connectors.retrievers.common import ReadOnlyKnowledgeBaseError  # noqa: E402
from headwater.connectors.retrievers.filters import UnsupportedFilterError  # noqa: E402
from headwater.connectors.retrievers.langchain import (  # noqa: E402
    HeadwaterRetriever,
    HeadwaterVectorStore,
)
from headwater.connectors.retrievers.llamaindex import (  # noqa: E402
    HeadwaterRetriever as LlamaRetriever,
)
from headwater.connectors.retrievers.llamaindex import (  # noqa: E402
    HeadwaterVectorStore as LlamaStore,
)
from headwater.connectors.retrievers.llamaindex import vector_store_index  # noqa: E402

pytestmark = pytest.mark.slow

QUERY = "receipts"
"""Its top 4 by embeddings mix expenses.pdf pages with a workshop-safety.odt chunk."""


@pytest.fixture(scope="module")
def kb(synced_config: HeadwaterConfig, embedder: Embedder) -> Iterator[KnowledgeBase]:
    with KnowledgeBase(synced_config, embedder=embedder) as opened:
        yield opened


@pytest.fixture(scope="module")
def store(kb: KnowledgeBase) -> HeadwaterVectorStore:
    return HeadwaterVectorStore(kb, mode="dense")


def paths(docs: list[Document]) -> list[str]:
    return [d.metadata["path"] for d in docs]


# LangChain


def test_retriever_filter_dict_filters(store: HeadwaterVectorStore, kb: KnowledgeBase) -> None:
    unfiltered = store.as_retriever(search_kwargs={"k": 4}).invoke(QUERY)
    assert {d.metadata["file_type"] for d in unfiltered} != {"pdf"}  # the filter has work to do
    pdf = store.as_retriever(search_kwargs={"k": 4, "filter": {"file_type": "pdf"}})
    docs = pdf.invoke(QUERY)
    assert len(docs) == 4 and {d.metadata["file_type"] for d in docs} == {"pdf"}
    # The issue's call: a filter given to invoke() is honoured, in both retrievers.
    for retriever in (store.as_retriever(), HeadwaterRetriever(knowledge_base=kb, mode="dense")):
        docs = retriever.invoke(QUERY, filter={"file_type": "pdf"})
        assert docs and {d.metadata["file_type"] for d in docs} == {"pdf"}
    later_pages = store.similarity_search(
        QUERY, k=10, filter={"$and": [{"file_type": "pdf"}, {"page": {"$gte": 3}}]}
    )
    assert later_pages and all(d.metadata["page"] >= 3 for d in later_pages)
    assert {d.metadata["page"] for d in later_pages} == {3, 4}  # expenses.pdf has 4 pages
    either = store.similarity_search(
        QUERY, k=20, filter={"$or": [{"file_type": "pptx"}, {"file_type": "xlsx"}]}
    )
    assert {d.metadata["file_type"] for d in either} == {"pptx", "xlsx"}


def test_k_is_honoured(store: HeadwaterVectorStore) -> None:
    assert len(store.as_retriever(search_kwargs={"k": 2}).invoke(QUERY)) == 2
    assert len(store.as_retriever(search_kwargs={"k": 2}).invoke(QUERY, k=5)) == 5
    assert len(store.similarity_search(QUERY, k=7)) == 7


def test_unsupported_filter_raises(store: HeadwaterVectorStore, kb: KnowledgeBase) -> None:
    with pytest.raises(UnsupportedFilterError, match="'file_type' ne is not supported"):
        store.as_retriever(search_kwargs={"filter": {"file_type": {"$ne": "pdf"}}}).invoke(QUERY)
    # Checked when the retriever is made (pydantic reports it as a ValidationError).
    with pytest.raises(ValueError, match="filter on 'section' is not supported"):
        HeadwaterRetriever(knowledge_base=kb, filter={"section": "Receipts"})
    with pytest.raises(TypeError, match="unexpected search argument 'filters_'"):
        store.similarity_search(QUERY, filters_={"file_type": "pdf"})


def test_scores_and_search_by_vector(store: HeadwaterVectorStore, kb: KnowledgeBase) -> None:
    scored = store.similarity_search_with_score(QUERY, k=3)
    assert [d.id for d, _ in scored] == [d.id for d in store.similarity_search(QUERY, k=3)]
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    by_vector = store.similarity_search_by_vector(kb.embed_query(QUERY), k=3)
    assert [d.id for d in by_vector] == [d.id for d, _ in scored]
    pdf_only = store.similarity_search_by_vector(
        kb.embed_query(QUERY), k=3, filter={"file_type": "pdf"}
    )
    assert {d.metadata["file_type"] for d in pdf_only} == {"pdf"}
    # Other modes rank the text differently; a per-call mode overrides the store's.
    lexical = store.similarity_search("BitLocker", k=1, mode="lexical")
    assert paths(lexical) == ["it/security-faq.txt"]
    assert (
        store.get_by_ids([scored[0][0].id, "missing"])[0].page_content == scored[0][0].page_content
    )


def test_score_threshold_drops_results(store: HeadwaterVectorStore) -> None:
    plain = store.similarity_search_with_score(QUERY, k=4)
    threshold = (plain[0][1] + plain[1][1]) / 2  # between the best and the second
    kept = store.as_retriever(
        search_type="similarity_score_threshold",
        search_kwargs={"k": 4, "score_threshold": threshold},
    ).invoke(QUERY)
    assert [d.id for d in kept] == [plain[0][0].id]
    with pytest.raises(ValueError, match="mode 'lexical' has no fixed scale"):
        store.similarity_search_with_relevance_scores(QUERY, score_threshold=0.1, mode="lexical")


def _mean_pairwise_similarity(kb: KnowledgeBase, docs: list[Document]) -> float:
    vectors = {r.id: np.asarray(r.vector) for r in kb.records([d.id for d in docs if d.id])}
    pairs = list(itertools.combinations([vectors[d.id] for d in docs if d.id], 2))
    return float(np.mean([a @ b for a, b in pairs]))


def test_mmr_returns_diverse_results(store: HeadwaterVectorStore, kb: KnowledgeBase) -> None:
    query = "expense reimbursement"  # its top 4 are all chunks of expenses.pdf
    similar = store.similarity_search(query, k=4)
    mmr = store.as_retriever(
        search_type="mmr", search_kwargs={"k": 4, "fetch_k": 20, "lambda_mult": 0.25}
    ).invoke(query)
    assert len(mmr) == 4 and mmr[0].id == similar[0].id  # the best match still leads
    assert _mean_pairwise_similarity(kb, mmr) < _mean_pairwise_similarity(kb, similar)
    assert len(set(paths(mmr))) > len(set(paths(similar)))
    # lambda_mult 1 is relevance only: the plain ranking.
    same = store.max_marginal_relevance_search(query, k=4, fetch_k=20, lambda_mult=1.0)
    assert [d.id for d in same] == [d.id for d in similar]
    by_vector = store.max_marginal_relevance_search_by_vector(
        kb.embed_query(query), k=4, fetch_k=20, lambda_mult=0.25, filter={"file_type": "pdf"}
    )
    assert len(by_vector) == 4 and {d.metadata["file_type"] for d in by_vector} == {"pdf"}


def test_writes_say_that_sync_feeds_the_knowledge_base(store: HeadwaterVectorStore) -> None:
    with pytest.raises(ReadOnlyKnowledgeBaseError, match="fed by `headwater sync`"):
        store.add_texts(["a note"])
    with pytest.raises(ReadOnlyKnowledgeBaseError, match="verify"):
        store.delete(["x"])
    with pytest.raises(ReadOnlyKnowledgeBaseError):
        asyncio.run(store.aadd_documents([Document(page_content="a note")]))
    with pytest.raises(ReadOnlyKnowledgeBaseError):
        LlamaStore(store.knowledge_base).delete("docs:it/security-faq.txt")  # type: ignore[arg-type]


def threads_that_searched(kb: KnowledgeBase, run: Callable[[], object]) -> set[threading.Thread]:
    """The threads on which the store searched or the query was embedded while `run` ran."""
    seen: set[threading.Thread] = set()
    names = ("query", "lexical_query", "hybrid_query", "fetch", "embed_query")
    methods = {
        name: (owner, getattr(owner, name))
        for owner in (kb.store, kb)
        for name in names
        if hasattr(owner, name)
    }

    def recording(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            seen.add(threading.current_thread())
            return method(*args, **kwargs)

        return call

    for name, (owner, method) in methods.items():
        setattr(owner, name, recording(method))
    try:
        run()
    finally:
        for name, (owner, _) in methods.items():
            delattr(owner, name)
    assert seen
    return seen


def test_langchain_async_matches_sync(store: HeadwaterVectorStore, kb: KnowledgeBase) -> None:
    pdf = {"file_type": "pdf"}
    threshold = store.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.3}
    )
    retriever = HeadwaterRetriever(knowledge_base=kb, k=2, mode="dense")
    # (object, sync method, async method, args, kwargs)
    calls: list[tuple[Any, str, str, tuple[Any, ...], dict[str, Any]]] = [
        (store, "similarity_search", "asimilarity_search", (QUERY, 3), {"filter": pdf}),
        (store, "similarity_search_with_score", "asimilarity_search_with_score", (QUERY, 3), {}),
        (
            store,
            "similarity_search_by_vector",
            "asimilarity_search_by_vector",
            (kb.embed_query(QUERY), 3),
            {},
        ),
        (
            store,
            "max_marginal_relevance_search",
            "amax_marginal_relevance_search",
            (QUERY, 3),
            {"lambda_mult": 0.25},
        ),
        (threshold, "invoke", "ainvoke", (QUERY,), {}),
        (retriever, "invoke", "ainvoke", (QUERY,), {"filter": pdf}),
    ]

    async def run_async() -> list[Any]:
        return await asyncio.gather(*(getattr(o, a)(*args, **kw) for o, _, a, args, kw in calls))

    got = asyncio.run(run_async())
    assert got == [getattr(o, s)(*args, **kw) for o, s, _, args, kw in calls]
    # Off the event loop's thread: the loop goes on while the search runs.
    assert threading.main_thread() not in threads_that_searched(
        kb, lambda: asyncio.run(run_async())
    )
    assert all(got)


def test_milvus_lite_knowledge_base(tmp_path: Path, embedder: Embedder) -> None:
    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "bikes.md").write_text("# Bikes\n\nA road bike has drop handlebars and thin tyres.\n")
    (docs / "tyres.txt").write_text("Tyre pressure for a road bike is about 6 to 8 bar.\n")
    (docs / "lunch.md").write_text("# Lunch\n\nThe canteen serves soup on Fridays.\n")
    config = make_config(tmp_path, docs, store={"backend": "milvus"})
    with KnowledgeBase(config, embedder=embedder) as milvus_kb:
        assert milvus_kb.sync().ok
        store = HeadwaterVectorStore(milvus_kb, mode="dense")
        question = "What tyre pressure in bar?"
        assert paths(store.similarity_search(question, k=1)) == ["tyres.txt"]
        md = store.similarity_search(question, k=3, filter={"file_type": "md"})
        assert paths(md) == ["bikes.md", "lunch.md"]
        some = {"source": {"$in": ["docs:lunch.md", "docs:tyres.txt"]}}  # "<source>:<path>"
        assert paths(store.similarity_search(question, k=3, filter=some)) == [
            "tyres.txt",
            "lunch.md",
        ]
        nodes = (
            vector_store_index(milvus_kb)
            .as_retriever(
                similarity_top_k=3,
                filters=MetadataFilters(filters=[MetadataFilter(key="file_type", value="md")]),
            )
            .retrieve(question)
        )
        assert [n.node.metadata["path"] for n in nodes] == ["bikes.md", "lunch.md"]

        async def both() -> list[Any]:
            return await asyncio.gather(
                store.asimilarity_search(question, k=3, filter={"file_type": "md"}),
                milvus_kb.asearch(question, k=2, mode="hybrid"),
            )

        # Milvus Lite has no async client: its reads run on a worker thread, same hits.
        got_md, hybrid = asyncio.run(both())
        assert got_md == md and hybrid == milvus_kb.search(question, k=2, mode="hybrid")


# LlamaIndex

PDF = MetadataFilters(filters=[MetadataFilter(key="file_type", value="pdf")])


def test_llamaindex_from_vector_store_retrieves_without_an_llm(kb: KnowledgeBase) -> None:
    index = vector_store_index(kb)
    unfiltered = index.as_retriever(similarity_top_k=4).retrieve(QUERY)
    assert len(unfiltered) == 4
    assert {n.node.metadata["file_type"] for n in unfiltered} != {"pdf"}
    nodes = index.as_retriever(similarity_top_k=3, filters=PDF).retrieve(QUERY)
    assert len(nodes) == 3 and {n.node.metadata["file_type"] for n in nodes} == {"pdf"}
    assert nodes[0].node.metadata["path"] == "policies/expenses.pdf"
    # A query engine too, with LlamaIndex's MockLLM: the sources are the filtered nodes.
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=2, filters=PDF)
    response = engine.query(QUERY)
    assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in nodes[:2]]


def test_llamaindex_query_honours_top_k_filters_and_modes(kb: KnowledgeBase) -> None:
    store = LlamaStore(kb)
    vector = kb.embed_query(QUERY)
    later = MetadataFilters(
        filters=[
            MetadataFilter(key="file_type", value="pdf"),
            MetadataFilter(key="page", value=3, operator=FilterOperator.GTE),
        ]
    )
    result = store.query(
        VectorStoreQuery(query_embedding=vector, similarity_top_k=10, filters=later)
    )
    assert result.nodes and all(n.metadata["page"] >= 3 for n in result.nodes)
    slides_or_sheets = MetadataFilters(
        filters=[
            MetadataFilter(key="file_type", value="pptx"),
            MetadataFilter(key="file_type", value="xlsx"),
        ],
        condition=FilterCondition.OR,
    )
    result = store.query(
        VectorStoreQuery(query_embedding=vector, similarity_top_k=20, filters=slides_or_sheets)
    )
    assert {n.metadata["file_type"] for n in result.nodes or []} == {"pptx", "xlsx"}
    top2 = store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=2))
    assert len(top2.ids or []) == 2 and top2.similarities == sorted(
        top2.similarities or [], reverse=True
    )
    lexical = store.query(
        VectorStoreQuery(
            query_str="BitLocker", similarity_top_k=1, mode=VectorStoreQueryMode.TEXT_SEARCH
        )
    )
    assert [n.metadata["path"] for n in lexical.nodes or []] == ["it/security-faq.txt"]
    mmr = store.query(
        VectorStoreQuery(
            query_embedding=kb.embed_query("expense reimbursement"),
            similarity_top_k=4,
            mode=VectorStoreQueryMode.MMR,
            mmr_threshold=0.25,
        )
    )
    assert len({n.metadata["path"] for n in mmr.nodes or []}) > 1
    with pytest.raises(UnsupportedFilterError, match="'file_type' ne is not supported"):
        store.query(
            VectorStoreQuery(
                query_embedding=vector,
                filters=MetadataFilters(
                    filters=[
                        MetadataFilter(key="file_type", value="pdf", operator=FilterOperator.NE)
                    ]
                ),
            )
        )
    with pytest.raises(ValueError, match="query mode 'svm' is not supported"):
        store.query(VectorStoreQuery(query_embedding=vector, mode=VectorStoreQueryMode.SVM))


def test_llamaindex_retriever_takes_similarity_top_k_and_metadata_filters(
    kb: KnowledgeBase,
) -> None:
    # The issue's crash ("unhashable type: 'list'") and rejection, now honoured.
    retriever = LlamaRetriever(kb, similarity_top_k=2, filters=PDF, mode="dense")
    nodes = retriever.retrieve(QUERY)
    assert len(nodes) == 2 and {n.node.metadata["file_type"] for n in nodes} == {"pdf"}
    assert len(LlamaRetriever(kb, k=3).retrieve(QUERY)) == 3


def test_llamaindex_async_matches_sync(kb: KnowledgeBase) -> None:
    store = LlamaStore(kb)
    query = VectorStoreQuery(query_embedding=kb.embed_query(QUERY), similarity_top_k=3, filters=PDF)
    retriever = LlamaRetriever(kb, similarity_top_k=3, filters=PDF)
    index_retriever = vector_store_index(kb).as_retriever(similarity_top_k=3)

    async def both() -> list[Any]:
        return await asyncio.gather(
            store.aquery(query), retriever.aretrieve(QUERY), index_retriever.aretrieve(QUERY)
        )

    stored, retrieved, indexed = asyncio.run(both())
    assert threading.main_thread() not in threads_that_searched(kb, lambda: asyncio.run(both()))
    assert (
        stored.ids == store.query(query).ids
        and stored.similarities == store.query(query).similarities
    )
    assert retrieved == retriever.retrieve(QUERY)
    assert [n.node.node_id for n in indexed] == [
        n.node.node_id for n in index_retriever.retrieve(QUERY)
    ]


def test_docs_examples_run(kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    page = (Path(__file__).parent.parent / "docs" / "frameworks.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    assert len(blocks) == 2
    monkeypatch.setattr(KnowledgeBase, "open", classmethod(lambda cls, *a, **kw: kb))
    for block in blocks:
        exec(compile(block, "docs/frameworks.md", "exec"), {"llm": MockLLM()})


# LangChain's standard suites


def vector_store_retriever(
    search_type: str,
) -> Callable[..., VectorStoreRetriever]:
    """A constructor taking `k`, as RetrieversIntegrationTests calls it."""

    def make(knowledge_base: KnowledgeBase, k: int = 4) -> VectorStoreRetriever:
        return HeadwaterVectorStore(knowledge_base).as_retriever(
            search_type=search_type, search_kwargs={"k": k}
        )

    return make


class TestStandardRetrieverOverTheStore(standard.RetrieversIntegrationTests):
    """langchain-tests' RetrieversIntegrationTests on ``as_retriever()``, nothing overridden."""

    search_type = "similarity"

    @pytest.fixture(autouse=True)
    def _knowledge_base(self, kb: KnowledgeBase) -> None:
        self.kb = kb

    @property
    def retriever_constructor(self) -> Any:
        return vector_store_retriever(self.search_type)

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"knowledge_base": self.kb}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


class TestStandardMMRRetrieverOverTheStore(TestStandardRetrieverOverTheStore):
    search_type = "mmr"


READ_TESTS = (
    "test_vectorstore_is_empty",
    "test_vectorstore_still_empty",
    "test_get_by_ids_missing",
)
WRITE_TESTS = {
    name
    for name in dir(standard.VectorStoreIntegrationTests)
    if name.startswith("test_")
    and name != "test_no_overrides_DO_NOT_OVERRIDE"
    and name.removesuffix("_async") not in READ_TESTS
}
"""The suite's tests that add or delete documents: 18 of its 24 (6 read)."""


class TestStandardVectorStore(standard.VectorStoreIntegrationTests):
    """langchain-tests' VectorStoreIntegrationTests on an empty knowledge base. The read
    tests must pass; each write test must fail with ReadOnlyKnowledgeBaseError."""

    @pytest.fixture
    def vectorstore(self, tmp_path: Path, embedder: Embedder) -> Iterator[VectorStore]:
        empty = tmp_path / "empty"
        empty.mkdir()
        with KnowledgeBase(
            make_config(tmp_path, empty, store={"backend": "faiss"}), embedder=embedder
        ) as kb:
            yield HeadwaterVectorStore(kb)

    @pytest.fixture(autouse=True)
    def _writes_fail_clearly(self, request: pytest.FixtureRequest) -> None:
        if request.node.originalname in WRITE_TESTS:
            request.node.add_marker(
                pytest.mark.xfail(
                    raises=ReadOnlyKnowledgeBaseError,
                    strict=True,
                    reason="the knowledge base is fed by sync; writes raise",
                )
            )
