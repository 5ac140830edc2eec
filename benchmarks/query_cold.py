"""A cold `headwater query`: a new process per query, on a ~5,000-chunk store.

    .venv/bin/python -m benchmarks.query_cold --corpus ../shared/bench-corpus --runs 5

The corpus is synced once into Milvus Lite (kept in --work, reused by later runs; a copy
of the store as the sync left it stands for "first open after a sync") and copied into
FAISS with `headwater migrate`. Each figure is the median wall time of --runs processes of
`headwater query Q --json`, with their CPU time (user + sys) beside it: before
(embedding.query_runtime = "torch", today's path) and after ("onnx"), alternated run by run
so the machine's load falls on both alike. Milvus Lite is measured on a store reopened
before (its index built) and, separately, on the store exactly as the sync left it (the
first open builds the index; each run starts from a fresh copy).

The top-5 check: every question of the shipped question sets, dense and hybrid, ranked by
both runtimes in one process per backend; the ids must be equal. Results:
benchmarks/results/query_cold.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))

from benchmarks.machine import describe_machine  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
QUESTION = "How many people died in the Lion Air Flight 610 accident?"
QUESTION_SETS = (
    ROOT / "tests" / "fixtures" / "eval_sample_docs.json",
    ROOT / "tests" / "fixtures" / "sample_queries.json",
    ROOT / "benchmarks" / "eval" / "bench_questions.json",
)


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


def config_text(corpus: Path, state: Path, backend: str) -> str:
    return (
        f'[[sources]]\nname = "bench"\npath = "{corpus}"\ninclude = ["pdf/**", "html/**"]\n'
        f'[embedding]\ndevice = "cpu"\n[store]\nbackend = "{backend}"\ncollection = "headwater"\n'
        f'[state]\ndir = "{state}"\n'
    )


def headwater(*args: str, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall and CPU seconds of one `headwater` process, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "headwater", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"headwater {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def prepare(corpus: Path, work: Path) -> dict[str, Path]:
    """Configs of the synced Milvus Lite store, its pristine copy, and the FAISS copy."""
    work.mkdir(parents=True, exist_ok=True)
    configs = {}
    for name, backend in (("milvus", "milvus"), ("faiss", "faiss")):
        path = work / f"{name}.toml"
        path.write_text(config_text(corpus, work / name, backend))
        configs[name] = path
    if not (work / "milvus-after-sync").exists():
        print("syncing the corpus into Milvus Lite (once)...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "headwater", "sync", "--config", str(configs["milvus"])],
            check=False,
        )
        shutil.copytree(work / "milvus", work / "milvus-after-sync")
    if not (work / "faiss").exists():
        headwater("migrate", "--config", str(configs["milvus"]), "--to", str(configs["faiss"]))
    for name in ("milvus", "faiss"):
        # The first query in auto makes the export (torch, once); the runs below find it.
        headwater("query", QUESTION, "--config", str(configs[name]), "--json")
        exports = list((work / name / "query-encoder").glob("*/model.onnx"))
        if not exports:
            raise SystemExit(f"no ONNX export in {work / name}: is the 'onnx' package installed?")
    return configs


def first_open(work: Path, runtime: str) -> tuple[float, float]:
    """One query on the store exactly as the sync left it (the export copied in)."""
    fresh = work / "milvus-first-open"
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(work / "milvus-after-sync", fresh)
    shutil.copytree(work / "milvus" / "query-encoder", fresh / "query-encoder")
    config = work / "milvus-first-open.toml"
    config.write_text((work / "milvus.toml").read_text().replace(str(work / "milvus"), str(fresh)))
    wall, cpu, _ = headwater(
        "query", QUESTION, "--config", str(config), "--json",
        env={"HEADWATER_EMBEDDING__QUERY_RUNTIME": runtime},
    )  # fmt: skip
    return wall, cpu


def measure(configs: dict[str, Path], work: Path, runs: int) -> list[dict[str, Any]]:
    rows = []
    cases = [
        ("FAISS", "reopened", configs["faiss"]),
        ("Milvus Lite", "reopened", configs["milvus"]),
        ("Milvus Lite", "first open after the sync", None),
    ]
    for backend, store_state, config in cases:
        figures: dict[str, list[tuple[float, float]]] = {"torch": [], "onnx": []}
        loads = [load()]
        for _ in range(runs):
            for runtime in ("torch", "onnx"):
                if config is None:
                    figures[runtime].append(first_open(work, runtime))
                else:
                    wall, cpu, _ = headwater(
                        "query", QUESTION, "--config", str(config), "--json",
                        env={"HEADWATER_EMBEDDING__QUERY_RUNTIME": runtime},
                    )  # fmt: skip
                    figures[runtime].append((wall, cpu))
        loads.append(load())
        row: dict[str, Any] = {"backend": backend, "store": store_state, "load": loads}
        for runtime, pairs in figures.items():
            row[runtime] = {
                "wall_median": round(statistics.median(w for w, _ in pairs), 3),
                "cpu_median": round(statistics.median(c for _, c in pairs), 3),
                "walls": [round(w, 3) for w, _ in pairs],
            }
        row["ratio"] = round(row["onnx"]["wall_median"] / row["torch"]["wall_median"], 3)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def questions() -> list[str]:
    out = []
    for path in QUESTION_SETS:
        data = json.loads(path.read_text())
        items = data["questions"] if isinstance(data, dict) else data
        out += [q["question"] for q in items]
    return out


def same_top5(configs: dict[str, Path]) -> list[dict[str, Any]]:
    """Top 5 ids of every shipped question, dense and hybrid, under both runtimes."""
    import numpy as np

    from headwater.api import KnowledgeBase
    from headwater.config import load_config

    texts = questions()
    rows = []
    for name, path in configs.items():
        ranked: dict[str, list[list[str]]] = {}
        vectors: dict[str, Any] = {}
        for runtime in ("torch", "onnx"):
            os.environ["HEADWATER_EMBEDDING__QUERY_RUNTIME"] = runtime
            with KnowledgeBase(load_config(path)) as kb:
                assert getattr(kb.query_encoder, "runtime", "torch") == runtime
                ranked[runtime] = [
                    [h.id for h in kb.search(q, k=5, mode=mode)]
                    for q in texts
                    for mode in ("dense", "hybrid")
                ]
                vectors[runtime] = np.array([kb.query_encoder.embed_query(q) for q in texts])
            os.environ.pop("HEADWATER_EMBEDDING__QUERY_RUNTIME")
        a, b = vectors["torch"], vectors["onnx"]
        cosines = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        same = sum(x == y for x, y in zip(ranked["torch"], ranked["onnx"], strict=True))
        rows.append(
            {
                "backend": name,
                "questions": len(texts),
                "rankings": len(ranked["torch"]),
                "same_top5": same,
                "min_cosine": float(cosines.min()),
                "mean_cosine": float(cosines.mean()),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def chunk_count(config: Path) -> int:
    from headwater.compose import build_state
    from headwater.config import load_config

    state = build_state(load_config(config))
    try:
        return state.manifest.counts()[1]
    finally:
        state.close()


def write(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "query_cold.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Cold `headwater query`",
        "",
        f"{result['machine']}; {result['chunks']} chunks of ../shared/bench-corpus; "
        f"{result['runs']} runs per cell, median; {result['date']}.",
        "",
        "Reproduce: `python -m benchmarks.query_cold --corpus ../shared/bench-corpus "
        f'--runs {result["runs"]}` (before = `embedding.query_runtime = "torch"`, today\'s '
        'path; after = `"onnx"`, the export in the state folder; runs alternate).',
        "",
        "| backend | store | before: torch wall s | before: CPU s | after: ONNX wall s "
        "| after: CPU s | after / before | load (start, end) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['backend']} | {r['store']} | {r['torch']['wall_median']} | "
            f"{r['torch']['cpu_median']} | {r['onnx']['wall_median']} | {r['onnx']['cpu_median']} "
            f"| {r['ratio']} | {', '.join(r['load'])} |"
        )
    lines += [
        "",
        "CPU s: user + system time of the query process, a stand-in for wall time on an idle "
        "machine when the load average is above the core count.",
        "",
        "Same top 5"
        + (
            f" (measured {result['top5_date']}, same store and export)"
            if "top5_date" in result
            else ""
        )
        + " (every question of tests/fixtures/eval_sample_docs.json, "
        "tests/fixtures/sample_queries.json and benchmarks/eval/bench_questions.json, dense and "
        "hybrid):",
        "",
        "| backend | questions | rankings | identical top 5 | 1 - min cosine | 1 - mean cosine |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["top5"]:
        lines.append(
            f"| {r['backend']} | {r['questions']} | {r['rankings']} | {r['same_top5']} | "
            f"{1 - r['min_cosine']:.1e} | {1 - r['mean_cosine']:.1e} |"
        )
    (out / "query_cold.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "bench-corpus")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hw-query-bench"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--skip-top5", action="store_true")
    parser.add_argument(
        "--top5-from",
        type=Path,
        help="Take the top-5 check from an earlier query_cold.json (timings only measured now).",
    )
    args = parser.parse_args()
    configs = prepare(args.corpus.resolve(), args.work)
    result: dict[str, Any] = {
        "machine": describe_machine()["summary"],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": args.runs,
        "chunks": chunk_count(configs["faiss"]),
        "rows": measure(configs, args.work, args.runs),
        "top5": [] if args.skip_top5 or args.top5_from else same_top5(configs),
    }
    if args.top5_from:
        earlier = json.loads(args.top5_from.read_text())
        result["top5"] = earlier["top5"]
        result["top5_date"] = earlier["date"]
    write(result, args.out)


if __name__ == "__main__":
    main()
