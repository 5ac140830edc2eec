"""Scale: sync 10,000 and 100,000 documents, and re-sync them with nothing or one file changed.

    .venv/bin/python -m benchmarks.scale --docs 10000 100000 --backends milvus faiss
    .venv/bin/python -m benchmarks.scale --bench-files 10000 --backends faiss

Two corpora, generated under --workdir (default /tmp/headwater-scale, never committed):
- `small`: N small Markdown documents (one paragraph of 60-140 words drawn by Zipf's law
  from a 5,000-word vocabulary, like benchmarks/store_bench.py's chunks), 1,000 per folder;
- `bench`: ../shared/bench-corpus repeated (hard links, one folder per copy) to N files.

Per corpus and backend, each step in a fresh process, its peak memory the largest sampled
RSS of that process and every process under it (the parser pool):
1. cold sync. With --stand-in (the default for `small`), chunks are embedded by a
   stand-in that makes a unit vector from a hash of each text, no model: embedding 100,000
   chunks with MiniLM on 2 shared cores takes most of an hour, and would hide what this
   benchmark is about (the model's own speed is benchmarks/throughput.py's). Everything
   else (listing, planning, parsing, chunking, token counting, writing, indexing, the
   manifest) is the normal path.
2. no-change re-sync: `headwater sync` (the CLI, the normal path, the real model) with
   nothing changed; its wall time includes starting Python and importing Headwater.
3. one-file-changed re-sync: one document gets a new paragraph, then `headwater sync`.
Then the manifest's and the store's size on disk. Results go to
benchmarks/results/scale.json and scale.md, with the load average beside each step.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import save_results  # noqa: E402
from benchmarks.store_bench import DIM, WORDS, vocabulary  # noqa: E402

if TYPE_CHECKING:
    from headwater.ingest.embedding import Embedder, EmbeddingConfig

BENCH_CORPUS = ROOT.parent / "shared" / "bench-corpus"
PER_FOLDER = 1000
RESULTS = ROOT / "benchmarks" / "results"


# -- corpora ---------------------------------------------------------------------------


def small_docs(folder: Path, n: int, seed: int = 11) -> Path:
    """`n` small Markdown documents under `folder/small-<n>` (made once, then reused)."""
    root = folder / f"small-{n}"
    done = folder / f"small-{n}.complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    vocab = np.array(vocabulary())
    rng = np.random.default_rng(seed)
    for i in range(n):
        words = np.minimum(rng.zipf(1.2, size=int(rng.integers(60, 141))), WORDS) - 1
        sub = root / f"part{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0:
            sub.mkdir(parents=True)
        body = " ".join(vocab[words])
        (sub / f"doc{i:06d}.md").write_text(f"# Note {i}\n\n{body.capitalize()}.\n")
    done.touch()
    return root


def repeated_bench(folder: Path, n: int) -> Path:
    """../shared/bench-corpus repeated, by hard links, to `n` files under `folder/bench-<n>`."""
    root = folder / f"bench-{n}"
    done = folder / f"bench-{n}.complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    files = sorted(
        p for p in BENCH_CORPUS.rglob("*") if p.is_file() and p.suffix in (".pdf", ".html")
    )
    for i in range(n):
        copy, which = divmod(i, len(files))
        src = files[which]
        dst = root / f"copy{copy:03d}" / src.relative_to(BENCH_CORPUS)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)
    done.touch()
    return root


def change_one(corpus: Path) -> Path:
    """Give one document new bytes (a hard link is replaced, so its copies stay)."""
    if corpus.name.startswith("small-"):
        path = next((corpus / "part0000").glob("*.md"))
        path.write_text(path.read_text() + f"\nAn added paragraph, {time.time()}.\n")
        return path
    path = next(p for p in sorted(corpus.rglob("*.html")))
    text = path.read_bytes()
    path.unlink()
    path.write_bytes(
        text.replace(b"</body>", f"<p>An added paragraph, {time.time()}.</p></body>".encode())
    )
    return path


# -- one measured process ----------------------------------------------------------------


@dataclass
class Step:
    name: str
    wall_seconds: float
    peak_rss_mb: float
    load_before: str
    load_after: str
    cpu_seconds: float = 0.0
    """User + system CPU time of the process and the children it waited for: what the step
    costs whatever the machine's load (wall time on a shared machine is mostly waiting)."""
    summary: dict[str, object] = field(default_factory=dict)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measured(name: str, cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> Step:
    """Run `cmd` (in `cwd`), sampling the RSS of it and its children every 50 ms."""
    import psutil

    before = load_average()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                peak = max(peak, total)
            except psutil.Error:
                return
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, errors = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{name}: exit {proc.returncode}\n{errors[-3000:]}")
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    step = Step(name, round(wall, 2), round(peak / 2**20), before, load_average(), round(cpu, 2))
    step.summary = summary(out)
    return step


def summary(out: str) -> dict[str, object]:
    """The figures of a sync's printed summary (the CLI's, or the cold worker's JSON)."""
    last = out.strip().splitlines()[-1] if out.strip() else ""
    if last.startswith("{"):
        parsed: dict[str, object] = json.loads(last)
        return parsed
    found: dict[str, object] = {}
    if m := re.search(r"files: (.*)", out):
        found["files"] = m.group(1)
    if m := re.search(r"chunks: (.*)", out):
        found["chunks"] = m.group(1)
    # "time: 1.23s wall; <what stage times are>: list_plan 0.40s, load 0.00s, ..."
    if m := re.search(r"time: ([\d.]+)s wall; [^:]*: (.*)", out):
        found["sync_seconds"] = float(m.group(1))
        found["stages"] = m.group(2)
    return found


# -- the cold worker (its own process) ----------------------------------------------------


def hash_embedder(config: EmbeddingConfig) -> Embedder:
    """An Embedder whose vectors are unit vectors seeded by a hash of each text: no model
    loads. Token counts are the model's own tokenizer's, as the sync's are."""
    from headwater.ingest.embedding import Embedder, load_tokenizer

    class HashEmbedder(Embedder):
        @property
        def dimension(self) -> int:
            return DIM

        @property
        def max_tokens(self) -> int:
            return 256

        def token_counts(self, texts: Sequence[str]) -> list[int]:
            tokenizer = load_tokenizer(self.config.model)
            return [len(i) for i in tokenizer(list(texts), verbose=False)["input_ids"]]

        def embed(
            self, texts: Sequence[str], token_counts: object = None, *, threads: object = None
        ) -> np.ndarray[Any, np.dtype[np.float32]]:
            out = np.empty((len(texts), DIM), dtype=np.float32)
            for i, text in enumerate(texts):
                seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest())
                out[i] = np.random.default_rng(seed).standard_normal(DIM)
            out /= np.linalg.norm(out, axis=1, keepdims=True)
            return out

    return HashEmbedder(config)


