"""A sync on a real Dask cluster (`distributed.LocalCluster`, worker processes on
loopback): the same chunks and vectors as a sync on this machine, a worker killed in the
middle of a file, a file that kills every worker, one model per worker, embedding only on
the workers that advertise a GPU, and an unreachable scheduler."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater import KnowledgeBase
from headwater.compose import build_engine, build_store
from headwater.config import HeadwaterConfig
from headwater.ingest.cluster import ClusterConfig
from headwater.ingest.embedding import Embedder, EmbeddingConfig
from headwater.ingest.errors import ConfigError
from headwater.ingest.faults import FILE_ENV
from headwater.ingest.report import SyncReport

from .conftest import SAMPLE_DOCS, make_config

distributed = pytest.importorskip("distributed")

from headwater.connectors.cluster import embed_resources, plugin_name  # noqa: E402

SMALL_DOCS = ("it/security-faq.txt", "handbook/welcome.md", "engineering/oncall-runbook.html")

Contents = dict[str, tuple[str, str, list[float]]]


def small_docs(folder: Path) -> Path:
    for rel in SMALL_DOCS:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_DOCS / rel, folder / rel)
    return folder


def config_for(root: Path, docs: Path, **cluster: Any) -> HeadwaterConfig:
    return make_config(
        root,
        docs,
        store={"backend": "faiss"},
        cluster={"embed_batch": 8, **cluster},
    )


def contents(config: HeadwaterConfig) -> Contents:
    store = build_store(config)
    try:
        records = [r for batch in store.scan(500) for r in batch]
    finally:
        store.close()
    return {r.id: (r.chunk.metadata.source_id, r.chunk.text, list(r.vector)) for r in records}


def assert_same(local: Contents, remote: Contents) -> None:
    assert local and local.keys() == remote.keys()
    for cid, (sid, text, vector) in local.items():
        assert remote[cid][:2] == (sid, text)
        assert max(abs(x - y) for x, y in zip(vector, remote[cid][2], strict=True)) < 1e-5


def worker_counts(client: Any, config: HeadwaterConfig) -> dict[str, dict[str, Any]]:
    """Per worker: its resources, model loads, embedding batches and tasks run."""
    name = plugin_name(config.embedding)

    def counts(dask_worker: Any) -> dict[str, Any]:
        plugin = dask_worker.plugins.get(name)
        return {
            "resources": dict(dask_worker.state.total_resources),
            "loads": plugin.loads if plugin else 0,
            "batches": plugin.batches if plugin else 0,
            "executed": dask_worker.state.executed_count,
        }

    return dict(client.run(counts))


def cluster_sync(
    config: HeadwaterConfig, embedder: Embedder
) -> tuple[SyncReport, dict[str, dict[str, Any]]]:
    """One sync on the config's cluster, and the workers' counts before it closes."""
    engine = build_engine(config, embedder=embedder)
    try:
        report = engine.run()
        counts = worker_counts(engine.executor.cluster.client, config)  # type: ignore[union-attr]
    finally:
        engine.close()
    return report, counts


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_docs(tmp_path_factory.mktemp("cluster-docs"))


@pytest.fixture(scope="module")
def local_run(
    tmp_path_factory: pytest.TempPathFactory, docs_dir: Path, embedder: Embedder
) -> tuple[SyncReport, Contents]:
    """The reference: the same documents synced on this machine."""
    config = make_config(tmp_path_factory.mktemp("local"), docs_dir, store={"backend": "faiss"})
    engine = build_engine(config, embedder=embedder)
    try:
        report = engine.run()
    finally:
        engine.close()
    assert report.ok
    return report, contents(config)


@pytest.fixture(scope="module")
def gpu_cluster() -> Iterator[Any]:
    """Two worker processes; only "gpu" advertises the GPU resource (the device stays CPU)."""
    from distributed import Nanny, Scheduler, SpecCluster

    def worker(**options: Any) -> dict[str, Any]:
        return {
            "cls": Nanny,
            "options": {"nthreads": 1, "host": "127.0.0.1", "memory_limit": 0, **options},
        }

    with SpecCluster(
        workers={"cpu": worker(), "gpu": worker(resources={"GPU": 1})},
        scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": False}},
    ) as cluster:
        cluster.wait_for_workers(2)
        yield cluster


def test_a_cluster_sync_gives_the_local_chunks_and_embeds_only_on_the_gpu_worker(
    tmp_path: Path,
    docs_dir: Path,
    embedder: Embedder,
    gpu_cluster: Any,
    local_run: tuple[SyncReport, Contents],
) -> None:
    config = config_for(tmp_path, docs_dir, address=gpu_cluster.scheduler_address)
    report, counts = cluster_sync(config, embedder)

    local_report, local_contents = local_run
    assert report.to_dict()["files"] == local_report.to_dict()["files"]
    assert report.to_dict()["chunks"] == local_report.to_dict()["chunks"]
    assert_same(local_contents, contents(config))
    by_kind = {("gpu" if w["resources"].get("GPU") else "cpu"): w for w in counts.values()}
    # Files were prepared on both workers; chunks embedded only where the GPU resource is.
    assert by_kind["cpu"]["executed"] > 0 and by_kind["gpu"]["executed"] > 0, counts
    assert by_kind["cpu"]["loads"] == 0 and by_kind["cpu"]["batches"] == 0, counts
    assert by_kind["gpu"]["loads"] == 1 and by_kind["gpu"]["batches"] > 0, counts


def test_each_worker_loads_the_model_once_and_keeps_it_across_syncs(
    tmp_path: Path, embedder: Embedder, gpu_cluster: Any
) -> None:
    docs = small_docs(tmp_path / "docs")
    config = config_for(tmp_path, docs, address=gpu_cluster.scheduler_address)
    seen = []
    with distributed.Client(gpu_cluster) as client:
        # `headwater sync` builds an engine (and a client) per run...
        engine = build_engine(config, embedder=embedder)
        try:
            first = engine.run()
        finally:
            engine.close()
        seen.append(worker_counts(client, config))
        with (docs / "handbook/welcome.md").open("a") as f:
            f.write("\n\nBring a helmet on the first day.\n")
        # ...and so does the API's KnowledgeBase.sync; the workers keep their model.
        with KnowledgeBase(config, embedder=embedder) as kb:
            second = kb.sync()
        seen.append(worker_counts(client, config))
    assert first.ok and second.ok
    assert second.file_counts()["changed"] == 1 and second.chunk_counts()["embedded"] > 0
    gpu = [next(w for w in counts.values() if w["resources"].get("GPU")) for counts in seen]
    assert [w["loads"] for w in gpu] == [1, 1], seen
    assert gpu[1]["batches"] > gpu[0]["batches"], seen
    assert all(w["loads"] == 0 for c in seen for w in c.values() if not w["resources"]), seen


def test_the_driver_holds_a_bounded_number_of_files_from_the_cluster() -> None:
    from headwater.connectors.cluster import DaskCluster, DaskExecutor
    from headwater.ingest.engine import PREFETCH_FILES
    from headwater.ingest.executors import InProcessExecutor, in_flight

    cluster = DaskCluster(ClusterConfig(local=2, files_in_flight=5), EmbeddingConfig())
    assert in_flight(DaskExecutor(cluster), PREFETCH_FILES) == 5  # connects nothing
    assert in_flight(InProcessExecutor(), PREFETCH_FILES) == PREFETCH_FILES


def test_a_worker_killed_mid_file_loses_nothing(
    tmp_path: Path,
    docs_dir: Path,
    embedder: Embedder,
    local_run: tuple[SyncReport, Contents],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "killed-once"
    # The first worker to start on welcome.md kills itself (SIGKILL), once.
    monkeypatch.setenv(FILE_ENV, f"welcome.md@{marker}")
    config = config_for(tmp_path, docs_dir, local=2, max_tries=3)
    report, counts = cluster_sync(config, embedder)

    assert marker.exists()  # a worker did die on it
    local_report, local_contents = local_run
    assert report.ok, report.to_dict()["failures"]
    assert report.to_dict()["chunks"] == local_report.to_dict()["chunks"]
    assert_same(local_contents, contents(config))
    # With no GPU worker both embed; whoever embedded loaded the model once.
    assert {w["loads"] for w in counts.values() if w["batches"]} == {1}, counts


def test_a_file_that_kills_every_worker_fails_after_max_tries_and_the_run_goes_on(
    tmp_path: Path,
    docs_dir: Path,
    embedder: Embedder,
    local_run: tuple[SyncReport, Contents],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(FILE_ENV, "welcome.md")
    # Embedding stays here (it is not what this tests): no model load per restarted worker.
    config = config_for(
        tmp_path, docs_dir, local=2, max_tries=2, embed_on_workers=False, files_in_flight=2
    )
    report, _ = cluster_sync(config, embedder)

    (failed,) = report.failures
    assert failed.path.endswith("welcome.md")
    assert "killed 2 Dask worker(s)" in (failed.reason or "")
    assert report.file_counts()["added"] == len(SMALL_DOCS) - 1
    expected = {k: v for k, v in local_run[1].items() if not v[0].endswith("welcome.md")}
    assert_same(expected, contents(config))


def test_an_unreachable_scheduler_fails_the_run_at_once_naming_the_setting(
    tmp_path: Path, docs_dir: Path, embedder: Embedder
) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    config = config_for(tmp_path, docs_dir, address=address, connect_timeout_s=1)
    engine = build_engine(config, embedder=embedder)
    try:
        with pytest.raises(ConfigError, match=r"cluster\.address: cannot reach .*" + address):
            engine.run()
    finally:
        engine.close()
    assert not engine.state.manifest.entries()

    toml = tmp_path / "headwater.toml"
    toml.write_text(
        f'[[sources]]\nname = "docs"\npath = "{docs_dir}"\n[store]\nbackend = "faiss"\n'
        f'[cluster]\naddress = "{address}"\nconnect_timeout_s = 1\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "headwater", "sync", "--config", str(toml)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "cluster.address" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        ([{}, {}], {}),
        ([{}, {"GPU": 1}], {"GPU": 1}),
        ([{"GPU": 0}], {}),
        ([{"GPU": 2}, {"GPU": 1}], {"GPU": 1}),
        ([{"gpu": 1}], {}),
    ],
)
def test_embedding_asks_for_a_gpu_only_when_a_worker_has_one(
    workers: list[dict[str, float]], expected: dict[str, float]
) -> None:
    assert embed_resources(workers, "GPU") == expected


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ({"address": "tcp://10.0.0.5:8786"}, None),
        ({"local": 2}, None),
        ({"address": "10.0.0.5:8786"}, "scheduler address like"),
        ({"address": "tcp://h:8786", "local": 2}, "not both"),
        ({"local": -1}, "greater than or equal"),
        ({"adress": "tcp://h:1"}, "Extra inputs"),
    ],
)
def test_cluster_table(table: dict[str, Any], error: str | None) -> None:
    if error is None:
        assert ClusterConfig(**table).enabled
    else:
        with pytest.raises(ValueError, match=error):
            ClusterConfig(**table)


def test_orchestration_dask_address_is_a_deprecated_alias_of_cluster_address(
    tmp_path: Path,
) -> None:
    with pytest.warns(FutureWarning, match=r"\[cluster\] address"):
        config = HeadwaterConfig(orchestration={"dask_address": "tcp://h:8786"})
    assert config.cluster.address == "tcp://h:8786"
    with pytest.raises(ValueError, match=r"replaced by cluster\.address"):
        HeadwaterConfig(orchestration={"dask_address": "tcp://h:1"}, cluster={"local": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert HeadwaterConfig().cluster.enabled is False
