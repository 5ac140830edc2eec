"""How long `headwater watch --in-process` takes to report a file dropped into a watched
folder: the first file after the watcher starts, and the median of the next ones.

    PYTHONPATH=$PWD python -m benchmarks.watch_latency [--files 10] [--backend milvus]

A temporary folder gets a config and a copy of sample_docs/, which one `headwater sync`
ingests first (as a user would before watching). Then the real CLI watches it, and small
Markdown files (4 lines each) are written one at a time; the time from the write to the
watcher's JSON report of that file is its latency (the report comes after the store and
the manifest hold the file, so it is searchable then). Each report's own wall time and
stages say where the rest went: the settle wait (`orchestration.watch.settle_s`) is
before the run. Writes the figures as JSON with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from benchmarks.machine import describe_machine

ROOT = Path(__file__).resolve().parents[1]

NOTE = """# Note {n}

A short note dropped into the watched folder, number {n}.
Reimbursement of travel costs is asked for within {n} days.
"""


def _lines(stream: IO[str], out: queue.Queue[tuple[float, str]]) -> None:
    for line in stream:
        out.put((time.time(), line))


def _next_report(lines: queue.Queue[tuple[float, str]], timeout: float) -> tuple[float, Any]:
    deadline = time.time() + timeout
    while True:
        at, line = lines.get(timeout=max(0.1, deadline - time.time()))
        if line.startswith("{"):
            return at, json.loads(line)


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def measure(
    files: int, backend: str, settle_s: float | None, gap_s: float, code: Path = ROOT
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="headwater-watch-"))
    try:
        shutil.copytree(ROOT / "sample_docs", folder / "docs")
        settle = f"settle_s = {settle_s}\n" if settle_s is not None else ""
        (folder / "headwater.toml").write_text(
            '[[sources]]\nname = "docs"\npath = "docs"\n'
            f'[store]\nbackend = "{backend}"\n[embedding]\ndevice = "cpu"\n'
            f"[orchestration.watch]\n{settle}"
        )
        env = {**os.environ, "PYTHONPATH": str(code), "PREFECT_API_URL": ""}
        cli = [sys.executable, "-m", "headwater"]
        t0 = time.perf_counter()
        subprocess.run(
            [*cli, "sync", "--json"], cwd=folder, env=env, check=True, capture_output=True
        )
        first_sync = time.perf_counter() - t0

        started = time.time()
        watcher = subprocess.Popen(
            [*cli, "watch", "--in-process", "--json"],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out: queue.Queue[tuple[float, str]] = queue.Queue()
        err: queue.Queue[tuple[float, str]] = queue.Queue()
        assert watcher.stdout is not None and watcher.stderr is not None
        threading.Thread(target=_lines, args=(watcher.stdout, out), daemon=True).start()
        threading.Thread(target=_lines, args=(watcher.stderr, err), daemon=True).start()
        while True:  # the watcher says when it watches
            at, line = err.get(timeout=300)
            if line.startswith("watching"):
                ready = at - started
                break
        time.sleep(gap_s)
        runs = []
        try:
            for n in range(1, files + 2):
                path = folder / "docs" / f"note-{n}.md"
                written = time.time()
                path.write_text(NOTE.format(n=n))
                at, report = _next_report(out, timeout=300)
                added = [f["source_id"] for f in report["per_file"] if f["status"] == "added"]
                assert added == [f"docs:note-{n}.md"], report
                runs.append(
                    {
                        "latency_s": round(at - written, 3),
                        "run_wall_s": report["wall_seconds"],
                        "stage_seconds": report["stage_seconds"],
                    }
                )
                time.sleep(gap_s)
        finally:
            watcher.terminate()
            watcher.wait(timeout=30)
        later = [r["latency_s"] for r in runs[1:]]
        return {
            "backend": backend,
            "settle_s": settle_s,
            "first_sync_s": round(first_sync, 2),
            "watcher_ready_s": round(ready, 2),
            "first_event_s": runs[0]["latency_s"],
            "later_median_s": round(statistics.median(later), 3),
            "later_min_s": min(later),
            "later_max_s": max(later),
            "later_files": len(later),
            "runs": runs,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10, help="files after the first one")
    parser.add_argument("--backend", default="milvus")
    parser.add_argument("--settle-s", type=float, default=None, help="default: the config's")
    parser.add_argument("--gap-s", type=float, default=1.0, help="pause between two files")
    parser.add_argument(
        "--code",
        type=Path,
        action="append",
        help="a checkout whose headwater runs (repeat to compare, in one run); default: this one",
    )
    parser.add_argument("--out", type=Path, default=None, help="append the result (JSON lines)")
    args = parser.parse_args()
    for code in args.code or [ROOT]:
        load_before = _load()
        result = measure(args.files, args.backend, args.settle_s, args.gap_s, code)
        result |= {
            "code": str(code),
            "commit": subprocess.run(
                ["git", "-C", str(code), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
            ).stdout.strip(),
            "load_before": load_before,
            "load_after": _load(),
            "machine": describe_machine()["summary"],
        }
        text = json.dumps(result)
        print(text, flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(text + "\n")


if __name__ == "__main__":
    main()
