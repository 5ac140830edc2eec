"""Upsert and query 10,000 vectors in each store backend; record the times, of dense,
lexical (BM25) and hybrid queries alike.

    .venv/bin/python benchmarks/store_bench.py                 # every backend that runs here
    .venv/bin/python benchmarks/store_bench.py --backends faiss-flat milvus-lite
    HEADWATER_TEST_MILVUS_URI=http://127.0.0.1:19530 .venv/bin/python benchmarks/store_bench.py

`milvus-server` runs when HEADWATER_TEST_MILVUS_URI is set, or with --start-milvus (starts
the `milvus` package's server, which listens on all interfaces: run it inside
`unshare -n sh -c 'ip link set lo up && ...'`). `weaviate` is the in-process wire-protocol
server from tests/ unless WEAVIATE_URL points at a real one.
Results go to benchmarks/results/stores.json and stores.md. --embed adds the time to embed
each query with the default model, so dense and hybrid compare as a user's query does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import save_results  # noqa: E402
from headwater.connectors.registry import store_class  # noqa: E402
from headwater.ingest.models import Chunk, ChunkMetadata, CollectionSpec, QueryFilter, VectorRecord  # noqa: E402
from headwater.ingest.store import LexicalSearchUnsupportedError, VectorStore  # noqa: E402

DIM = 384  # all-MiniLM-L6-v2, the default model
BACKENDS = ["milvus-lite", "milvus-server", "faiss-flat", "faiss-ivf", "faiss-hnsw", "weaviate"]


@dataclass
class Result:
    backend: str
    location: str
    vectors: int
    batch: int
    upsert_seconds: float
    upsert_per_second: float
    queries: int
    query_ms_p50: float
    query_ms_p95: float
    filtered_query_ms_p50: float
    recall_at_1: float
    """Share of queries for a stored vector whose own id came first (ANN indexes < 1)."""
    lexical_ms_p50: float | None = None
    hybrid_ms_p50: float | None = None
    hybrid_ms_p95: float | None = None
    hybrid_over_dense: float | None = None
    """hybrid p50 / dense p50 of the same queries timed back to back, store only."""
    embed_ms_p50: float | None = None
    """Embedding one query (--embed); the same for every backend and mode but lexical."""
    hybrid_over_dense_with_embedding: float | None = None
    """p50 of (embed, then hybrid) / p50 of (embed, then dense): what a user's query costs."""


WORDS = 5000
"""Vocabulary of the generated texts; word frequencies follow Zipf's law, as prose does."""


def vocabulary(seed: int = 3) -> list[str]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, size=int(rng.integers(3, 11)))) for _ in range(WORDS)]


def texts(n: int, seed: int = 5) -> list[str]:
    """Chunk-sized texts (about 100 words, 600 characters) of Zipf-distributed words."""
    vocab = vocabulary()
    rng = np.random.default_rng(seed)
    ranks = np.minimum(rng.zipf(1.2, size=(n, 100)), WORDS) - 1
    return [" ".join(vocab[r] for r in row) for row in ranks]


def query_text(text: str, rng: np.random.Generator) -> str:
    """Four words of a stored chunk, as a user might type them."""
    words = text.split()
    return " ".join(words[i] for i in rng.choice(len(words), size=4, replace=False))


