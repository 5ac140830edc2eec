"""How long loading takes for a 3 MB plain-text book, through the loader as a sync runs it.

    PYTHONPATH=$PWD python -m benchmarks.text_speed [--mb 3] [--kind txt]

The book is made here (not downloaded): the retrieval-eval corpora in ../shared when
they are there, else sample_docs' text files, repeated to the size asked for. Prints the
seconds, the elements and the characters kept.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path

from headwater.ingest.config import LoadingConfig
from headwater.ingest.loading import load_document
from headwater.ingest.models import SourceFile

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the repository, or beside the worktrees' folder.
CORPORA = (
    next(
        (p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()),
        ROOT.parent / "shared",
    )
    / "retrieval-eval"
    / "corpora"
)


def book(size: int) -> str:
    """Paragraphs of real prose (pubmed abstracts, speeches, chats) repeated to `size`."""
    sources = sorted(CORPORA.glob("*.md")) or [
        ROOT / "sample_docs/it/security-faq.txt",
        ROOT / "sample_docs/handbook/welcome.md",
    ]
    base = "\n\n".join(p.read_text() for p in sources)
    parts, total, n = [], 0, 0
    while total < size:
        n += 1
        part = f"CHAPTER {n}\n\n{base}\n\n"
        parts.append(part)
        total += len(part)
    return "".join(parts)[:size]


def table(text: str, delimiter: str) -> str:
    """The book as a table: one row per line, with its number and length."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(["line", "chars", "text"])
    for i, line in enumerate(text.splitlines()):
        writer.writerow([i, len(line), line])
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=3.0)
    ap.add_argument("--kind", default="txt", help="extension the book is loaded as")
    args = ap.parse_args()
    text = book(int(args.mb * 2**20))
    if args.kind in ("csv", "tsv"):
        text = table(text, "\t" if args.kind == "tsv" else ",")
    data = text.encode()
    name = f"book.{args.kind}"
    f = SourceFile("bench", name, f"/bench/{name}", len(data), "fp")
    started = time.perf_counter()
    doc = load_document(f, data, LoadingConfig(max_file_mb=64))
    seconds = time.perf_counter() - started
    kept = sum(len(e.text) for e in doc.elements)
    print(
        f"{name}: {len(data) / 2**20:.1f} MB loaded in {seconds:.1f} s, "
        f"{len(doc.elements)} elements, {kept:,} characters kept"
    )


if __name__ == "__main__":
    main()
