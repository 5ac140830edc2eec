"""Profile parsing per file type on a corpus: cProfile over load_document, file by file.

    .venv/bin/python -m benchmarks.parse_profile --corpus ../shared/bench-corpus --out /tmp/prof

writes /tmp/prof.prof (read it with `python -m pstats`) and /tmp/prof.json (seconds and
characters per file); benchmarks/results/parse_profile.md is the summary that guided the
parsing work.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "bench-corpus"))
    parser.add_argument("--out", required=True, help="path prefix for .prof and .json")
    opts = parser.parse_args()
    from benchmarks.parse_digest import corpus_files
    from headwater.ingest.config import LoadingConfig
    from headwater.ingest.errors import LoadError
    from headwater.ingest.loading import load_document, warm_up
    from headwater.ingest.models import SourceFile

    corpus = Path(opts.corpus)
    warm_up()
    times: dict[str, tuple[float, int]] = {}
    profile = cProfile.Profile()
    for rel in corpus_files(corpus):
        data = (corpus / rel).read_bytes()
        f = SourceFile(source="b", path=rel, uri=str(corpus / rel), size=len(data), fingerprint="")
        start = time.perf_counter()
        profile.enable()
        try:
            chars = sum(len(e.text) for e in load_document(f, data, LoadingConfig()).elements)
        except LoadError:
            chars = -1
        profile.disable()
        times[rel] = (time.perf_counter() - start, chars)
    profile.dump_stats(opts.out + ".prof")
    Path(opts.out + ".json").write_text(json.dumps(times, indent=1))


if __name__ == "__main__":
    main()
