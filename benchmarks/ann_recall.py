"""Recall and latency of FAISS's indexes on real text vectors, at 100,000 chunks: what
the choice of the embedded default rests on (docs/backends.md, "The embedded default").

    .venv/bin/python -m benchmarks.ann_recall                      # 100,000 chunks
    .venv/bin/python -m benchmarks.ann_recall --chunks 20000 --indexes flat ivf

The chunks are overlapping 500-character windows of ../shared/retrieval-eval's corpora
and the text of ../shared/bench-corpus's HTML pages and PDFs (pdfium's text layer), embedded with the default model (its
`auto` precision); the queries are the retrieval-eval questions. Each index is written
through Headwater's own FAISS store and queried through it, as a sync and a query would.
Recall@10 is the share of the exact top 10 (a flat index's) that the index returns.
Vectors are cached in --cache, so a rerun skips the embedding.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import save_results  # noqa: E402
from headwater.connectors.registry import store_class  # noqa: E402
from headwater.ingest.embedding import Embedder, EmbeddingConfig  # noqa: E402
from headwater.ingest.models import Chunk, ChunkMetadata, CollectionSpec, VectorRecord  # noqa: E402

SHARED = ROOT.parent / "shared"
WINDOW = 500
K = 10


class _Text(HTMLParser):
    """The visible text of an HTML page (no script or style)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def corpus_text() -> list[str]:
    texts = [p.read_text() for p in sorted((SHARED / "retrieval-eval" / "corpora").glob("*.md"))]
    for page in sorted((SHARED / "bench-corpus").rglob("*.html")):
        parser = _Text()
        parser.feed(page.read_text(errors="replace"))
        texts.append(" ".join(parser.parts))
    import pypdfium2

    for path in sorted((SHARED / "bench-corpus").rglob("*.pdf")):
        try:
            pdf = pypdfium2.PdfDocument(path)
        except pypdfium2.PdfiumError:
            continue  # the corpus holds a password-protected file on purpose
        texts.append(" ".join(page.get_textpage().get_text_range() for page in pdf))
        pdf.close()
    return [re.sub(r"\s+", " ", t) for t in texts]


def windows(n: int) -> list[str]:
    """`n` overlapping windows spread evenly over the text (the stride follows from n)."""
    texts = corpus_text()
    total = sum(max(0, len(t) - WINDOW) for t in texts)
    stride = max(1, total // n)
    out = [t[i : i + WINDOW] for t in texts for i in range(0, max(1, len(t) - WINDOW), stride)]
    return out[:n]


def questions() -> list[str]:
    with (SHARED / "retrieval-eval" / "questions.csv").open() as f:
        return [row["question"] for row in csv.DictReader(f)]


def vectors(texts: list[str], cache: Path | None) -> np.ndarray:
    if cache is not None and cache.exists():
        got = np.load(cache)
        if len(got) == len(texts):
            return got
    embedder = Embedder(EmbeddingConfig())
    t0 = time.perf_counter()
    out = embedder.embed(texts)
    print(f"embedded {len(texts)} texts in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if cache is not None:
        np.save(cache, out)
    return out


@dataclass
class Row:
    index: str
    nprobe: int | None
    chunks: int
    write_s: float
    recall_at_10: float
    p50_ms: float
    p95_ms: float


def record(i: int, text: str, vec: np.ndarray) -> VectorRecord:
    meta = ChunkMetadata(
        source_id=f"bench:w{i // 100}",
        source="bench",
        path=f"w{i // 100}",
        file_type="md",
        position=i % 100,
        start=0,
        end=len(text),
        pages=(),
        section="",
        element_types=(),
    )
    return VectorRecord(Chunk(uuid.uuid5(uuid.NAMESPACE_URL, str(i)).hex, text, meta), vec.tolist())


def run(
    index: str,
    nprobes: list[int],
    texts: list[str],
    vecs: np.ndarray,
    qvecs: np.ndarray,
    truth: list[set[str]],
    state: Path,
) -> list[Row]:
    cls = store_class("faiss")
    collection = f"ann_{index}"
    store = cls(
        cls.config_model.model_validate({"index": index}), collection=collection, state_dir=state
    )
    store.ensure_collection(CollectionSpec(vecs.shape[1], "bench"))
    t0 = time.perf_counter()
    for b in range(0, len(texts), 1000):
        store.upsert([record(i, texts[i], vecs[i]) for i in range(b, min(b + 1000, len(texts)))])
    store.flush()
    write = time.perf_counter() - t0
    store.close()
    rows = []
    for nprobe in nprobes if index == "ivf" else [0]:
        options = {"index": index} | ({"nprobe": nprobe} if nprobe else {})
        store = cls(
            cls.config_model.model_validate(options), collection=collection, state_dir=state
        )
        store.query(qvecs[0].tolist(), k=K)  # opens the index
        times, hits = [], 0
        for q, want in zip(qvecs, truth, strict=True):
            t = time.perf_counter()
            got = store.query(q.tolist(), k=K)
            times.append((time.perf_counter() - t) * 1000)
            hits += len(want & {h.id for h in got})
        store.close()
        times.sort()
        rows.append(
            Row(
                index,
                nprobe or None,
                len(texts),
                round(write, 1),
                round(hits / (K * len(truth)), 4),
                round(statistics.median(times), 2),
                round(times[int(0.95 * (len(times) - 1))], 2),
            )
        )
        print(rows[-1], file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--indexes", nargs="+", default=["flat", "ivf", "hnsw"])
    ap.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument(
        "--random",
        action="store_true",
        help="random unit vectors and queries instead: no structure, the worst case for ivf",
    )
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ann_vectors.npy")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    texts = windows(args.chunks)
    if args.random:
        rng = np.random.default_rng(7)
        vecs, qvecs = (rng.standard_normal((n, 384)).astype(np.float32) for n in (len(texts), 231))
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    else:
        vecs = vectors(texts, args.cache)
        qvecs = Embedder(EmbeddingConfig()).embed(questions())
    ids = [uuid.uuid5(uuid.NAMESPACE_URL, str(i)).hex for i in range(len(texts))]
    top = np.argsort(-(qvecs @ vecs.T), axis=1)[:, :K]
    truth = [{ids[j] for j in row} for row in top]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in args.indexes:
            rows += run(index, args.nprobe, texts, vecs, qvecs, truth, Path(tmp))
    command = "python -m benchmarks.ann_recall " + " ".join(sys.argv[1:])
    stem = "ann_recall_random" if args.random else "ann_recall"
    lines = save_results(
        args.out,
        stem,
        rows,
        command.strip(),
        "FAISS indexes on real text vectors: recall@10 and query time",
    )
    import os

    lines += [
        (
            f"{len(texts):,} random unit vectors, {len(qvecs)} random queries"
            if args.random
            else f"{len(texts):,} chunks (500-character windows of real text), {len(qvecs)} real "
            "questions"
        )
        + f", k={K}; exact top 10 from all vectors. Load average at the end: "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}.",
        "",
        "| index | nprobe | write s | recall@10 | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.index} | {r.nprobe or '-'} | {r.write_s} | {r.recall_at_10} | {r.p50_ms} "
        f"| {r.p95_ms} |"
        for r in rows
    ]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
