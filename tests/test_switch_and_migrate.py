"""The same knowledge base on every backend: switch by config alone, migrate without
embedding. Milvus Lite and FAISS are real engines; Weaviate is the in-process
wire-protocol server (or a real one when WEAVIATE_URL is set)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from headwater.compose import build_engine, build_state
from headwater.config import load_config
from headwater.ingest.embedding import Embedder
from headwater.ingest.engine import SyncEngine
from headwater.ingest.errors import StoreError
from headwater.ingest.migrate import migrate

from .conftest import ROOT, SAMPLE_DOCS, WeaviateEndpoint

pytestmark = pytest.mark.slow

BACKENDS = ("milvus", "faiss", "weaviate")


def write_config(
    folder: Path, backend: str, weaviate: WeaviateEndpoint, collection: str = "kb"
) -> Path:
    """One config naming every backend's options; only `store.backend` picks one."""
    path = folder / f"{backend}.toml"
    path.write_text(
        f"""
[[sources]]
name = "docs"
path = "{folder / "docs"}"

[state]
dir = "{folder / "state"}"

[embedding]
device = "cpu"

[store]
backend = "{backend}"
collection = "{collection}"

[store.faiss]
index = "hnsw"

[store.weaviate]
url = "{weaviate.url}"
{f"grpc_port = {weaviate.grpc_port}" if weaviate.grpc_port else ""}
"""
    )
    return path


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, weaviate_endpoint: WeaviateEndpoint) -> Path:
    folder = tmp_path_factory.mktemp("kb")
    shutil.copytree(SAMPLE_DOCS, folder / "docs")
    write_config(folder, "milvus", weaviate_endpoint)
    return folder


def top_documents(engine: SyncEngine, questions: list[dict[str, Any]]) -> list[str]:
    return [
        engine.state.store.query(engine.embedder.embed_query(q["question"]), k=1)[0].metadata.path
        for q in questions
    ]


def test_one_environment_variable_switches_the_backend(
    kb: Path,
    embedder: Embedder,
    sample_queries: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_file = kb / "milvus.toml"
    answers: dict[str, list[str]] = {}
    for backend in BACKENDS:
        monkeypatch.setenv("HEADWATER_STORE__BACKEND", backend)
        config = load_config(config_file)
        assert config.store.backend == backend
        engine = build_engine(config, embedder=embedder)
        try:
            report = engine.run()
            assert report.ok and report.file_counts()["added"] == 11
            chunks = report.chunk_counts()["written"]
            assert engine.state.store.count() == chunks == engine.state.manifest.counts()[1]
            answers[backend] = top_documents(engine, sample_queries)
        finally:
            engine.close()
    expected = [q["expected_source"] for q in sample_queries]
    for backend in BACKENDS:
        assert answers[backend] == expected, backend


@pytest.mark.parametrize("destination", ["faiss", "weaviate"])
def test_migrate_from_milvus_lite_embeds_nothing(
    kb: Path,
    destination: str,
    weaviate_endpoint: WeaviateEndpoint,
    embedder: Embedder,
    tmp_path: Path,
) -> None:
    source_file = kb / "milvus.toml"
    source = load_config(source_file)
    engine = build_engine(source, embedder=embedder)
    try:
        engine.run()
        held = engine.state.store.count()
        before = {r.id: r for batch in engine.state.store.scan() for r in batch}
    finally:
        engine.close()

    # A fresh collection so the test does not see what the switching test wrote.
    target = write_config(
        tmp_path, destination, weaviate_endpoint, collection=f"moved_{destination}"
    )
    shutil.copytree(kb / "docs", tmp_path / "docs")
    out = subprocess.run(
        [
            *(sys.executable, "-m", "headwater", "migrate", "--config", str(source_file)),
            *("--to", str(target), "--batch-size", "25", "--json"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["copied"] == result["destination_count"] == held == len(before)
    assert result["embedded"] == 0 and result["documents"] == 11

    moved = build_engine(load_config(target), embedder=embedder)
    try:
        after = {r.id: r for batch in moved.state.store.scan() for r in batch}
        assert after.keys() == before.keys()
        assert all(after[i].chunk == before[i].chunk for i in before)
        # The manifest now describes the new store: a sync there has nothing to do.
        report = moved.run()
        assert report.file_counts()["unchanged"] == 11
        assert report.chunk_counts() == {"embedded": 0, "written": 0, "deleted": 0}
    finally:
        moved.close()


def test_failed_migration_leaves_the_destination_manifest_alone(
    kb: Path,
    weaviate_endpoint: WeaviateEndpoint,
    embedder: Embedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from headwater.connectors.stores.faiss import FaissStore

    source = load_config(kb / "milvus.toml")
    build_engine(source, embedder=embedder).run()
    target = load_config(write_config(tmp_path, "faiss", weaviate_endpoint, collection="half"))

    calls = {"n": 0}
    real_upsert = FaissStore.upsert

    def failing_upsert(self: FaissStore, records: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise StoreError("disk full (simulated)")
        return real_upsert(self, records)

    monkeypatch.setattr(FaissStore, "upsert", failing_upsert)
    with pytest.raises(StoreError, match="disk full"):
        migrate(build_state(source), build_state(target), batch_size=20)
    dest = build_state(target)
    try:
        assert dest.manifest.counts() == (0, 0)
    finally:
        dest.close()

    monkeypatch.setattr(FaissStore, "upsert", real_upsert)
    report = migrate(build_state(source), build_state(target), batch_size=20)
    assert report.copied == report.destination_count > 20
