"""Which SQLite FTS5 tokenizer the FAISS store's lexical index should use, measured.

    .venv/bin/python benchmarks/fts_tokenizer_bench.py

Lexical search only (BM25 through FAISS's own `fts_match` query), over the retrieval-eval
corpora (../shared/retrieval-eval) cut into fixed 800-character windows, top 5 over all
corpora: token-level recall of the reference characters, and the share of questions with
any reference character retrieved. Results: benchmarks/results/fts_tokenizer.md.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headwater.connectors.stores.faiss import fts_match  # noqa: E402

DATA = ROOT.parent / "shared" / "retrieval-eval"
TOKENIZERS = ["unicode61 remove_diacritics 2", "porter unicode61 remove_diacritics 2"]
WINDOW = 800
K = 5


def main() -> None:
    data = DATA if DATA.exists() else Path("/work/shared/retrieval-eval")
    corpora = {p.stem: p.read_text() for p in sorted((data / "corpora").glob("*.md"))}
    with open(data / "questions.csv", newline="") as f:
        questions = [r for r in csv.DictReader(f) if r["corpus_id"] in corpora]
    spans = [
        (name, start, text[start : start + WINDOW])
        for name, text in corpora.items()
        for start in range(0, len(text), WINDOW)
    ]
    lines = [
        "# FTS5 tokenizer for the FAISS store's lexical index",
        "",
        f"{time.strftime('%Y-%m-%d')}. Reproduce: `python benchmarks/fts_tokenizer_bench.py`",
        "",
        f"{len(questions)} questions over {len(corpora)} corpora ({', '.join(corpora)}), "
        f"{len(spans)} windows of {WINDOW} characters, lexical (BM25) top {K} over all corpora.",
        "",
        "| tokenizer | recall (reference chars) | questions with a hit | ms per query |",
        "|---|---|---|---|",
    ]
    for tokenizer in TOKENIZERS:
        db = sqlite3.connect(":memory:")
        db.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, tokenize='{tokenizer}')")
        db.executemany("INSERT INTO t (rowid, text) VALUES (?, ?)", enumerate(s[2] for s in spans))
        covered = total = hit_questions = 0
        t0 = time.perf_counter()
        for q in questions:
            rows = db.execute(
                "SELECT rowid FROM t WHERE t MATCH ? ORDER BY bm25(t) LIMIT ?",
                (fts_match(q["question"]), K),
            ).fetchall()
            got = [(spans[r][0], spans[r][1], spans[r][1] + len(spans[r][2])) for (r,) in rows]
            any_hit = False
            for ref in json.loads(q["references"]):
                a, b = ref["start_index"], ref["end_index"]
                total += b - a
                chars = set()
                for name, s, e in got:
                    if name == q["corpus_id"]:
                        chars.update(range(max(a, s), min(b, e)))
                covered += len(chars)
                any_hit = any_hit or bool(chars)
            hit_questions += any_hit
        ms = (time.perf_counter() - t0) * 1000 / len(questions)
        lines.append(
            f"| `{tokenizer}` | {100 * covered / total:.1f} | "
            f"{100 * hit_questions / len(questions):.1f} | {ms:.2f} |"
        )
    out = ROOT / "benchmarks" / "results" / "fts_tokenizer.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
