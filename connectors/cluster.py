"""Run a sync's loading, chunking and embedding on a Dask cluster (``[cluster]``).

The driver (the process that runs `SyncEngine.run`) keeps the plan, the store writes,
the manifest and the embedding cache: only pure work travels. `DaskExecutor` is the
engine's executor for preparing files; `RemoteEmbedder` is its embedder, sending
batches of chunk texts to workers where `EmbeddingPlugin` keeps one model per worker
process, on the worker's GPU when it has one. A worker that dies takes no file with it:
the scheduler runs its tasks again elsewhere, and a file that kills `max_tries` workers
comes back as that file's failure.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from headwater.ingest.cluster import ClusterConfig
from headwater.ingest.embedding import Embedder, EmbeddingConfig, ThreadBudget, input_window
from headwater.ingest.embedding import load_tokenizer as _load_tokenizer
from headwater.ingest.errors import ConfigError, HeadwaterError, MissingExtraError
from headwater.ingest.workers import ParseLimitError

try:
    import dask
    from distributed import Client, KilledWorker, LocalCluster, WorkerPlugin, get_worker
except ImportError:  # pragma: no cover - exercised without the extra installed
    raise MissingExtraError("cluster (the [cluster] table)", "cluster") from None

log = logging.getLogger(__name__)

T = TypeVar("T")

Vectors = np.ndarray[Any, np.dtype[np.float32]]


def embed_resources(workers: Iterable[Mapping[str, float]], gpu: str) -> dict[str, float]:
    """Resources an embedding task asks for, given each worker's advertised resources:
    one `gpu` when any worker has one (so CPU-only workers get no embedding), else none."""
    return {gpu: 1} if any(r.get(gpu, 0) > 0 for r in workers) else {}


def killed_reason(tries: int) -> str:
    return (
        f"it killed {tries} Dask worker(s) in turn (each died while working on it: out of "
        "memory or a crash in a parser)"
    )


class EmbeddingPlugin(WorkerPlugin):
    """Keeps one embedding model per worker process, loaded on first use; `loads` and
    `batches` count, for tests and the benchmark, how often it loaded and encoded."""

    idempotent = True
    """Registered again (another sync, another driver) with the same settings, it stays:
    the worker keeps the model it has."""

    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config
        self.loads = 0
        self.batches = 0
        self._embedder: Embedder | None = None
        self._threads = 1

    def setup(self, worker: Any) -> None:
        self._threads = max(1, int(worker.state.nthreads))
        self.loads = self.batches = 0
        self._embedder = Embedder(self.config)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:  # used outside a worker (no setup)
            self._embedder = Embedder(self.config)
        embedder = self._embedder
        if embedder._model is None:
            # The nanny starts workers with one math thread; the model may use the
            # worker's threads, as embedding tasks run one at a time per model anyway.
            import torch

            torch.set_num_threads(self._threads)
            embedder.model  # noqa: B018 - load now, to count it
            self.loads += 1
        return embedder

    def embed(self, texts: Sequence[str], counts: Sequence[int]) -> Vectors:
        vectors = self.embedder.embed(texts, counts)
        self.batches += 1
        return vectors

    def teardown(self, worker: Any) -> None:
        self._embedder = None


def plugin_name(config: EmbeddingConfig) -> str:
    """One plugin per embedding settings, so two configs sharing a cluster do not swap
    each other's models."""
    digest = hashlib.blake2b(config.model_dump_json().encode(), digest_size=6).hexdigest()
    return f"headwater-embedding-{digest}"


def _worker_plugin(name: str) -> EmbeddingPlugin:
    plugin = get_worker().plugins.get(name)
    if not isinstance(plugin, EmbeddingPlugin):
        raise HeadwaterError(f"worker has no {name} plugin: was it registered by this driver?")
    return plugin


def embed_task(name: str, texts: Sequence[str], counts: Sequence[int]) -> Vectors:
    """Runs on a worker: the worker's kept model encodes one piece of a batch."""
    return _worker_plugin(name).embed(texts, counts)


def dimension_task(name: str) -> int:
    return _worker_plugin(name).embedder.dimension


