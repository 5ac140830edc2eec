"""No-change re-syncs of two checkouts, alternating, on the states `benchmarks.scale` left.

    git -C . archive main | tar -x -C /tmp/main-copy
    python -m benchmarks.scale --docs 10000 100000 --backends faiss --seed
    python -m benchmarks.scale_resync --code main=/tmp/main-copy --code branch=. --rounds 3

Each run is `headwater sync` (the CLI) in a fresh process with that checkout first on
PYTHONPATH and as its working folder; peak RSS and CPU time are
`benchmarks.scale.measured`'s. Alternating the checkouts on one state and one machine
makes their figures comparable under a shared machine's changing load. Prints one JSON
line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from benchmarks.scale import measured


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--code", action="append", required=True, help="NAME=checkout folder")
    parser.add_argument("--docs", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument("--backend", default="faiss", choices=["faiss", "milvus"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/headwater-scale"))
    args = parser.parse_args()
    codes = dict(c.split("=", 1) for c in args.code)
    for n in args.docs:
        config = args.workdir / f"state-small-{n}-{args.backend}.toml"
        for r in range(args.rounds):
            for name, root in codes.items():
                env = {
                    **os.environ,
                    "PYTHONPATH": str(Path(root).resolve()),
                    "HF_HUB_OFFLINE": "1",
                    "DO_NOT_TRACK": "true",
                    "COLUMNS": "400",
                }
                cmd = [sys.executable, "-m", "headwater", "sync", "--config", str(config)]
                # In the checkout: `python -m` puts the working folder first on sys.path.
                step = measured(f"{name} {n}", cmd, env, cwd=Path(root).resolve())
                row = {
                    "code": name,
                    "docs": n,
                    "backend": args.backend,
                    "round": r,
                    "wall_s": step.wall_seconds,
                    "cpu_s": step.cpu_seconds,
                    "peak_rss_mb": step.peak_rss_mb,
                    "load": step.load_before,
                    "files": step.summary.get("files"),
                }
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
