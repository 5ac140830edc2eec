"""Sync throughput against the number of Dask workers (`[cluster] local = N`).

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.cluster --workers 0,1,2 --limit 20

Each run is a cold sync of the same slice of the bench corpus (the `--limit` smallest
files, read in place from /work/shared/bench-corpus through a folder of links) into a
fresh FAISS store: 0 workers is the sync on this machine (the parser pool, the model in
this process); N >= 1 starts a local cluster of N worker processes, which load, chunk
and embed, while this process plans, writes and commits. The cluster is started and
every worker's model loaded before the clock starts, as a long-lived cluster would be.

Per-stage seconds come from the sync report: `load` and `chunk` are summed over the
files wherever they ran (worker seconds), `embed` is what the driver waited for vectors,
`write` and `commit` are driver time. Results: benchmarks/results/cluster.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))

from benchmarks.machine import describe_machine  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CORPUS = Path("/work/shared/bench-corpus")


def corpus_slice(corpus: Path, limit: int, into: Path) -> list[Path]:
    """The `limit` smallest documents, linked (not copied) into `into`."""
    files = sorted(
        (p for p in corpus.rglob("*") if p.is_file() and p.parent != corpus),
        key=lambda p: (p.stat().st_size, str(p)),
    )[:limit]
    for p in files:
        target = into / p.relative_to(corpus)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(p, target)
    return files


def run(workers: int, docs: Path, scratch: Path) -> dict[str, Any]:
    from headwater.compose import build_engine
    from headwater.config import HeadwaterConfig

    data: dict[str, Any] = {
        "sources": [{"name": "bench", "path": str(docs), "follow_symlinks": True}],
        "state": {"dir": str(scratch / f"state-{workers}")},
        "store": {"backend": "faiss"},
        "embedding": {"device": "cpu", "cache": False},
        "config_dir": scratch,
    }
    if workers:
        data["cluster"] = {"local": workers}
    engine = build_engine(HeadwaterConfig(**data))
    try:
        t0 = time.perf_counter()
        startup = 0.0
        if workers:
            from headwater.connectors.cluster import plugin_name

            cluster = engine.executor.cluster  # type: ignore[union-attr]
            client = cluster.client
            client.wait_for_workers(workers)
            # Every worker loads its model now, as on a cluster that has been running.
            name = plugin_name(engine.embedder.config)
            client.run(lambda dask_worker: dask_worker.plugins[name].embedder.dimension)
        else:
            _ = engine.embedder.dimension
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        report = engine.run()
        wall = time.perf_counter() - t1
        counts = None
        if workers:
            counts = client.run(
                lambda dask_worker: {
                    "batches": dask_worker.plugins[name].batches,
                    "tasks": dask_worker.state.executed_count,
                }
            )
    finally:
        engine.close()
    data_report = report.to_dict()
    chunks = data_report["chunks"]["written"]
    files = sum(data_report["files"].values())
    return {
        "workers": workers,
        "files": files,
        "failed": data_report["files"].get("failed", 0),
        "chunks": chunks,
        "startup_s": round(startup, 2),
        "wall_s": round(wall, 2),
        "files_per_s": round(files / wall, 3),
        "chunks_per_s": round(chunks / wall, 2),
        "stage_s": {k: round(v, 2) for k, v in data_report["stage_seconds"].items()},
        "per_worker": counts,
    }


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def markdown(result: dict[str, Any]) -> str:
    rows = result["runs"]
    lines = [
        "# Cluster scaling: sync throughput against Dask workers",
        "",
        f"Machine: {result['machine']['summary']}. Load average before / after: "
        f"{result['load_before']} / {result['load_after']} (the cores are shared with other "
        "work; the figures are as measured, not corrected). No GPU machine was lent: every "
        "worker embeds on CPU.",
        "",
        f"Corpus: the {result['limit']} smallest files of the bench corpus "
        f"({result['bytes'] / 1e6:.2f} MB). Command: `{result['command']}`.",
        "",
        "| workers | files | chunks | wall s | files/s | chunks/s | load s | chunk s | "
        "embed s (driver waits) | write s | commit s | startup s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["stage_s"]
        lines.append(
            f"| {r['workers'] or 'none (local sync)'} | {r['files']} | {r['chunks']} | "
            f"{r['wall_s']} | {r['files_per_s']} | {r['chunks_per_s']} | "
            f"{s.get('load', 0)} | {s.get('chunk', 0)} | {s.get('embed', 0)} | "
            f"{s.get('write', 0)} | {s.get('commit', 0)} | {r['startup_s']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    with tempfile.TemporaryDirectory(prefix="hw-cluster-bench-") as tmp:
        scratch = Path(tmp)
        docs = scratch / "docs"
        files = corpus_slice(args.corpus, args.limit, docs)
        result: dict[str, Any] = {
            "machine": describe_machine(),
            "limit": args.limit,
            "bytes": sum(p.stat().st_size for p in files),
            "command": " ".join(["python -m benchmarks.cluster", *sys.argv[1:]]),
            "load_before": load_average(),
            "runs": [],
        }
        for n in (int(w) for w in args.workers.split(",")):
            r = run(n, docs, scratch)
            print(json.dumps(r), flush=True)
            result["runs"].append(r)
        result["load_after"] = load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    md = args.out / "cluster.md"
    # The written model below the table is kept when the table is measured again.
    notes = md.read_text().split("\n## ", 1)[1] if md.exists() and "\n## " in md.read_text() else ""
    md.write_text(table + ("\n## " + notes if notes else ""))
    print(table)


if __name__ == "__main__":
    main()
