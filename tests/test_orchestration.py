"""Prefect orchestration against a real `prefect server start` on loopback: served
deployments with schedules, file events that trigger targeted runs, the run report
artifact, the lock between overlapping runs, and loading fanned out on a Dask cluster."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.config import load_config
from headwater.ingest.embedding import Embedder
from headwater.ingest.models import VectorRecord
from headwater.ingest.store import VectorStore

from .conftest import SAMPLE_DOCS
from .prefect_server import CLIENT_ENV, artifacts, flow_runs, prefect_server, task_runs

pytestmark = pytest.mark.prefect

SMALL_DOCS = ("it/security-faq.txt", "handbook/welcome.md", "engineering/oncall-runbook.html")


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("prefect")
    with prefect_server(tmp_path_factory.mktemp("prefect-server")) as url:
        yield url


@pytest.fixture
def client_env(prefect_api: str, tmp_path: Path) -> dict[str, str]:
    """Environment for Headwater processes that talk to the test server."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    return {**os.environ, **CLIENT_ENV, "PREFECT_API_URL": prefect_api, "PREFECT_HOME": str(home)}


def project(tmp_path: Path, name: str, extra: str = "", backend: str = "faiss") -> Path:
    """A config over a few small sample documents plus one broken PDF; returns its path."""
    docs = tmp_path / "docs"
    for rel in SMALL_DOCS:
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_DOCS / rel, docs / rel)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n not really a pdf")
    config = tmp_path / "headwater.toml"
    config.write_text(
        f'[[sources]]\nname = "docs"\npath = "docs"\n'
        f'[embedding]\ndevice = "cpu"\n'
        f'[store]\nbackend = "{backend}"\n'
        f'[orchestration]\nname = "{name}"\n{extra}'
    )
    return config


