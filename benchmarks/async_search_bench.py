"""Concurrent async searches on a Milvus server: native (`AsyncMilvusClient`) against the
sync search on worker threads (`asyncio.to_thread`, what the framework adapters did before).

    HEADWATER_BENCH_MILVUS_URI=http://host:19530 nice python benchmarks/async_search_bench.py
    # or start the `milvus` package's server in a private network namespace:
    unshare -n sh -c 'ip link set lo up && exec nice python benchmarks/async_search_bench.py'

A collection of random unit vectors (dimension 384, the default model's), then rounds of
`--concurrent` searches (k = 5) gathered on one event loop, each way in turn within a round
so a busy machine slows both alike. Reports the median wall time per round, and how many
jobs each way handed to worker threads per round. The record goes to
benchmarks/results/async_search.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe_machine  # noqa: E402
from headwater.connectors.stores.milvus import MilvusConfig, MilvusStore  # noqa: E402
from headwater.connectors.testing import record, unit  # noqa: E402
from headwater.ingest.models import CollectionSpec  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "async_search.md"
DIM = 384


class CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor (what `asyncio.to_thread` uses), counting its jobs."""

    jobs = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


def run(uri: str, rows: int, concurrent: int, rounds: int) -> list[str]:
    state = Path(tempfile.mkdtemp())
    collection = "bench_async_" + uuid.uuid4().hex[:8]
    store = MilvusStore(MilvusConfig(uri=uri), collection=collection, state_dir=state)
    store.ensure_collection(CollectionSpec(DIM, "bench"))
    for start in range(0, rows, 1000):
        store.upsert(
            [record(f"c{i}", f"d{i % 50}.md", seed=i, dim=DIM) for i in range(start, start + 1000)]
        )
    rng = random.Random(7)
    queries = [unit(rng.randrange(10**6), DIM) for _ in range(concurrent)]

    async def native() -> object:
        return await asyncio.gather(*(store.aquery(q, k=5) for q in queries))

    async def threaded() -> object:
        return await asyncio.gather(*(asyncio.to_thread(store.query, q, 5) for q in queries))

    ways: dict[str, Callable[[], Awaitable[object]]] = {
        "native (AsyncMilvusClient)": native,
        "sync on worker threads (to_thread)": threaded,
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    jobs: dict[str, int] = dict.fromkeys(ways, 0)
    executor = CountingExecutor()

    async def measure() -> None:
        asyncio.get_running_loop().set_default_executor(executor)
        for way in ways.values():  # warm: connect both clients, load the collection
            await way()
        for _ in range(rounds):
            for name, way in ways.items():
                before = executor.jobs
                t = time.perf_counter()
                await way()
                times[name].append(1000 * (time.perf_counter() - t))
                jobs[name] += executor.jobs - before

    load_before = os.getloadavg()[0]
    asyncio.run(measure())
    load_after = os.getloadavg()[0]
    store.client.drop_collection(collection)
    store.close()
    machine = describe_machine()
    base = statistics.median(times["sync on worker threads (to_thread)"])
    lines = [
        "# Concurrent async searches on a Milvus server",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, {machine['summary']}; load average "
        f"{load_before:.2f} before, {load_after:.2f} after. Reproduce: "
        "`unshare -n sh -c 'ip link set lo up && exec nice python "
        "benchmarks/async_search_bench.py'`",
        "",
        f"{rows} vectors of {DIM} dimensions, {concurrent} searches (k = 5) gathered on one "
        f"event loop, {rounds} rounds, the ways alternating within each round.",
        "",
        "| way | median ms per round | vs threads | worker-thread jobs per round |",
        "|---|---:|---:|---:|",
    ]
    for name in ways:
        median = statistics.median(times[name])
        per_round = jobs[name] / rounds
        lines.append(f"| {name} | {median:.1f} | {median / base:.2f} | {per_round:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--concurrent", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    uri = os.environ.get("HEADWATER_BENCH_MILVUS_URI")
    if uri:
        lines = run(uri, args.rows, args.concurrent, args.rounds)
    else:
        from milvus import default_server

        default_server.set_base_dir(tempfile.mkdtemp())
        default_server.start()
        try:
            uri = f"http://127.0.0.1:{default_server.listen_port}"
            lines = run(uri, args.rows, args.concurrent, args.rounds)
        finally:
            default_server.stop()
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
