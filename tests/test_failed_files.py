"""Files that fail on their content are remembered: not parsed again until the file or the
settings change; read errors and crashes are tried again on every run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from headwater.compose import build_engine
from headwater.connectors.sources.local import LocalSource
from headwater.ingest.embedding import Embedder
from headwater.ingest.models import FileStatus, SourceFile
from headwater.ingest.report import SyncReport

from .conftest import SAMPLE_DOCS, make_config

NOT_AGAIN = "(unchanged since it failed; not parsed again)"


class CountingSource(LocalSource):
    """A local folder that counts reads and can be told to fail them."""

    def __init__(self, root: Path) -> None:
        super().__init__("docs", root)
        self.reads: Counter[str] = Counter()
        self.unreadable: set[str] = set()

    def read_bytes(self, file: SourceFile) -> bytes:
        self.reads[file.path] += 1
        if file.path in self.unreadable:
            raise OSError(5, "Input/output error")
        return super().read_bytes(file)


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "faq.txt").write_text((SAMPLE_DOCS / "it" / "security-faq.txt").read_text())
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n not really a pdf\n%%EOF\n")
    return docs


def _sync(tmp_path: Path, source: CountingSource, embedder: Embedder, **kw: object) -> SyncReport:
    overrides = {"store": {"backend": "faiss"}, **kw}
    config = make_config(tmp_path, source.root, **overrides)  # type: ignore[arg-type]
    engine = build_engine(config, embedder=embedder, sources=[source])
    try:
        return engine.run()
    finally:
        engine.close()


def _failure(report: SyncReport) -> str:
    (failed,) = report.failures
    assert failed.source_id == "docs:broken.pdf"
    return failed.reason or ""


def test_a_content_failure_is_not_parsed_again_until_the_file_changes(
    tmp_path: Path, embedder: Embedder
) -> None:
    source = CountingSource(_docs(tmp_path))
    first = _sync(tmp_path, source, embedder)
    reason = _failure(first)
    assert not reason.endswith(NOT_AGAIN)
    assert source.reads["broken.pdf"] == 1

    again = _sync(tmp_path, source, embedder)
    assert _failure(again) == f"{reason} {NOT_AGAIN}"
    assert not again.ok  # still reported, and `sync` still exits 1
    assert source.reads["broken.pdf"] == 1  # not even read
    assert again.file_counts()["unchanged"] == 1

    # Other loading settings may load it: tried again.
    _sync(tmp_path, source, embedder, loading={"max_file_mb": 50, "workers": 0})
    assert source.reads["broken.pdf"] == 2

    # Fixed: loaded, and no longer remembered as failed.
    (source.root / "broken.pdf").unlink()
    (source.root / "broken.pdf").write_bytes(
        (SAMPLE_DOCS / "policies" / "expenses.pdf").read_bytes()
    )
    fixed = _sync(tmp_path, source, embedder)
    assert fixed.ok
    assert [f.status for f in fixed.files if f.source_id == "docs:broken.pdf"] == [FileStatus.ADDED]


def test_retry_failed_parses_it_again(tmp_path: Path, embedder: Embedder) -> None:
    source = CountingSource(_docs(tmp_path))
    _sync(tmp_path, source, embedder)
    config = make_config(tmp_path, source.root, store={"backend": "faiss"})
    engine = build_engine(config, embedder=embedder, sources=[source])
    try:
        report = engine.run(retry_failed=True)
    finally:
        engine.close()
    assert source.reads["broken.pdf"] == 2
    assert not _failure(report).endswith(NOT_AGAIN)


def test_read_errors_are_tried_again_every_run(tmp_path: Path, embedder: Embedder) -> None:
    source = CountingSource(_docs(tmp_path))
    (source.root / "broken.pdf").unlink()
    source.unreadable.add("faq.txt")
    for expected_reads in (1, 2, 3):
        report = _sync(tmp_path, source, embedder)
        (failed,) = report.failures
        assert failed.reason == "cannot read: Input/output error"
        assert source.reads["faq.txt"] == expected_reads
    source.unreadable.clear()
    assert _sync(tmp_path, source, embedder).ok


def test_a_failed_file_that_is_deleted_is_forgotten(tmp_path: Path, embedder: Embedder) -> None:
    source = CountingSource(_docs(tmp_path))
    _sync(tmp_path, source, embedder)
    (source.root / "broken.pdf").unlink()
    assert _sync(tmp_path, source, embedder).ok
    # Put back as it was: a new file to this sync, so it is parsed (and fails) again.
    (source.root / "broken.pdf").write_bytes(b"%PDF-1.7\n not really a pdf\n%%EOF\n")
    report = _sync(tmp_path, source, embedder)
    assert not _failure(report).endswith(NOT_AGAIN)
    assert source.reads["broken.pdf"] == 2


def test_migrate_carries_the_failure_memory(tmp_path: Path, embedder: Embedder) -> None:
    from headwater.compose import build_state
    from headwater.ingest.migrate import migrate

    source = CountingSource(_docs(tmp_path))
    reason = _failure(_sync(tmp_path, source, embedder))
    assert source.reads["broken.pdf"] == 1

    moved = tmp_path / "moved"
    origin = make_config(tmp_path, source.root, store={"backend": "faiss"})
    target = make_config(moved, source.root, store={"backend": "milvus"})
    assert migrate(build_state(origin), build_state(target)).failures == 1

    # The first sync on the new store neither reads the file nor forgets that it failed.
    report = _sync(moved, source, embedder, store={"backend": "milvus"})
    assert _failure(report) == f"{reason} {NOT_AGAIN}"
    assert source.reads["broken.pdf"] == 1
    assert report.chunk_counts()["embedded"] == 0
