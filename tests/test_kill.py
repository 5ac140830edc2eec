"""Crash consistency: SIGKILL a sync at every stage, re-run it, and the store holds exactly
the chunks the documents imply, no duplicates, for Milvus Lite and FAISS; its full-text
(lexical) index finds exactly those chunks.

Each kill lands at a fault-injection point (ingest/faults.py): after a file is loaded,
before embedding, right after a store write, between the store write and the manifest
commit, and right after a delete. The documents flip between two versions (one file
edited, one deleted, one added) so every run has changes, additions and deletions to
interrupt. After each kill the next, uninterrupted sync must converge.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, SAMPLE_DOCS

KILLS = [
    "embed:1",  # the very first sync, before anything is stored
    "load:1",
    "load:2",
    "embed:1",
    "upsert:1",
    "commit:1",
    "delete:1",
    "delete:2",
    "upsert:1",
    "commit:1",
    "delete:1",
    "load:2",
]
"""Per backend; every sync after the first flips the documents to the other version."""


class Harness:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.kill_harness"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.ask_line() == {"ready": True}

    def ask_line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.ask_line()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


def write_version(docs: Path, version: int) -> None:
    """Version 1: welcome, security FAQ, runbook. Version 2: the FAQ edited, the runbook
    gone, an announcement added."""
    shutil.rmtree(docs, ignore_errors=True)
    docs.mkdir()
    shutil.copy(SAMPLE_DOCS / "handbook/welcome.md", docs / "welcome.md")
    faq = (SAMPLE_DOCS / "it/security-faq.txt").read_text()
    if version == 1:
        shutil.copy(SAMPLE_DOCS / "engineering/oncall-runbook.html", docs / "runbook.html")
        (docs / "faq.txt").write_text(faq)
    else:
        paragraphs = faq.split("\n\n")
        paragraphs[1] = "Passwords are rotated every ninety days; the vault reminds you."
        (docs / "faq.txt").write_text("\n\n".join(paragraphs) + "\n\nA new closing note.\n")
        shutil.copy(SAMPLE_DOCS / "announcements/office-move.eml", docs / "move.eml")


def config(root: Path, backend: str, docs: Path, state: str) -> str:
    path = root / f"{state}.toml"
    path.write_text(
        f'[[sources]]\nname = "docs"\npath = "{docs}"\n'
        f'[loading]\nworkers = 0\n[embedding]\ndevice = "cpu"\n'
        f'[store]\nbackend = "{backend}"\n[state]\ndir = "{root / state}"\n'
    )
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["milvus", "faiss"])
def test_sigkill_at_every_stage_then_rerun_converges(
    harness: Harness, tmp_path: Path, backend: str
) -> None:
    if backend == "faiss":
        pytest.importorskip("faiss")
    docs = tmp_path / "docs"
    expected = {}
    for version in (1, 2):
        write_version(docs, version)
        clean = config(tmp_path, backend, docs, f"clean{version}")
        assert harness.ask(op="sync", config=clean) == {"exit": 0}
        expected[version] = sorted(harness.ask(op="ids", config=clean)["ids"])
    assert expected[1] and expected[2] and expected[1] != expected[2]

    cfg = config(tmp_path, backend, docs, "state")
    kills: Counter[str] = Counter()
    converged = 0
    version = 1
    write_version(docs, version)
    for n, fault in enumerate(KILLS):
        if n:
            version = 3 - version
            write_version(docs, version)
        assert harness.ask(op="sync", config=cfg, fault=fault) == {"signal": signal.SIGKILL}, (
            f"{fault} was not reached"
        )
        kills[fault.split(":")[0]] += 1
        assert harness.ask(op="sync", config=cfg) == {"exit": 0}
        held = harness.ask(op="ids", config=cfg)
        assert len(held["ids"]) == len(set(held["ids"])) == held["count"], "duplicates"
        assert sorted(held["ids"]) == expected[version], f"after a kill at {fault}"
        assert held["verified"], "manifest and store disagree"
        assert held["lexical_missing"] == [], f"full-text index lost chunks after {fault}"
        assert held["lexical_ghosts"] == [], f"full-text index kept deleted chunks after {fault}"
        converged += 1
    assert sum(kills.values()) == converged == len(KILLS)
    assert set(kills) == {"load", "embed", "upsert", "commit", "delete"}
    print(f"{backend}: {sum(kills.values())} kills ({dict(kills)}), {converged} convergences")
