"""The worker pool: a file that hangs or eats memory fails alone; the others go through."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from headwater.compose import build_sources
from headwater.config import HeadwaterConfig
from headwater.ingest.engine import _outcome
from headwater.ingest.executors import BoundedMap, InProcessExecutor
from headwater.ingest.models import FileResult, FileStatus, SourceFile
from headwater.ingest.planning import PlannedFile
from headwater.ingest.prepare import Prepared, PreparedFile, Preparer
from headwater.ingest.workers import ParserPool, executor_for


class Misbehaving(Preparer):
    """Hangs on hang.txt, allocates without bound on hog.txt, dies on crash.txt."""

    def prepare_one(self, item: PlannedFile) -> Prepared:
        name = Path(item.file.path).name
        if name == "hang.txt":
            time.sleep(3600)
        if name == "hog.txt":
            hoard = []
            while True:
                hoard.append(bytearray(50 * 2**20))
                time.sleep(0.01)
        if name == "crash.txt":
            os._exit(3)
        return super().prepare_one(item)


def planned(root: Path, name: str, text: str = "Some words in a file.") -> PlannedFile:
    path = root / name
    path.write_text(text)
    st = path.stat()
    return PlannedFile(
        SourceFile("docs", name, str(path), st.st_size, f"{st.st_size}:{st.st_mtime_ns}"), "k"
    )


def preparer(tmp_path: Path) -> Misbehaving:
    cfg = config(tmp_path)
    return Misbehaving(
        build_sources(cfg), {"docs": cfg.sources[0].chunking}, cfg.loading, cfg.embedding.model
    )


def config(tmp_path: Path) -> HeadwaterConfig:
    return HeadwaterConfig(
        sources=[{"name": "docs", "path": str(tmp_path)}],
        state={"dir": str(tmp_path / "state")},
        config_dir=tmp_path,
    )


@pytest.mark.slow
def test_hung_oom_and_crashing_parsers_fail_only_their_file(tmp_path: Path) -> None:
    items = [
        planned(tmp_path, n)
        for n in ("a.txt", "hang.txt", "b.txt", "hog.txt", "crash.txt", "c.txt", "d.txt")
    ]
    pool = ParserPool(workers=2, timeout_s=8, max_memory_mb=1500)
    t0 = time.monotonic()
    try:
        results = {
            item.file.path: _outcome(item, future)
            for item, future in BoundedMap(pool, preparer(tmp_path).prepare_one, items, 8)
        }
    finally:
        pool.shutdown()
    elapsed = time.monotonic() - t0
    assert sorted(results) == sorted(i.file.path for i in items)
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        assert isinstance(results[name], PreparedFile), results[name]
        assert results[name].chunks
    reasons = {n: r.reason for n, r in results.items() if isinstance(r, FileResult) and r.reason}
    assert reasons == {
        "hang.txt": "parsing took longer than 8 s; raise loading.timeout_s to give big files "
        "more time",
        "hog.txt": "parsing needed more than 1500 MB; raise loading.max_memory_mb to give big "
        "files more memory",
        "crash.txt": "the parser process exited unexpectedly (exit code 3)",
    }
    assert all(r.status is FileStatus.FAILED for n, r in results.items() if n in reasons)
    assert elapsed < 60


def test_executor_follows_the_config(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    pool = executor_for(cfg.loading)
    assert isinstance(pool, ParserPool)
    assert pool.workers == min(2, os.cpu_count() or 1)
    assert pool.timeout_s == cfg.loading.timeout_s
    in_process = executor_for(cfg.loading.model_copy(update={"workers": 0}))
    assert isinstance(in_process, InProcessExecutor)
