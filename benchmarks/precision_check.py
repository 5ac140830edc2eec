"""The embedding precision quality check: bf16 (and int8) vectors against fp32's.

    .venv/bin/python -m benchmarks.precision_check --corpus ../shared/bench-corpus
    .venv/bin/python -m benchmarks.precision_check --chunks 300 --no-eval     # quick look

1. Chunks of the bench corpus (every --every'th file, default chunking) are encoded by the
   pipeline's Embedder in fp32 and in each other precision, one model, the same batches;
   cosine similarity to the fp32 vectors (mean, min) and chunks per second are recorded.
   int8 (torch dynamic quantization of the Linear layers) is measured to show why it is
   not offered.
2. `headwater eval` runs on the shipped question sets (sample_docs, and the bench corpus
   subset) once per precision, each with an empty state folder so no vector is reused,
   and recall at k=5 is compared with fp32's.

`headwater.ingest.precision.quality_check` judges the figures; the result goes to
benchmarks/results/precision.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

QUESTION_SETS = {
    "sample_docs": ("headwater.toml", "tests/fixtures/eval_sample_docs.json"),
    "bench_corpus": ("benchmarks/eval/bench.toml", "benchmarks/eval/bench_questions.json"),
}


def bench_chunks(corpus: Path, every: int, limit: int) -> list[str]:
    from headwater.ingest.chunking import create_chunker
    from headwater.ingest.chunking.config import RecursiveChunking
    from headwater.ingest.config import LoadingConfig
    from headwater.ingest.embedding import DEFAULT_MODEL
    from headwater.ingest.errors import LoadError
    from headwater.ingest.loading import load_document
    from headwater.ingest.models import SourceFile

    chunker = create_chunker(RecursiveChunking(), DEFAULT_MODEL)  # the default
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.parent != corpus)
    texts: list[str] = []
    for path in files[::every]:
        data = path.read_bytes()
        rel = path.relative_to(corpus).as_posix()
        f = SourceFile(source="b", path=rel, uri=str(path), size=len(data), fingerprint="")
        try:
            texts += [c.text for c in chunker.chunk(load_document(f, data, LoadingConfig()))]
        except LoadError:
            continue
        if len(texts) >= limit:
            break
    return texts[:limit]


def encode_all(texts: list[str], int8: bool) -> dict[str, Any]:
    import torch

    from headwater.ingest.embedding import Embedder, EmbeddingConfig
    from headwater.ingest.precision import quality_check

    fp32 = Embedder(EmbeddingConfig(device="cpu", precision="fp32"))
    bf16 = Embedder(EmbeddingConfig(device="cpu", precision="bf16"))
    bf16._model = fp32.model  # one copy of the weights: precision is per call
    counts = fp32.token_counts(texts)
    fp32.embed(texts[:32], counts[:32])  # warm-up: oneDNN kernels for both
    bf16.embed(texts[:32], counts[:32])
    found: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "chunks": len(texts)}
    vectors = {}
    for name, embedder in (("fp32", fp32), ("bf16", bf16)):
        t0 = time.perf_counter()
        vectors[name] = embedder.embed(texts, counts)
        seconds = time.perf_counter() - t0
        found[name] = {"seconds": round(seconds, 2), "chunks_per_s": round(len(texts) / seconds, 1)}
    if int8:
        quantized = Embedder(EmbeddingConfig(device="cpu", precision="fp32"))
        quantized._model = torch.ao.quantization.quantize_dynamic(
            fp32.model, {torch.nn.Linear}, dtype=torch.qint8
        )
        quantized.embed(texts[:32], counts[:32])
        t0 = time.perf_counter()
        vectors["int8"] = quantized.embed(texts, counts)
        seconds = time.perf_counter() - t0
        found["int8"] = {
            "seconds": round(seconds, 2),
            "chunks_per_s": round(len(texts) / seconds, 1),
        }
    for name in vectors:
        if name != "fp32":
            check = quality_check(name, vectors["fp32"], vectors[name])
            found[name].update(mean_cosine=check.mean_cosine, min_cosine=check.min_cosine)
    return found


def eval_recall(precision: str, config: str, questions: str) -> dict[str, float]:
    """Recall at k=5 per chunking strategy, from `headwater eval` in a fresh state folder."""
    with tempfile.TemporaryDirectory() as state:
        env = {
            **os.environ,
            "HEADWATER_EMBEDDING__PRECISION": precision,
            "HEADWATER_EMBEDDING__DEVICE": "cpu",
            "HEADWATER_STATE__DIR": state,
            "PYTHONPATH": str(ROOT),
        }
        command = [
            sys.executable, "-m", "headwater", "eval", "--config", config,
            "--questions", questions, "--k", "5", "--strategies", "recursive,token", "--json",
        ]  # fmt: skip
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
    report = json.loads(done.stdout)
    return {s["name"]: s["recall"] for s in report["strategies"]}


def markdown(r: dict[str, Any]) -> str:
    enc = r["encode"]
    lines = [
        "# Embedding precision: quality check",
        "",
        f"Machine: {r['machine']}. {r['date']}; load average {r['load_before']} before, "
        f"{r['load_after']} after (the machine is shared).",
        "",
        f"Command: `{r['command']}`",
        "",
        f"## Vectors: {enc['chunks']} chunks of the bench corpus, torch threads "
        f"{enc['torch_threads']}",
        "",
        "| precision | seconds | chunks/s | x fp32 speed | mean cosine to fp32 | min cosine |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("fp32", "bf16", "int8"):
        if name in enc:
            e = enc[name]
            speed = enc["fp32"]["seconds"] / e["seconds"]
            mean = f"{e['mean_cosine']:.6f}" if "mean_cosine" in e else "1"
            low = f"{e['min_cosine']:.6f}" if "min_cosine" in e else "1"
            lines.append(
                f"| {name} | {e['seconds']} | {e['chunks_per_s']} | {speed:.2f} | {mean} | {low} |"
            )
    if r.get("recall"):
        lines += [
            "",
            "## `headwater eval` recall at k=5 (fresh state folder per run)",
            "",
            "| question set | strategy | fp32 | bf16 | difference (points) |",
            "|---|---|---:|---:|---:|",
        ]
        for qset, per in r["recall"].items():
            for strategy, fp32 in per["fp32"].items():
                low = per["bf16"][strategy]
                lines.append(
                    f"| {qset} | {strategy} | {fp32:.4f} | {low:.4f} | {100 * (low - fp32):+.2f} |"
                )
    lines += ["", f"**Check: {'passed' if r['passed'] else 'FAILED'}** ({r['rule']})", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "bench-corpus"))
    parser.add_argument("--every", type=int, default=3, help="take every n'th corpus file")
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--no-eval", action="store_true", help="vectors only")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 measurement")
    parser.add_argument("--out", default=str(RESULTS))
    opts = parser.parse_args()

    from benchmarks.machine import describe_machine
    from headwater.ingest.precision import (
        MAX_RECALL_DROP,
        MIN_COSINE,
        MIN_MEAN_COSINE,
        QualityCheck,
    )

    result: dict[str, Any] = {
        "command": "python -m benchmarks.precision_check " + " ".join(sys.argv[1:]),
        "machine": describe_machine()["summary"],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    texts = bench_chunks(Path(opts.corpus), opts.every, opts.chunks)
    result["encode"] = encode_all(texts, int8=not opts.no_int8)
    recall: dict[str, dict[str, dict[str, float]]] = {}
    if not opts.no_eval:
        for qset, (config, questions) in QUESTION_SETS.items():
            recall[qset] = {p: eval_recall(p, config, questions) for p in ("fp32", "bf16")}
    result["recall"] = recall
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    pairs = {
        f"{qset}/{s}": (per["fp32"][s], per["bf16"][s])
        for qset, per in recall.items()
        for s in per["fp32"]
    }
    enc = result["encode"]["bf16"]
    check = QualityCheck("bf16", len(texts), enc["mean_cosine"], enc["min_cosine"], pairs)
    passed = check.passed
    result["passed"] = passed
    result["rule"] = (
        f"mean cosine >= {MIN_MEAN_COSINE}, min cosine >= {MIN_COSINE}, recall within "
        f"{100 * MAX_RECALL_DROP:g} point of fp32 on every question set and strategy"
    )
    out = Path(opts.out)
    (out / "precision.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "precision.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