class DaskCluster:
    """A client of the configured cluster; connects (or starts the `local` cluster) on
    first use, registers the embedding plugin, and closes what it started."""

    def __init__(self, config: ClusterConfig, embedding: EmbeddingConfig) -> None:
        self.config = config
        self.embedding = embedding
        self.plugin = plugin_name(embedding)
        self._client: Client | None = None
        self._local: LocalCluster | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    @property
    def address(self) -> str:
        """The scheduler's address (starting the local cluster if that is the config)."""
        return str(self.client.scheduler_info()["address"])

    def _connect(self) -> Client:
        cfg = self.config
        if cfg.local:
            # The local scheduler runs here, so the tries are ours to set. One task per
            # worker thread at a time: a worker that dies takes only the file it was on.
            with dask.config.set(
                {
                    "distributed.scheduler.allowed-failures": cfg.max_tries - 1,
                    "distributed.scheduler.worker-saturation": 1.0,
                }
            ):
                self._local = LocalCluster(
                    n_workers=cfg.local,
                    threads_per_worker=cfg.threads_per_worker,
                    processes=True,
                    host="127.0.0.1",
                    # Any free port: the scheduler's HTTP server starts even without a
                    # dashboard, and a taken 8787 (another cluster) only earns a warning.
                    dashboard_address="127.0.0.1:0",
                )
            client = Client(self._local)
        else:
            try:
                client = Client(cfg.address, timeout=cfg.connect_timeout_s)
            except (OSError, TimeoutError) as exc:
                raise ConfigError(
                    f"cluster.address: cannot reach the Dask scheduler at {cfg.address} "
                    f"within {cfg.connect_timeout_s:g} s ({exc}). Start it (`dask scheduler`), "
                    "fix cluster.address, or remove it to run on this machine."
                ) from None
        if self.config.embed_on_workers:
            client.register_plugin(EmbeddingPlugin(self.embedding), name=self.plugin)
        return client

    def embed_resources(self) -> dict[str, float]:
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        return embed_resources(
            (w.get("resources") or {} for w in workers), self.config.gpu_resource
        )

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            local, self._local = self._local, None
        if client is not None:
            client.close()
        if local is not None:
            local.close()


class DaskExecutor(Executor):
    """Prepares files as tasks on the cluster; a file whose task killed `max_tries`
    workers comes back failed (`ParseLimitError`), naming that."""

    def __init__(self, cluster: DaskCluster) -> None:
        self.cluster = cluster
        self.files_in_flight = cluster.config.files_in_flight
        # Workers of a `local` cluster share this machine's cores with the driver.
        self.local_workers = cluster.config.local
        self._running: dict[Future[Any], Any] = {}
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return self.cluster.address

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        inner = self.cluster.client.submit(fn, *args, pure=False, key=_task_key(args), **kwargs)
        outer: Future[T] = Future()
        outer.set_running_or_notify_cancel()
        with self._lock:
            # The distributed future must live until it settles: dropping it cancels the task.
            self._running[outer] = inner
        inner.add_done_callback(lambda done: self._settle(outer, done))
        return outer

    def _settle(self, outer: Future[Any], inner: Any) -> None:
        with self._lock:
            self._running.pop(outer, None)
        try:
            outer.set_result(inner.result())
        except KilledWorker:
            outer.set_exception(ParseLimitError(killed_reason(self.cluster.config.max_tries)))
        except BaseException as exc:
            outer.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            pending, self._running = list(self._running.values()), {}
        if pending and self.cluster._client is not None:
            self.cluster.client.cancel(pending)
        self.cluster.close()


def _task_key(args: tuple[Any, ...]) -> str:
    # One prefix for every file: the scheduler treats them as one group of like tasks.
    return f"headwater-prepare-{uuid.uuid4().hex}"


class RemoteEmbedder(Embedder):
    """An `Embedder` whose encoding runs on the cluster's workers.

    Tokens are counted here with the model's tokenizer alone (no weights); the vectors
    come from the workers' kept models, a batch split into `embed_batch`-chunk tasks
    spread over the (GPU) workers. The caller holds one batch's vectors at a time.
    """

    def __init__(self, cluster: DaskCluster) -> None:
        super().__init__(cluster.embedding)
        self.cluster = cluster

    @property
    def model(self) -> Any:
        raise HeadwaterError("the embedding model runs on the cluster's workers, not here")

    @property
    def device(self) -> str:
        return "cluster"

    @cached_property
    def dimension(self) -> int:
        client = self.cluster.client
        future = client.submit(
            dimension_task,
            self.cluster.plugin,
            pure=False,
            resources=self.cluster.embed_resources(),
        )
        return int(self._gather([future])[0])

    @property
    def max_tokens(self) -> int:
        return input_window(self.config.model)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        from headwater.ingest.embedding import _TOKENIZER_LOCK

        tokenizer = _load_tokenizer(self.config.model)
        with _TOKENIZER_LOCK:
            ids = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
        return [len(i) for i in ids["input_ids"]]

    def embed(
        self,
        texts: Sequence[str],
        token_counts: Sequence[int] | None = None,
        *,
        threads: ThreadBudget | None = None,
    ) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        counts = list(token_counts) if token_counts is not None else self.token_counts(texts)
        client = self.cluster.client
        resources = self.cluster.embed_resources()
        size = self.cluster.config.embed_batch
        futures = [
            client.submit(
                embed_task,
                self.cluster.plugin,
                list(texts[i : i + size]),
                counts[i : i + size],
                pure=False,
                resources=resources,
            )
            for i in range(0, len(texts), size)
        ]
        parts = self._gather(futures)
        return np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])

    def _gather(self, futures: list[Any]) -> list[Any]:
        try:
            return list(self.cluster.client.gather(futures))
        except KilledWorker:
            raise HeadwaterError(
                f"embedding on the cluster failed: a batch {killed_reason(self.cluster.config.max_tries)}"
            ) from None
