"""`headwater verify`: drift between the manifest and the store is found and repaired."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from headwater.ingest.engine import SyncEngine
from headwater.ingest.models import VectorRecord
from headwater.ingest.verify import SourceDrift, verify

from .conftest import ROOT
from .test_sync import small_docs

Factory = Callable[..., SyncEngine]


def test_drift_is_reported_per_document_and_repaired(
    tmp_path: Path, engine_factory: Factory
) -> None:
    root = small_docs(tmp_path)
    engine = engine_factory(root, store={"backend": "faiss"})
    engine.run()
    assert verify(engine.state).ok

    faq, runbook = "docs:it/security-faq.txt", "docs:engineering/oncall-runbook.html"
    lost = sorted(engine.state.store.source_ids(runbook))[:2]
    engine.state.store.delete_ids(lost)  # as if a write never reached the store
    (orphan,) = engine.state.store.fetch(sorted(engine.state.store.source_ids(faq))[:1])
    ghost = VectorRecord(replace(orphan.chunk, id="e" * 32), orphan.vector)
    engine.state.store.upsert([ghost])  # as if a killed run wrote it and never committed

    report = verify(engine.state)
    assert report.drift == [SourceDrift(runbook, missing=2, extra=0), SourceDrift(faq, 0, 1)]
    assert not report.repaired and engine.state.store.existing_ids(["e" * 32]) == {"e" * 32}

    assert verify(engine.state, repair=True).repaired
    assert engine.state.store.existing_ids(["e" * 32]) == set()
    assert engine.embedding_cache is not None
    engine.embedding_cache.clear()  # else the lost chunks' vectors come back from it
    again = engine.run()
    by_file = {f.source_id: f for f in again.files}
    # Only the document that lost chunks is loaded again, and only its lost chunks embedded.
    assert by_file[runbook].embedded == 2
    assert again.chunk_counts()["embedded"] == 2
    assert verify(engine.state).ok


def test_cli_exit_code_says_whether_store_and_manifest_agree(
    tmp_path: Path, engine_factory: Factory
) -> None:
    root = small_docs(tmp_path, "it/security-faq.txt")
    engine = engine_factory(root, store={"backend": "faiss"})
    engine.run()
    engine.state.store.delete_ids(
        sorted(engine.state.store.source_ids("docs:it/security-faq.txt"))[:1]
    )
    engine.close()
    config = tmp_path / "headwater.toml"
    config.write_text(
        f'[[sources]]\nname = "docs"\npath = "{root}"\n[state]\ndir = "{tmp_path / "state"}"\n'
        '[store]\nbackend = "faiss"\n'
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "headwater", "verify", "--config", str(config), *args]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)

    found = run("--json")
    assert found.returncode == 1, found.stderr
    assert json.loads(found.stdout)["drift"] == [
        {"source_id": "docs:it/security-faq.txt", "missing": 1, "extra": 0}
    ]
    assert run("--repair").returncode == 0