def cold_worker(config_path: Path, stand_in: bool) -> None:
    """Sync once, with the stand-in embedder if asked; print one JSON line of figures."""
    from headwater.compose import build_engine
    from headwater.config import load_config

    config = load_config(config_path)
    embedder = hash_embedder(config.embedding) if stand_in else None
    engine = build_engine(config, embedder=embedder)
    try:
        report = engine.run()
    finally:
        engine.close()
    print(
        json.dumps(
            {
                "sync_seconds": round(report.wall_seconds, 2),
                "files": report.file_counts(),
                "chunks": report.chunk_counts(),
                "stages": {k: round(v, 2) for k, v in report.stage_seconds.items()},
            }
        )
    )


def seed_worker(config_path: Path) -> None:
    """Record every listed file as synced, one chunk each, straight into the store and
    the manifest, as a cold sync would leave them but without parsing; print figures."""
    from headwater.compose import build_engine
    from headwater.config import load_config
    from headwater.ingest.diff import meta_hash
    from headwater.ingest.manifest import ManifestEntry
    from headwater.ingest.models import Chunk, ChunkMetadata, VectorRecord

    t0 = time.perf_counter()
    config = load_config(config_path)
    engine = build_engine(config, embedder=hash_embedder(config.embedding))
    try:
        planned = engine.plan().to_load
        state = engine.state
        state.store.ensure_collection(engine.collection_spec)
        for start in range(0, len(planned), 1000):
            docs, records = [], []
            for p in planned[start : start + 1000]:
                f = p.file
                text = f"seeded {f.path}"
                meta = ChunkMetadata(
                    source_id=f.source_id,
                    source=f.source,
                    path=f.path,
                    file_type=f.path.rsplit(".", 1)[-1],
                    position=0,
                    start=0,
                    end=len(text),
                )
                chunk = Chunk(
                    hashlib.blake2b(f.source_id.encode(), digest_size=16).hexdigest(), text, meta
                )
                records.append(VectorRecord(chunk, []))
                entry = ManifestEntry(
                    f.source_id, f.source, f.path, f.fingerprint, "seeded", p.chunker, 1
                )
                docs.append((entry, {chunk.id: meta_hash(chunk)}))
            vectors = engine.embedder.embed([r.chunk.text for r in records])
            state.store.upsert(
                [VectorRecord(r.chunk, v.tolist()) for r, v in zip(records, vectors, strict=True)]
            )
            state.manifest.commit_batch(documents=docs)
        state.store.flush()
    finally:
        engine.close()
    print(json.dumps({"sync_seconds": round(time.perf_counter() - t0, 2), "seeded": len(planned)}))


# -- a whole scenario ---------------------------------------------------------------------


@dataclass
class Scenario:
    corpus: str
    documents: int
    backend: str
    embedder: str
    steps: list[Step]
    manifest_mb: float
    store_mb: float
    embedding_cache_mb: float
    chunks: int


def write_config(state: Path, corpus: Path, backend: str) -> Path:
    path = state.parent / f"{state.name}.toml"
    path.write_text(
        f'[[sources]]\nname = "docs"\npath = "{corpus}"\n\n'
        f'[store]\nbackend = "{backend}"\ncollection = "scale"\n\n'
        f'[state]\ndir = "{state}"\n'
    )
    return path


