"""Errors a user can cause end in one or two lines naming the cause, the fix and the key or
path, with their own exit code: 2 config, 1 failed files, 3 the machine (a model that cannot
be loaded, a read-only state folder, a full disk). A moved state folder is still itself."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from headwater.cli import app
from headwater.compose import build_engine, build_state
from headwater.connectors.stores.faiss import FaissStore
from headwater.ingest.embedding import Embedder
from headwater.ingest.embedding_cache import EmbeddingCache
from headwater.ingest.errors import EXIT_CONFIG, EXIT_ENVIRONMENT, DiskFullError
from headwater.ingest.verify import verify

from .conftest import SAMPLE_DOCS, make_config
from .test_sync import small_docs


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


NARRATION = ("Listing ", "… ")
"""How `sync` starts (what its first seconds go to) and its heartbeats: not the error."""


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(NARRATION)]


def write_config(tmp_path: Path, docs: Path, state: Path, backend: str = "faiss") -> Path:
    path = tmp_path / "headwater.toml"
    path.write_text(
        f'[[sources]]\nname = "docs"\npath = "{docs}"\n[loading]\nworkers = 0\n'
        f'[embedding]\ndevice = "cpu"\n[store]\nbackend = "{backend}"\n'
        f'[state]\ndir = "{state}"\n'
    )
    return path


def synced(tmp_path: Path, embedder: Embedder, backend: str = "faiss") -> tuple[Path, Path]:
    """Three small documents synced into `tmp_path/state`; returns (docs, state folder)."""
    docs = small_docs(tmp_path)
    engine = build_engine(
        make_config(tmp_path, docs, store={"backend": backend}), embedder=embedder
    )
    try:
        assert engine.run().ok
    finally:
        engine.close()
    return docs, tmp_path / "state"


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` read-only for this process: a read-only bind mount as root (whom file modes
    do not stop), file modes otherwise."""
    if os.geteuid() != 0:
        paths = [folder, *folder.rglob("*")]
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p in paths:
                p.chmod(modes[p])
        return
    bind = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount as root here: {bind.stderr!r}")
    try:
        ro = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, check=False
        )
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {ro.stderr!r}")
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


# -- the embedding model ----------------------------------------------------------------


