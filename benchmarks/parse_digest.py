"""What parsing makes of each file, as a digest, to prove a faster parser loses nothing.

    .venv/bin/python -m benchmarks.parse_digest --corpus ../shared/bench-corpus --out d.json
    .venv/bin/python -m benchmarks.parse_digest --corpus ../shared/bench-corpus --check d.json

A file's digest covers every element's text, category (which decides sections), heading
depth and page, in order, or the reason it failed. ``--check`` compares with a recorded
run and lists the files that differ; the per-file parse seconds are printed too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))


def digest_file(corpus: Path, rel: str) -> tuple[str, float]:
    """The digest of `rel`'s parsed elements (or of its failure) and the seconds it took."""
    from headwater.ingest.config import LoadingConfig
    from headwater.ingest.errors import LoadError
    from headwater.ingest.loading import load_document
    from headwater.ingest.models import SourceFile

    data = (corpus / rel).read_bytes()
    file = SourceFile(
        source="bench", path=rel, uri=str(corpus / rel), size=len(data), fingerprint=""
    )
    start = time.perf_counter()
    try:
        doc = load_document(file, data, LoadingConfig())
        parsed: object = [[e.text, e.category, e.depth, e.page] for e in doc.elements]
    except LoadError as exc:
        parsed = {"failed": exc.reason}
    seconds = time.perf_counter() - start
    blob = json.dumps(parsed, ensure_ascii=False, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest(), seconds


def corpus_files(corpus: Path) -> list[str]:
    return sorted(
        p.relative_to(corpus).as_posix()
        for p in corpus.rglob("*")
        if p.is_file() and p.parent != corpus
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "bench-corpus"))
    parser.add_argument("--out", help="write the digests here")
    parser.add_argument("--check", help="compare with digests recorded here")
    parser.add_argument("files", nargs="*", help="only these files (paths in the corpus)")
    opts = parser.parse_args()
    from headwater.ingest.loading import warm_up

    warm_up()
    corpus = Path(opts.corpus)
    found: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for rel in opts.files or corpus_files(corpus):
        found[rel], seconds[rel] = digest_file(corpus, rel)
    by_type: dict[str, float] = {}
    for rel, s in seconds.items():
        kind = rel.rsplit(".", 1)[-1]
        by_type[kind] = by_type.get(kind, 0.0) + s
    print(json.dumps({k: round(v, 2) for k, v in by_type.items()}), "parse seconds by type")
    if opts.out:
        Path(opts.out).write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    if opts.check:
        recorded = json.loads(Path(opts.check).read_text())
        differ = [rel for rel, d in found.items() if recorded.get(rel) != d]
        print(f"{len(found) - len(differ)} of {len(found)} files parse as recorded")
        for rel in differ:
            print("differs:", rel)
        sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