def headwater(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "headwater", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def headwater_logged(*args: str, log: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """A long-running command whose stderr goes to `log`, readable while it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "headwater", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
    )


FLOW_RUN = (
    "import json, sys; from flows.sync import sync_flow; print(json.dumps(sync_flow(sys.argv[1])))"
)


def start_flow_run(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`sync_flow(config)` in its own process; its last stdout line is the report."""
    return subprocess.Popen(
        [sys.executable, "-c", FLOW_RUN, str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def flow_run(config: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run `sync_flow(config)` in its own process: (exit code, stdout, stderr)."""
    proc = start_flow_run(config, env)
    out, errout = proc.communicate(timeout=300)
    return proc.returncode, out, errout


def stop(proc: subprocess.Popen[str]) -> str:
    """Interrupt a long-running command; return what it wrote to stderr."""
    proc.send_signal(2)
    try:
        _, errout = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, errout = proc.communicate()
    return errout


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def store_for(config: Path) -> VectorStore:
    from headwater.compose import build_store

    return build_store(load_config(config))


def contents(config: Path) -> dict[str, tuple[str, str, list[float]]]:
    """Every stored chunk: id -> (source id, text, vector)."""
    store = store_for(config)
    try:
        records: list[VectorRecord] = [r for batch in store.scan(500) for r in batch]
    finally:
        store.close()
    return {r.id: (r.chunk.metadata.source_id, r.chunk.text, list(r.vector)) for r in records}


def cli_sync_json(config: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "headwater", "sync", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return dict(json.loads(done.stdout))


def markdown_counts(markdown: str) -> dict[str, int]:
    """The file and chunk counts from the report artifact's two count tables (a header of
    names, then one row labelled `files` or `chunks`)."""
    counts: dict[str, int] = {}
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| files |") or line.startswith("| chunks |"):
            names = [c.strip() for c in lines[i - 2].strip("|").split("|")][1:]
            values = [c.strip() for c in line.strip("|").split("|")][1:]
            counts.update({n: int(v) for n, v in zip(names, values, strict=True)})
    return counts


def test_served_schedule_produces_runs_with_the_report_artifact(
    tmp_path: Path, client_env: dict[str, str], prefect_api: str
) -> None:
    config = project(tmp_path, "sched", "[orchestration.schedule]\ninterval_s = 5\n")
    served = headwater("serve", "--config", str(config), env=client_env)
    try:
        runs = wait_for(
            lambda: _finished(prefect_api, "sched-all", 2), 240, "two finished runs", every=1
        )
    finally:
        errout = stop(served)
    assert [r["state_type"] for r in runs] == ["COMPLETED", "COMPLETED"], errout[-3000:]

    first = [a for a in artifacts(prefect_api, runs[0]["id"]) if a["type"] == "markdown"]
    second = [a for a in artifacts(prefect_api, runs[1]["id"]) if a["type"] == "markdown"]
    assert len(first) == 1 and len(second) == 1
    first_counts = markdown_counts(first[0]["data"])
    # The same documents synced by the CLI into a fresh state folder give the same counts.
    twin = tmp_path / "twin"
    twin.mkdir()
    shutil.copytree(tmp_path / "docs", twin / "docs")
    (twin / "headwater.toml").write_text(config.read_text())
    expected = cli_sync_json(twin / "headwater.toml")
    assert first_counts == {**expected["files"], **expected["chunks"], "truncated": 0}
    assert first_counts["added"] == 3 and first_counts["failed"] == 1
    assert "| docs:broken.pdf |" in first[0]["data"]
    assert [f["path"] for f in expected["failures"]] == ["docs:broken.pdf"]
    assert markdown_counts(second[0]["data"])["embedded"] == 0

    # The run is made of its tasks: one load per file. Embedding and writing happen in the
    # engine's run, whose store retries on its own (one retry layer, not two).
    tasks = {t["name"] for t in task_runs(prefect_api, runs[0]["id"])}
    assert tasks == {f"load {rel}" for rel in (*SMALL_DOCS, "broken.pdf")}, tasks


def test_dropped_files_become_searchable_through_events_and_trigger(
    tmp_path: Path, client_env: dict[str, str], prefect_api: str, embedder: Embedder
) -> None:
    config = project(tmp_path, "drop", "[orchestration.watch]\ndebounce_ms = 300\nsettle_s = 0.3\n")
    docs = tmp_path / "docs"
    served = headwater("serve", "--config", str(config), env=client_env)
    watch_log = tmp_path / "watch.log"
    watcher = headwater_logged("watch", "--config", str(config), log=watch_log, env=client_env)
    latencies: list[float] = []
    watch_err = serve_err = ""
    try:
        wait_for(
            lambda: _deployment_exists(prefect_api, "drop-files-changed"),
            timeout=120,
            what="the files-changed deployment",
        )
        # Events before the watcher watches are not seen: wait until it says it watches.
        wait_for(lambda: "watching" in watch_log.read_text(), 120, "the watcher to start")
        time.sleep(2)  # the file watcher and the runner's poll loop are up too
        # Four files: the first event and later ones; the latency median over more files
        # is measured by hand (README), not in every CI run.
        for i in range(4):
            sid = f"docs:drops/note-{i}.md"
            path = docs / "drops" / f"note-{i}.md"
            path.parent.mkdir(exist_ok=True)
            written = time.monotonic()
            path.write_text(
                f"# Note {i}\n\nThe courier code for depot {i} is KESTREL-{i * 7919}. "
                "Parcels wait at the loading bay until the driver signs for them.\n"
            )
            wait_for(lambda sid=sid: _stored(config, sid), 180, f"{sid} in the store", 0.2)
            latencies.append(time.monotonic() - written)
        (docs / "drops" / "note-0.md").unlink()
        wait_for(lambda: not _stored(config, "docs:drops/note-0.md"), 180, "note-0 deleted", 0.2)
    except AssertionError as exc:
        stop(watcher)
        watch_err, serve_err = watch_log.read_text(), stop(served)
        raise AssertionError(
            f"{exc}\n--- watch stderr ---\n{watch_err[-3000:]}\n--- serve ---\n{serve_err[-5000:]}"
        ) from None
    finally:
        if watcher.poll() is None:
            stop(watcher)
        watch_err = watch_log.read_text()
        serve_err = serve_err or stop(served)
    median = statistics.median(latencies)
    print(
        f"\nfile write -> searchable over {len(latencies)} files: median {median:.2f}s, "
        f"min {min(latencies):.2f}s, max {max(latencies):.2f}s"
    )
    assert "sent 1 changed file(s): docs:drops/note-1.md" in watch_err, watch_err[-2000:]

    store = store_for(config)
    try:
        vector = embedder.embed_query("courier code for depot 3")
        hits = store.query(vector, k=1)
    finally:
        store.close()
    assert hits[0].metadata.source_id == "docs:drops/note-3.md", serve_err[-2000:]
    runs = [
        r for r in flow_runs(prefect_api, "drop-files-changed") if r["state_type"] == "COMPLETED"
    ]
    assert len(runs) >= 5  # one per dropped file and one for the deletion
    assert all(r["parameters"]["paths"] for r in runs)


def _finished(url: str, deployment: str, n: int) -> list[dict[str, Any]] | None:
    done = [
        r
        for r in flow_runs(url, deployment)
        if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")
    ]
    return done[:n] if len(done) >= n else None


def _deployment_exists(url: str, name: str) -> bool:
    from .prefect_server import api_post

    return bool(
        api_post(
            url,
            "/deployments/filter",
            {"deployments": {"name": {"any_": [name]}}, "limit": 1, "offset": 0},
        )
    )


def _stored(config: Path, source_id: str) -> bool:
    store = store_for(config)
    try:
        return bool(store.source_ids(source_id))
    finally:
        store.close()


def test_overlapping_flow_runs_wait_or_stop_clearly(
    tmp_path: Path, client_env: dict[str, str]
) -> None:
    config = project(tmp_path, "overlap", backend="milvus")

    def start(**env: str) -> subprocess.Popen[str]:
        return start_flow_run(config, {**client_env, **env})

    from headwater.compose import build_state

    first = start()
    probe = build_state(load_config(config))
    wait_for(probe.sync_running, 120, "the first run to take the lock", 0.1)
    impatient = start(HEADWATER_ORCHESTRATION__LOCK_WAIT_S="0")
    patient = start()
    outputs = [p.communicate(timeout=300) for p in (first, impatient, patient)]
    codes = [p.returncode for p in (first, impatient, patient)]
    assert codes[0] == 0 and codes[2] == 0, outputs
    assert codes[1] != 0
    assert "another sync is running" in outputs[1][1]
    first_report = json.loads(outputs[0][0].splitlines()[-1])
    patient_report = json.loads(outputs[2][0].splitlines()[-1])
    assert first_report["files"]["added"] == 3
    # The waiting run started after the first finished: nothing left to embed.
    assert patient_report["chunks"]["embedded"] == 0
    assert patient_report["files"]["unchanged"] == 3

    stored = contents(config)
    assert len(stored) == first_report["chunks"]["written"]
    assert probe.manifest.counts()[1] == len(stored)
    probe.close()


def test_dask_cluster_loads_files_and_gives_the_same_store(
    tmp_path: Path, client_env: dict[str, str]
) -> None:
    distributed = pytest.importorskip("distributed")
    local = project(tmp_path / "local", "local")
    on_dask = project(tmp_path / "dask", "dask")

    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with on_dask.open("a") as f:
            f.write(f'[cluster]\naddress = "{cluster.scheduler_address}"\n')
        code, out, errout = flow_run(on_dask, client_env)
        assert code == 0, errout[-3000:]
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        loads = client.run(
            lambda dask_worker: sum(getattr(p, "loads", 0) for p in dask_worker.plugins.values())
        )
    # Every file (3 good, 1 broken) was loaded by a task on the cluster's workers, and the
    # chunks embedded there, by a model each worker loaded at most once.
    assert len(executed) == 2 and sum(executed.values()) >= 5, executed
    assert set(loads.values()) <= {0, 1} and sum(loads.values()) >= 1, loads
    dask_report = json.loads(out.splitlines()[-1])
    local_report = cli_sync_json(local)
    assert dask_report["files"] == local_report["files"]
    assert dask_report["chunks"] == local_report["chunks"]

    a, b = contents(local), contents(on_dask)
    assert a.keys() == b.keys() and len(a) == local_report["chunks"]["written"]
    for cid, (sid, text, vector) in a.items():
        assert b[cid][:2] == (sid, text)
        assert max(abs(x - y) for x, y in zip(vector, b[cid][2], strict=True)) < 1e-5


def test_a_flow_run_reads_the_store_key_from_a_secret_block_and_never_shows_it(
    tmp_path: Path, client_env: dict[str, str], prefect_api: str
) -> None:
    pytest.importorskip("weaviate")
    from .prefect_server import api_post
    from .weaviate_server.server import WeaviateServer

    key = "wv-" + os.urandom(8).hex()
    saved = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from prefect.blocks.system import Secret; "
            "Secret(value=sys.argv[1]).save('headwater-test-weaviate-key', overwrite=True)",
            key,
        ],
        env=client_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert saved.returncode == 0, saved.stderr
    with WeaviateServer(api_keys=[key]) as server:
        config = project(
            tmp_path,
            "secret",
            'secret_blocks = { HEADWATER_TEST_WEAVIATE_KEY = "headwater-test-weaviate-key" }\n'
            f'[store.weaviate]\nurl = "{server.url}"\ngrpc_port = {server.grpc_port}\n'
            'api_key_env = "HEADWATER_TEST_WEAVIATE_KEY"\n',
            backend="weaviate",
        )
        env = {k: v for k, v in client_env.items() if k != "HEADWATER_TEST_WEAVIATE_KEY"}
        code, out, errout = flow_run(config, env)
    # The server refuses every call without the key: the run got it from the block.
    assert code == 0, errout[-3000:]
    report = json.loads(out.splitlines()[-1])
    assert report["files"]["added"] == 3
    logs = api_post(prefect_api, "/logs/filter", {"limit": 200, "offset": 0})
    shown = [out, errout, json.dumps(logs), config.read_text()]
    shown += [
        a["data"] or ""
        for a in api_post(prefect_api, "/artifacts/filter", {"limit": 200, "offset": 0})
    ]
    assert logs and all(key not in text for text in shown)