def records(n: int, seed: int = 7) -> tuple[list[VectorRecord], np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    out = []
    bodies = texts(n)
    for i in range(n):
        path = f"docs/file{i % 200:03d}.{('pdf', 'md', 'html')[i % 3]}"
        meta = ChunkMetadata(
            source_id=f"bench:{path}",
            source="bench",
            path=path,
            file_type=path.rsplit(".", 1)[1],
            position=i // 200,
            start=0,
            end=600,
            pages=(i % 12 + 1,),
            section="Section",
            element_types=("NarrativeText",),
        )
        text = f"chunk {i} {bodies[i]}"
        out.append(
            VectorRecord(
                Chunk(uuid.uuid5(uuid.NAMESPACE_URL, str(i)).hex, text, meta), vecs[i].tolist()
            )
        )
    return out, vecs


@contextmanager
def open_stores(
    backend: str, state: Path, args: argparse.Namespace
) -> Iterator[Callable[[], VectorStore]]:
    """A factory of stores on one collection of `backend` (each closed on exit)."""
    collection = "bench_" + uuid.uuid4().hex[:8]
    with ExitStack() as stack:
        if backend == "milvus-lite":
            name, options = "milvus", {"uri": str(state / "lite.db")}
        elif backend == "milvus-server":
            name, options = "milvus", {"uri": stack.enter_context(milvus_server(state, args))}
        elif backend.startswith("faiss-"):
            name, options = "faiss", {"index": backend.removeprefix("faiss-")}
        elif backend == "weaviate":
            name, options = "weaviate", stack.enter_context(weaviate_options())
        else:
            raise SystemExit(f"unknown backend {backend}")
        cls = store_class(name)
        config = cls.config_model.model_validate(options)

        def opener() -> VectorStore:
            store = cls(config, collection=collection, state_dir=state)
            stack.callback(store.close)
            return store

        yield opener


@contextmanager
def open_store(backend: str, state: Path, args: argparse.Namespace) -> Iterator[VectorStore]:
    with open_stores(backend, state, args) as opener:
        yield opener()


@contextmanager
def milvus_server(state: Path, args: argparse.Namespace) -> Iterator[str]:
    if uri := os.environ.get("HEADWATER_TEST_MILVUS_URI"):
        yield uri
        return
    if not args.start_milvus:
        raise LookupError("set HEADWATER_TEST_MILVUS_URI or pass --start-milvus")
    from milvus import default_server

    default_server.set_base_dir(str(state / "milvus-server"))
    default_server.start()
    try:
        yield f"http://127.0.0.1:{default_server.listen_port}"
    finally:
        default_server.stop()


@contextmanager
def weaviate_options() -> Iterator[dict[str, object]]:
    if url := os.environ.get("WEAVIATE_URL"):
        yield {"url": url}
        return
    from tests.weaviate_server.server import WeaviateServer

    with WeaviateServer() as server:
        yield {"url": server.url, "grpc_port": server.grpc_port}


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(backend: str, n: int, batch: int, queries: int, args: argparse.Namespace) -> Result:
    recs, vecs = records(n)
    with tempfile.TemporaryDirectory() as tmp, open_store(backend, Path(tmp), args) as store:
        store.ensure_collection(CollectionSpec(DIM, "bench"))
        upsert = sum(
            timed(lambda b=b: store.upsert(recs[b : b + batch])) for b in range(0, n, batch)
        )
        if store.count() != n:
            raise AssertionError(f"{backend}: holds {store.count()} of {n} vectors")
        rng = np.random.default_rng(1)
        picks = rng.choice(n, size=queries, replace=False)
        store.query(vecs[0].tolist(), k=10)  # warm-up: loads, first search
        plain, hits_first = [], 0
        for i in picks:
            t0 = time.perf_counter()
            hits = store.query(vecs[i].tolist(), k=10)
            plain.append(time.perf_counter() - t0)
            hits_first += bool(hits) and hits[0].id == recs[i].id
        where = QueryFilter(file_types=("pdf",), pages=(1, 2, 3))
        filtered = [
            timed(lambda i=i: store.query(vecs[i].tolist(), k=10, filters=where)) for i in picks
        ]
        lexical: list[float] = []
        pairs: list[tuple[float, float]] = []
        """(dense, hybrid) seconds of one query timed back to back: a ratio of medians
        taken in separate phases would mostly measure the machine's load drift."""
        users: list[tuple[float, float, float]] = []
        """(embed, embed + dense, embed + hybrid) seconds, as a user's query runs."""
        qrng = np.random.default_rng(2)
        words = {int(i): query_text(recs[i].chunk.text, qrng) for i in picks}
        if backend == "weaviate" and not os.environ.get("WEAVIATE_URL"):
            print("weaviate: lexical and hybrid not timed (the stand-in's BM25 is a test oracle)")
        else:
            try:
                store.lexical_query(words[int(picks[0])], k=10)
            except LexicalSearchUnsupportedError as exc:
                print(f"{backend}: no lexical search ({exc})")
            else:
                for i, text in words.items():
                    d = timed(lambda i=i: store.query(vecs[i].tolist(), k=10))
                    lexical.append(timed(lambda t=text: store.lexical_query(t, k=10)))
                    h = timed(lambda i=i, t=text: store.hybrid_query(vecs[i].tolist(), t, k=10))
                    pairs.append((d, h))
                if args.embed:
                    # Embedding and searching in one process: the model's and the
                    # store's thread pools compete, which store-only times hide.
                    embed = embedder()
                    for text in words.values():
                        e = timed(lambda t=text: embed(t))
                        ed = timed(lambda t=text: store.query(embed(t), k=10))
                        eh = timed(lambda t=text: store.hybrid_query(embed(t), t, k=10))
                        users.append((e, ed, eh))
        location = store.location

    def median_ms(values: Iterable[float]) -> float:
        return round(statistics.median(values) * 1000, 2)

    hybrid_times = [h for _, h in pairs]
    with_embedding = (
        statistics.median(eh for _, _, eh in users) / statistics.median(ed for _, ed, _ in users)
        if users
        else None
    )
    return Result(
        backend=backend,
        location=location
        if backend != "milvus-lite" and not backend.startswith("faiss")
        else "(temp dir)",
        vectors=n,
        batch=batch,
        upsert_seconds=round(upsert, 3),
        upsert_per_second=round(n / upsert),
        queries=queries,
        query_ms_p50=round(statistics.median(plain) * 1000, 2),
        query_ms_p95=round(statistics.quantiles(plain, n=20)[-1] * 1000, 2),
        filtered_query_ms_p50=round(statistics.median(filtered) * 1000, 2),
        recall_at_1=round(hits_first / queries, 3),
        lexical_ms_p50=median_ms(lexical) if lexical else None,
        hybrid_ms_p50=median_ms(hybrid_times) if pairs else None,
        hybrid_ms_p95=round(statistics.quantiles(hybrid_times, n=20)[-1] * 1000, 2)
        if pairs
        else None,
        hybrid_over_dense=round(
            statistics.median(hybrid_times) / statistics.median(d for d, _ in pairs), 2
        )
        if pairs
        else None,
        embed_ms_p50=median_ms(e for e, _, _ in users) if users else None,
        hybrid_over_dense_with_embedding=round(with_embedding, 3) if with_embedding else None,
    )


@dataclass
class Latency:
    """Query times as a sync leaves the store, and after it is closed and opened again."""

    backend: str
    vectors: int
    write_seconds: float
    flush_seconds: float
    """`VectorStore.flush`, which a sync calls when it ends (Milvus Lite: seal and index)."""
    after_sync_ms_p50: float
    after_sync_ms_p95: float
    reopen_first_query_s: float
    """Opening the store and its first search (Milvus Lite loads the collection)."""
    reopened_ms_p50: float
    reopened_ms_p95: float
    load_average: str


def percentiles_ms(times: list[float]) -> tuple[float, float]:
    return (
        round(statistics.median(times) * 1000, 2),
        round(statistics.quantiles(times, n=20)[-1] * 1000, 2),
    )


def latency(backend: str, n: int, queries: int, args: argparse.Namespace) -> Latency:
    """Write `n` vectors as a sync does, flush, time queries; close, reopen, time again."""
    recs, vecs = records(n)
    picks = np.random.default_rng(1).choice(n, size=queries, replace=False)

    def timed_queries(store: VectorStore) -> list[float]:
        return [timed(lambda i=i: store.query(vecs[i].tolist(), k=10)) for i in picks]

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp, open_stores(backend, Path(tmp), args) as opener:
        store = opener()
        store.ensure_collection(CollectionSpec(DIM, "bench"))
        write = sum(timed(lambda b=b: store.upsert(recs[b : b + 1000])) for b in range(0, n, 1000))
        flush = timed(store.flush)
        after = percentiles_ms(timed_queries(store))
        store.close()
        # A fresh store object: Milvus Lite's file is released on close and loaded again,
        # as another process would; FAISS reads its saved index file.
        store = opener()
        first = timed(lambda: store.query(vecs[int(picks[0])].tolist(), k=10))
        again = percentiles_ms(timed_queries(store))
        store.close()
    return Latency(
        backend, n, round(write, 2), round(flush, 2), *after, round(first, 3), *again, load
    )


def write_latency(results: list[Latency], out: Path, command: str) -> None:
    lines = save_results(
        out, "stores-latency", list(results), command, "Store query latency after a sync"
    )
    lines += [
        f"{DIM}-dimensional unit vectors with chunk-sized text and metadata, written in batches "
        "of 1,000, then `flush()` (what a sync does when it ends); top-10 queries by a stored "
        "vector in the same process, then after closing and opening the store again.",
        "",
        "| backend | vectors | write s | flush s | after sync p50 ms | p95 ms "
        "| reopen + first query s | reopened p50 ms | p95 ms | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.backend} | {r.vectors} | {r.write_seconds} | {r.flush_seconds} "
            f"| {r.after_sync_ms_p50} | {r.after_sync_ms_p95} | {r.reopen_first_query_s} "
            f"| {r.reopened_ms_p50} | {r.reopened_ms_p95} | {r.load_average} |"
        )
    (out / "stores-latency.md").write_text("\n".join(lines) + "\n")


_EMBEDDER: list[Callable[[str], list[float]]] = []


def embedder() -> Callable[[str], list[float]]:
    """The default model's embed_query, loaded and warmed once."""
    if not _EMBEDDER:
        from headwater.ingest.embedding import Embedder, EmbeddingConfig

        model = Embedder(EmbeddingConfig(device="cpu"))
        model.embed_query("warm up")
        _EMBEDDER.append(model.embed_query)
    return _EMBEDDER[0]


def write(results: list[Result], out: Path, command: str) -> None:
    lines = save_results(
        out, "stores", list(results), command, "Store backends: upsert and query 10,000 vectors"
    )
    lines += [
        f"{DIM}-dimensional unit vectors with chunk-sized text and metadata, upserted in batches; "
        "queries ask for the top 10 by a stored vector (filtered: pdf, pages 1-3). Texts are "
        "about 100 words drawn from a 5,000-word vocabulary by Zipf's law; lexical queries are "
        "4 words of a stored chunk; hybrid runs both and fuses them (RRF, 40 candidates each).",
        "",
        "`weaviate` is the in-process stand-in from tests/weaviate_server (exact numpy search)"
        " unless WEAVIATE_URL was set; its times say nothing about a real Weaviate server.",
        "",
        "| backend | upsert s | vectors/s | query p50 ms | query p95 ms | filtered p50 ms "
        "| recall@1 | lexical p50 ms | hybrid p50 ms | hybrid p95 ms | hybrid / dense "
        "| hybrid / dense with embedding |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(value: object) -> str:
        return "-" if value is None else str(value)

    for r in results:
        lines.append(
            f"| {r.backend} | {r.upsert_seconds} | {r.upsert_per_second} | {r.query_ms_p50} | "
            f"{r.query_ms_p95} | {r.filtered_query_ms_p50} | {r.recall_at_1} | "
            f"{cell(r.lexical_ms_p50)} | {cell(r.hybrid_ms_p50)} | {cell(r.hybrid_ms_p95)} | "
            f"{cell(r.hybrid_over_dense)} | {cell(r.hybrid_over_dense_with_embedding)} |"
        )
    embed = next((r.embed_ms_p50 for r in results if r.embed_ms_p50), None)
    if embed:
        lines += ["", f"Embedding one query (all-MiniLM-L6-v2, CPU): p50 {embed} ms."]
    (out / "stores.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=BACKENDS, choices=BACKENDS)
    parser.add_argument("--vectors", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--start-milvus", action="store_true")
    parser.add_argument("--embed", action="store_true", help="also time embedding each query")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--after-sync",
        nargs="*",
        type=int,
        metavar="VECTORS",
        help="instead: query latency after a sync's flush and after reopening, at these sizes "
        "(stores-latency.md)",
    )
    args = parser.parse_args()
    command = "python " + " ".join(["benchmarks/store_bench.py", *sys.argv[1:]])
    if args.after_sync:
        timings = []
        for backend in args.backends:
            for n in args.after_sync:
                try:
                    t = latency(backend, n, args.queries, args)
                except LookupError as exc:
                    print(f"{backend}: skipped ({exc})")
                    continue
                print(json.dumps(asdict(t)), flush=True)
                timings.append(t)
                write_latency(timings, args.out, command)
        return
    results = []
    for backend in args.backends:
        try:
            r = bench(backend, args.vectors, args.batch, args.queries, args)
        except LookupError as exc:
            print(f"{backend}: skipped ({exc})")
            continue
        print(json.dumps(asdict(r)))
        results.append(r)
    write(results, args.out, command)


if __name__ == "__main__":
    main()
