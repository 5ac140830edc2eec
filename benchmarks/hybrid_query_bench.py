"""What a hybrid query costs against a dense one, per backend, and where the time goes.

    nice python benchmarks/hybrid_query_bench.py                 # FAISS and Milvus Lite
    nice python benchmarks/hybrid_query_bench.py --backends faiss

The chunks are the retrieval-eval data (../shared/retrieval-eval) cut by the default
chunking (recursive 200/30), the queries its 231 questions, k = 5 with the `[search]`
defaults (weighted fusion, 4 x k candidates per ranking). Each question is asked densely
and hybrid back to back, so a busy machine slows both alike; the table gives medians.
Milvus Lite is measured twice: right after the upsert (its rows in a growing segment) and
after a flush (sealed, indexed segments), as a store reopened after a sync serves them.
Vectors and loaded documents are cached in .headwater/retrieval-eval/ (shared with
benchmarks/retrieval_eval.py). The record goes to benchmarks/results/hybrid_query.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe_machine  # noqa: E402
from benchmarks.retrieval_eval import DATA, config  # noqa: E402
from headwater.compose import build_evaluation  # noqa: E402
from headwater.connectors.registry import create_store  # noqa: E402
from headwater.ingest.chunking import create_chunker  # noqa: E402
from headwater.ingest.config import StoreConfig  # noqa: E402
from headwater.ingest.embedding import embedding_input  # noqa: E402
from headwater.ingest.fusion import fuse  # noqa: E402
from headwater.ingest.models import CollectionSpec, QueryHit, SearchMode, VectorRecord  # noqa: E402
from headwater.ingest.search import search_store  # noqa: E402
from headwater.ingest.store import VectorStore  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "hybrid_query.md"
K = 5
R = TypeVar("R")


def load() -> float:
    return os.getloadavg()[0]


def timed(f: Callable[[], R], times: list[float]) -> R:
    """f(), its time in ms appended to `times`."""
    t = time.perf_counter()
    out = f()
    times.append(1000 * (time.perf_counter() - t))
    return out


def ask_dense(
    store: VectorStore, text: str, embed: Callable[[str], Sequence[float]]
) -> list[QueryHit]:
    return store.query(embed(text), k=K)


def measure(
    store: VectorStore,
    questions: list[str],
    vectors: list[list[float]],
    embed: Callable[[str], Sequence[float]],
) -> dict[str, float]:
    """Median ms per question of each step, the steps of one question run back to back."""
    fusion = config(K).search.fusion_settings()
    depth = K * fusion.candidates
    names = ("dense", "hybrid", "generic", "dense leg", "lexical leg", "fuse", "ask dense")
    steps: dict[str, list[float]] = {k: [] for k in (*names, "ask hybrid")}
    for text, vector in zip(questions, vectors, strict=True):
        timed(partial(store.query, vector, k=K), steps["dense"])
        timed(partial(store.hybrid_query, vector, text, k=K, fusion=fusion), steps["hybrid"])
        generic = partial(VectorStore.hybrid_query, store, vector, text, k=K, fusion=fusion)
        timed(generic, steps["generic"])
        dense = timed(partial(store.query, vector, k=depth), steps["dense leg"])
        lexical = timed(partial(store.lexical_query, text, k=depth), steps["lexical leg"])
        timed(partial(fuse, dense, lexical, K, fusion), steps["fuse"])
        # As a user's query runs: the question embedded (uncached) and searched.
        timed(partial(ask_dense, store, text, embed), steps["ask dense"])
        ask = partial(search_store, store, text, embed, k=K, filters=None, fusion=fusion)
        timed(partial(ask, mode=SearchMode.HYBRID), steps["ask hybrid"])
    return {k: statistics.median(v) for k, v in steps.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="faiss,milvus")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--questions", type=int, default=None, help="the first N (default all)")
    args = parser.parse_args()
    if not (DATA / "questions.csv").is_file():
        print(f"{DATA} is not here: nothing to run")
        return
    loads = [load()]
    cfg = config(K)
    evaluation = build_evaluation(cfg, {"recursive": cfg.eval.strategies["recursive"]}, k=K)
    corpus = evaluation.load()
    chunker = create_chunker(cfg.eval.strategies["recursive"].chunking, evaluation.model)
    chunks = [c for d in corpus.documents for c in chunker.chunk(d)]
    inputs = [embedding_input(c) for c in chunks]
    with (DATA / "questions.csv").open(newline="") as f:
        questions = [row["question"] for row in csv.DictReader(f)]
    evaluation._embed([*inputs, *questions])
    vectors = [evaluation._vectors[q].tolist() for q in questions]
    records = [
        VectorRecord(c, evaluation._vectors[x].tolist())
        for c, x in zip(chunks, inputs, strict=True)
    ]
    questions = questions[: args.questions]
    vectors = vectors[: args.questions]
    embed_query = evaluation.embedder.embed_query
    embed_ms: list[float] = []
    for q in questions[:50]:  # uncached, one at a time, as `headwater query` embeds
        timed(partial(embed_query, q), embed_ms)
    embed = statistics.median(embed_ms)
    loads.append(load())

    rows = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as folder:
            made = StoreConfig(backend=backend, collection="bench")
            store = create_store(made, Path(folder))
            store.ensure_collection(CollectionSpec(evaluation.embedder.dimension, evaluation.model))
            store.upsert(records)
            state = "after upsert" if backend == "milvus" else "-"
            rows.append((backend, state, measure(store, questions, vectors, embed_query)))
            loads.append(load())
            if backend == "milvus":
                # Sealed, indexed segments, as a store reopened after a sync has them.
                store.client.flush("bench")  # type: ignore[attr-defined]
                store.close()
                store = create_store(made, Path(folder))
                m = measure(store, questions, vectors, embed_query)
                rows.append((backend, "flushed, reopened", m))
                loads.append(load())
            store.close()
            print(*rows[-1])

    machine = describe_machine()
    lines = [
        "# Hybrid against dense query time, per backend",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; machine: {machine['summary']}; "
        f"load average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f} "
        "(2 cores shared with other jobs: absolute times are several times an idle "
        "machine's; each question's steps run back to back, so ratios hold better)",
        f"- data: retrieval-eval, {len(chunks)} chunks (recursive 200/30), {len(questions)} "
        f"questions, k = {K}, weighted fusion over 4 x k candidates per ranking",
        f"- run: `nice python benchmarks/hybrid_query_bench.py {' '.join(sys.argv[1:])}`",
        f"- embedding one question (all-MiniLM-L6-v2, CPU, uncached): median {embed:.1f} ms",
        "",
        "Median ms per question. Store only (the question's vector given): `dense`; "
        "`hybrid`, the store's `hybrid_query`; `generic`, VectorStore's default one (both "
        "rankings read with their rows, then fused; FAISS's own fuses row ids and reads "
        "only the k rows); `dense leg` / `lexical leg`, each ranking alone at the hybrid's "
        "depth (20); `fuse`, the fusion in Python. As a user's query runs (`headwater "
        "query`, `KnowledgeBase.search`, the retrievers): `ask dense`, the question "
        "embedded then searched; `ask hybrid`, `search_store` in hybrid mode, where the "
        "lexical ranking runs while the question is embedded.",
        "",
        "| backend | state | dense | hybrid | hybrid / dense | generic | dense leg "
        "| lexical leg | fuse | ask dense | ask hybrid | ask hybrid / ask dense |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, state, m in rows:
        lines.append(
            f"| {backend} | {state} | {m['dense']:.2f} | {m['hybrid']:.2f} | "
            f"{m['hybrid'] / m['dense']:.2f} | {m['generic']:.2f} | {m['dense leg']:.2f} | "
            f"{m['lexical leg']:.2f} | {m['fuse']:.3f} | {m['ask dense']:.2f} | "
            f"{m['ask hybrid']:.2f} | {m['ask hybrid'] / m['ask dense']:.2f} |"
        )
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