def test_a_model_that_cannot_load_offline_names_the_key_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    shutil.copy(SAMPLE_DOCS / "handbook" / "welcome.md", tmp_path / "docs")
    config = tmp_path / "headwater.toml"
    config.write_text(
        '[[sources]]\nname = "docs"\npath = "docs"\n[loading]\nworkers = 0\n'
        '[embedding]\ndevice = "cpu"\nmodel = "acme/no-such-model"\n'
    )
    # The real command, as a user runs it: no traceback, two lines, its own exit code.
    proc = subprocess.run(
        [sys.executable, "-m", "headwater", "sync", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == EXIT_ENVIRONMENT == 3
    lines = error_lines(proc.stderr)
    assert 1 <= len(lines) <= 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "'acme/no-such-model' (embedding.model)" in lines[0]
    assert "local folder" in proc.stderr and "HF_HUB_OFFLINE" in proc.stderr

    # -v shows the traceback; a path that is no folder fails without asking the hub.
    config.write_text(config.read_text().replace("acme/no-such-model", str(tmp_path / "nope")))
    verbose = cli("-v", "query", "anything", "-c", str(config))
    assert verbose.exit_code == EXIT_ENVIRONMENT
    assert "Traceback" in verbose.stderr and "no such folder" in verbose.stderr


# -- a read-only state folder -----------------------------------------------------------


def test_query_and_status_read_a_read_only_state_others_say_so(
    tmp_path: Path, embedder: Embedder
) -> None:
    docs, state = synced(tmp_path, embedder)
    config = str(write_config(tmp_path, docs, state))
    before = cli("status", "-c", config)
    assert before.exit_code == 0, before.output
    with read_only(state):
        status = cli("status", "-c", config)
        assert status.exit_code == 0, status.stderr
        assert status.stdout.splitlines()[-2:] == before.stdout.splitlines()[-2:]
        query = cli("query", "who do I call when paged at night?", "--json", "-c", config)
        assert query.exit_code == 0, query.stderr
        assert json.loads(query.stdout)[0]["path"] == "engineering/oncall-runbook.html"
        for command in (["verify"], ["sync"], ["verify", "--repair"]):
            out = cli(*command, "-c", config)
            assert out.exit_code == EXIT_ENVIRONMENT, (command, out.output)
            (line,) = error_lines(out.stderr)
            assert f"the state folder {state} is read-only" in line
            assert "state.dir" in line
        assert not list(state.rglob("*.tmp")) and not list(state.rglob("*-wal"))


def test_milvus_lite_in_a_read_only_folder_says_why(tmp_path: Path, embedder: Embedder) -> None:
    docs, state = synced(tmp_path, embedder, backend="milvus")
    config = str(write_config(tmp_path, docs, state, backend="milvus"))
    with read_only(state):
        out = cli("query", "receipts", "-c", config)
    assert out.exit_code == EXIT_ENVIRONMENT
    (line,) = error_lines(out.stderr)
    assert str(state / "milvus.db") in line and "read-only" in line


# -- a full disk ------------------------------------------------------------------------


def test_a_full_disk_is_not_retried_and_loses_nothing(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs, state = synced(tmp_path, embedder)
    config = str(write_config(tmp_path, docs, state))
    before = cli("status", "-c", config).stdout.splitlines()[-2:]
    shutil.copy(SAMPLE_DOCS / "policies" / "expenses.pdf", docs)
    calls = []

    def full(self: FaissStore, records: object) -> int:
        calls.append(1)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(FaissStore, "upsert", full)
    out = cli("sync", "-c", config)
    assert out.exit_code == EXIT_ENVIRONMENT
    (line,) = error_lines(out.stderr)
    assert line == (
        f"error: disk full at {state / 'faiss' / 'headwater'}: free space and run the sync again"
    )
    assert calls == [1]  # tried once: waiting does not free space
    monkeypatch.undo()
    assert cli("status", "-c", config).stdout.splitlines()[-2:] == before
    assert cli("verify", "-c", config).exit_code == 0


def test_the_embedding_cache_reports_a_full_disk(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite", "m")
    cache.put(["kept"], np.ones((1, 4), dtype=np.float32))

    class FullDisk:
        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def executemany(self, *args: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    real, cache._db = cache._db, FullDisk()  # type: ignore[assignment]
    with pytest.raises(DiskFullError, match=r"disk full at .*embeddings\.sqlite: free space"):
        cache.put(["new"], np.ones((1, 4), dtype=np.float32))
    cache._db = real
    assert len(cache) == 1 and cache.get(["kept"], 4)


def _tmpfs(folder: Path, size: str) -> None:
    folder.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr!r}")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny disk needs root")
def test_a_real_full_disk_on_a_fresh_state(tmp_path: Path) -> None:
    docs = small_docs(tmp_path, "handbook/welcome.md")
    disk = tmp_path / "disk"
    _tmpfs(disk, "256k")
    try:
        (disk / "filler").write_bytes(b"\0" * (200 << 10))
        config = str(write_config(tmp_path, docs, disk / "state"))
        out = cli("sync", "-c", config)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert out.exit_code == EXIT_ENVIRONMENT, out.output
    (line,) = error_lines(out.stderr)
    assert line.startswith(f"error: disk full at {disk / 'state'}")
    assert line.endswith(": free space and run the sync again")


def test_config_errors_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "headwater.toml"
    path.write_text('[store.milvus]\nuri = "http://reader:pw@milvus:19530"\n')
    out = cli("status", "-c", str(path))
    assert out.exit_code == EXIT_CONFIG
    assert "store.milvus.uri" in out.stderr and "MILVUS_TOKEN" in out.stderr
    assert "pw@" not in out.stderr


# -- a state folder restored elsewhere --------------------------------------------------


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_a_state_folder_copied_elsewhere_is_the_same_state(
    tmp_path: Path, embedder: Embedder, backend: str
) -> None:
    docs, state = synced(tmp_path, embedder, backend)
    restored = tmp_path / "restored" / "elsewhere"
    shutil.copytree(state, restored)
    shutil.rmtree(state)  # the original is gone: only the copy can answer
    config = make_config(tmp_path, docs, store={"backend": backend}, state={"dir": str(restored)})
    state = build_state(config)
    try:
        report = verify(state)
    finally:
        state.close()
    assert report.ok and report.manifest_chunks == report.store_chunks > 0
    engine = build_engine(config, embedder=embedder)
    try:
        again = engine.run()
    finally:
        engine.close()
    assert again.file_counts()["unchanged"] == 3
    assert again.chunk_counts() == {"embedded": 0, "written": 0, "deleted": 0}
