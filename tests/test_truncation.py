"""A chunk longer than the model's window is reported, never silently cut."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from headwater.cli import _print_summary
from headwater.ingest.chunking import create_chunker
from headwater.ingest.chunking.config import RecursiveChunking
from headwater.ingest.embedding import content_window, input_window
from headwater.ingest.engine import SyncEngine
from headwater.ingest.loading import load_document

from .conftest import SAMPLE_DOCS
from .test_cli import headwater

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# About 60 words per sentence group, ~2,400 characters in all: well over 256 word pieces.
LONG_PARAGRAPH = " ".join(
    f"Rule {i}: every frame that leaves the brazing bay is checked for alignment on the "
    "surface table, its serial number is stamped under the bottom bracket, and the "
    "checker signs the build sheet before the frame goes to the paint shop."
    for i in range(1, 13)
)


def long_chunk_docs(tmp_path: Path) -> Path:
    root = tmp_path / "long"
    root.mkdir()
    (root / "frame-checks.txt").write_text(f"Frame checks\n\n{LONG_PARAGRAPH}\n")
    (root / "security-faq.txt").write_bytes((SAMPLE_DOCS / "it/security-faq.txt").read_bytes())
    return root


# One chunk per section, however long: the purpose-built way to exceed the window.
CHARS_4000 = {"strategy": "recursive", "unit": "chars", "chunk_size": 4000, "chunk_overlap": 0}


def test_the_window_is_read_from_the_model() -> None:
    assert input_window(MODEL) == 256  # sentence-transformers' max_seq_length, not 512
    assert content_window(MODEL) == 254  # less [CLS] and [SEP]


def test_the_default_strategy_respects_the_window(
    tmp_path: Path, engine_factory: Callable[..., SyncEngine]
) -> None:
    engine = engine_factory(long_chunk_docs(tmp_path))
    report = engine.run()
    assert report.truncated == 0 and report.warnings() == []
    # Asking for more tokens than the model reads gets the model's window instead.
    (source,) = engine.sources
    big = create_chunker(RecursiveChunking(chunk_size=1000, chunk_overlap=0), MODEL)
    for f in source.list_files():
        doc = load_document(f, source.read_bytes(f), engine.preparer.loading)
        counts = engine.embedder.token_counts([c.text for c in big.chunk(doc)])
        assert max(counts) <= engine.embedder.max_tokens


def test_truncated_chunks_are_counted_and_warned(
    tmp_path: Path, engine_factory: Callable[..., SyncEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    root = long_chunk_docs(tmp_path)
    engine = engine_factory(
        root, sources=[{"name": "docs", "path": str(root), "chunking": CHARS_4000}]
    )
    report = engine.run()
    per_file = {f.path: f for f in report.files}
    assert per_file["frame-checks.txt"].truncated == 1
    # The FAQ's sections are long too, at 4,000 characters: the count covers every file.
    assert report.truncated == sum(f.truncated for f in report.files) >= 2
    out = report.to_dict()
    assert out["truncated"] == report.truncated
    (warning,) = out["warnings"]
    assert f"{report.truncated} chunk(s) in 2 file(s)" in warning
    assert "(256 tokens)" in warning and "docs:frame-checks.txt" in warning
    _print_summary(report)
    assert "truncated when embedded" in capsys.readouterr().err
    # Nothing new to embed, nothing to warn about.
    assert engine.run().warnings() == []


def test_sync_json_shows_the_truncation_warning(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "frame-checks.txt").write_text(f"Frame checks\n\n{LONG_PARAGRAPH}\n")
    (tmp_path / "headwater.toml").write_text(
        '[[sources]]\nname = "docs"\npath = "docs"\n'
        '[sources.chunking]\nstrategy = "recursive"\nunit = "chars"\nchunk_size = 4000\n'
        'chunk_overlap = 0\n[embedding]\ndevice = "cpu"\n'
    )
    out = headwater("sync", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["truncated"] == 1
    assert report["per_file"][0]["truncated"] == 1
    assert "longer than the embedding model's input window (256 tokens)" in report["warnings"][0]
