"""The composition root: builds the parts from the config and hands each its own section.

The CLI, the Python API and the Prefect flows all build through here, so a sync is the
same whichever way it starts. Nothing connects or loads a model here; parts open on
first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

from headwater.connectors.registry import create_source, create_store
from headwater.ingest.config import IngestConfig, StoreConfig
from headwater.ingest.embedding import Embedder
from headwater.ingest.query_encoder import QueryEncoder

if TYPE_CHECKING:
    # The sync's and the evaluation's parts load where they are built: `headwater query`
    # pays for none of them.
    from headwater.ingest.chunking.config import ChunkingConfig
    from headwater.ingest.config import EvalVariant
    from headwater.ingest.embedding_cache import EmbeddingCache
    from headwater.ingest.engine import Progress, SyncEngine
    from headwater.ingest.evaluation import Convention, Evaluation
    from headwater.ingest.prepare import Preparer
    from headwater.ingest.source import Source
    from headwater.ingest.state import KnowledgeState
    from headwater.ingest.store import VectorStore


def build_store(config: IngestConfig, *, backend: str | None = None) -> VectorStore:
    """The configured store (or another backend's table of the same config), unconnected."""
    return create_store(config.store, config.state_dir, backend)


def build_state(config: IngestConfig, *, store: VectorStore | None = None) -> KnowledgeState:
    """Store (with the sync's retry policy), manifest and lock of the configured base."""
    from headwater.ingest.retry import RetryingStore
    from headwater.ingest.state import KnowledgeState

    inner = store or build_store(config)
    return KnowledgeState(
        RetryingStore(inner, config.store.retry),
        config.state_dir,
        backend=config.store.backend,
        model=config.embedding.vector_space,
    )


def build_sources(config: IngestConfig) -> list[Source]:
    return [
        create_source(s, config_dir=config.config_dir, max_file_mb=config.loading.max_file_mb)
        for s in config.sources
    ]


def build_embedder(config: IngestConfig) -> Embedder:
    return Embedder(config.embedding)


def build_query_encoder(
    config: IngestConfig, torch_model: Callable[[], Embedder] | None = None
) -> QueryEncoder:
    """What encodes queries (``embedding.query_runtime``); `torch_model` is the full model
    it falls back to, loaded only when used (default: one built from the config)."""
    if torch_model is None:
        torch_model = cache(partial(build_embedder, config))
    return QueryEncoder(config.embedding, config.state_dir, torch_model)


def build_embedding_cache(config: IngestConfig) -> EmbeddingCache | None:
    from headwater.ingest.embedding_cache import EmbeddingCache

    e = config.embedding
    if not e.cache:
        return None
    return EmbeddingCache(
        config.state_dir / "embeddings.sqlite", e.vector_space, e.cache_max_entries
    )


def build_preparer(
    config: IngestConfig,
    *,
    sources: Sequence[Source] | None = None,
    embedder: Embedder | None = None,
) -> Preparer:
    from headwater.ingest.prepare import Preparer

    chunking: Mapping[str, ChunkingConfig] = {s.name: s.chunking for s in config.sources}
    return Preparer(
        sources if sources is not None else build_sources(config),
        chunking,
        config.loading,
        config.embedding.model,
        embedder=embedder,
        context=config.embedding.context,
    )


def build_engine(
    config: IngestConfig,
    *,
    store: VectorStore | None = None,
    embedder: Embedder | None = None,
    sources: Sequence[Source] | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> SyncEngine:
    """The sync engine for `config`; parts handed in (a shared model, test sources, a task
    runner's executor) are used as they are. With a `[cluster]`, files are prepared, and
    chunks embedded, on its workers (the model handed in then only serves searches)."""
    from headwater.ingest.engine import SyncEngine, loading_key
    from headwater.ingest.executors import InProcessExecutor
    from headwater.ingest.workers import executor_for

    embedder = embedder or build_embedder(config)
    preparer_embedder: Embedder | None = embedder
    if config.cluster.enabled and executor is None:
        executor, embedder = build_cluster(config, embedder)
        # Chunkers are built where files are chunked, on the workers.
        preparer_embedder = None
    if executor is None:
        # Sources handed in as objects may not survive a trip to a worker process.
        executor = InProcessExecutor() if sources is not None else executor_for(config.loading)
    return SyncEngine(
        state=build_state(config, store=store),
        preparer=build_preparer(config, sources=sources, embedder=preparer_embedder),
        embedder=embedder,
        loading_key=loading_key(config.loading),
        embedding_cache=build_embedding_cache(config),
        executor=executor,
        progress=progress,
    )


def build_cluster(
    config: IngestConfig, embedder: Embedder | None = None
) -> tuple[Executor, Embedder]:
    """The `[cluster]` runner: an executor that prepares files on the workers, and the
    embedder to use with it: the workers' models, or with `embed_on_workers` off this
    process's (`embedder`, or one built). Connects on first use; shutting the executor
    down closes the client."""
    from headwater.connectors.cluster import DaskCluster, DaskExecutor, RemoteEmbedder

    cluster = DaskCluster(config.cluster, config.embedding)
    if config.cluster.embed_on_workers:
        return DaskExecutor(cluster), RemoteEmbedder(cluster)
    return DaskExecutor(cluster), embedder or build_embedder(config)


def build_evaluation(
    config: IngestConfig,
    variants: Mapping[str, EvalVariant | ChunkingConfig],
    *,
    k: int,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    convention: Convention = "headwater",
    skip_missing: bool = False,
    scratch_backend: str | None = None,
) -> Evaluation:
    """`headwater eval`: each variant goes into its own scratch store (the default
    backend, FAISS, or `scratch_backend`); loaded documents and vectors are kept in the state folder,
    so a second run parses and embeds nothing it did before."""
    from headwater.ingest.evaluation import Evaluation

    scratch = StoreConfig(collection="headwater_eval")
    if scratch_backend is not None:
        scratch.backend = scratch_backend

    def scratch_store(folder: Path) -> VectorStore:
        return create_store(scratch, folder)

    return Evaluation(
        build_sources(config),
        config.loading,
        variants,
        embedder=embedder or build_embedder(config),
        scratch_store=scratch_store,
        k=k,
        progress=progress,
        embedding_cache=build_embedding_cache(config),
        document_cache=config.state_dir / "eval-documents",
        context=config.embedding.context,
        convention=convention,
        skip_missing=skip_missing,
        fusion=config.search.fusion_settings(),
    )