def size_mb(path: Path) -> float:
    if not path.exists():
        return 0.0
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 1)


def scenario(
    corpus_name: str,
    corpus: Path,
    n: int,
    backend: str,
    stand_in: bool,
    workdir: Path,
    seed: bool = False,
) -> Scenario:
    state = workdir / f"state-{corpus_name}-{n}-{backend}"
    shutil.rmtree(state, ignore_errors=True)
    config = write_config(state, corpus, backend)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "true",
        "UNSTRUCTURED_DISABLE_NOTICE": "1",
        "COLUMNS": "400",  # the CLI's summary on one line each, as summary() reads it
    }
    python = sys.executable
    cold = [python, "-m", "benchmarks.scale", "--cold-worker", str(config)]
    if stand_in:
        cold.append("--stand-in")
    if seed:
        cold.append("--seed")
    cli = [python, "-m", "headwater", "sync", "--config", str(config)]
    label = f"{corpus_name} {n} {backend}"
    steps = [measured("seeded (not a sync)" if seed else "cold sync", cold, env)]
    print(label, asdict(steps[-1]), flush=True)
    steps.append(measured("no-change re-sync", cli, env))
    print(label, asdict(steps[-1]), flush=True)
    change_one(corpus)
    steps.append(measured("one-file-changed re-sync", cli, env))
    print(label, asdict(steps[-1]), flush=True)
    manifest = size_mb(state / "manifest.sqlite") + size_mb(state / "manifest.sqlite-wal")
    cache = size_mb(state / "embeddings.sqlite") + size_mb(state / "embeddings.sqlite-wal")
    chunks = steps[0].summary.get("chunks", {})
    return Scenario(
        corpus=corpus_name,
        documents=n,
        backend=backend,
        embedder="seeded, 1 chunk per doc"
        if seed
        else "stand-in (hash, no model)"
        if stand_in
        else "all-MiniLM-L6-v2, embedding.precision auto",
        steps=steps,
        manifest_mb=round(manifest, 1),
        store_mb=size_mb(state / "milvus.db") + size_mb(state / "faiss"),
        embedding_cache_mb=round(cache, 1),
        chunks=int(chunks.get("written", 0)) if isinstance(chunks, dict) else 0,
    )


def write(results: list[Scenario], out: Path, command: str) -> None:
    lines = save_results(
        out, "scale", list(results), command, "Scale: 10,000 and 100,000 documents"
    )
    lines += [
        "| corpus | docs | chunks | backend | cold embedder | cold s | docs/s | cold peak MB "
        "| no-change s (sync s; CPU s) | no-change peak MB | one-changed s (sync s; CPU s) "
        "| one-changed peak MB "
        "| manifest MB | store MB | embedding cache MB | load avg (first step / last) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cold, same, one = r.steps

        def sync_s(step: Step) -> str:
            inner = step.summary.get("sync_seconds", "-")
            return f"{step.wall_seconds} ({inner}; {step.cpu_seconds})"

        lines.append(
            f"| {r.corpus} | {r.documents} | {r.chunks} | {r.backend} | {r.embedder} "
            f"| {cold.wall_seconds} | {round(r.documents / cold.wall_seconds)} "
            f"| {cold.peak_rss_mb} | {sync_s(same)} | {same.peak_rss_mb} | {sync_s(one)} "
            f"| {one.peak_rss_mb} | {r.manifest_mb} | {r.store_mb} | {r.embedding_cache_mb} "
            f"| {cold.load_before} / {one.load_after} |"
        )
    (out / "scale.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--docs",
        nargs="*",
        type=int,
        help="sizes of the small-document corpus (default 10000 100000, none with --bench-files)",
    )
    parser.add_argument("--bench-files", nargs="*", type=int, default=[])
    parser.add_argument("--backends", nargs="+", default=["milvus"], choices=["milvus", "faiss"])
    parser.add_argument(
        "--model-for-small", action="store_true", help="embed `small` with the model"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/headwater-scale"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cold-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stand-in", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--seed",
        action="store_true",
        help="instead of a cold sync, record every file as synced (one chunk each) straight "
        "into the store and manifest: for re-sync figures at sizes a cold sync cannot reach "
        "in the time at hand",
    )
    args = parser.parse_args()
    if args.cold_worker:
        if args.seed:
            seed_worker(args.cold_worker)
        else:
            cold_worker(args.cold_worker, args.stand_in)
        return
    if args.docs is None:
        args.docs = [] if args.bench_files else [10_000, 100_000]
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for backend in args.backends:
        for n in args.docs:
            corpus = small_docs(args.workdir, n)
            results.append(
                scenario(
                    "small", corpus, n, backend, not args.model_for_small, args.workdir, args.seed
                )
            )
        for n in args.bench_files:
            corpus = repeated_bench(args.workdir, n)
            results.append(scenario("bench", corpus, n, backend, True, args.workdir))
    write(results, args.out, "python -m benchmarks.scale " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
