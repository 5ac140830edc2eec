"""Shared fixtures: the real embedding model (loaded once), configs in temp folders."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.config import EmbeddingConfig, HeadwaterConfig
from ingest.embedding import Embedder
from ingest.sync import SyncEngine

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DOCS = ROOT / "sample_docs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real default model, loaded once per test session."""
    return Embedder(EmbeddingConfig(device="cpu"))


@pytest.fixture(scope="session")
def sample_queries() -> list[dict[str, Any]]:
    return json.loads((FIXTURES / "sample_queries.json").read_text())


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A private copy of sample_docs/ that a test may edit."""
    target = tmp_path / "docs"
    shutil.copytree(SAMPLE_DOCS, target)
    return target


def make_config(tmp_path: Path, docs: Path, **overrides: Any) -> HeadwaterConfig:
    data: dict[str, Any] = {
        "sources": [{"name": "docs", "path": str(docs)}],
        "state": {"dir": str(tmp_path / "state")},
        "embedding": {"device": "cpu"},
        "config_dir": tmp_path,
    }
    data.update(overrides)
    return HeadwaterConfig(**data)


@pytest.fixture
def engine_factory(tmp_path: Path, embedder: Embedder) -> Iterator[Callable[..., SyncEngine]]:
    """Build engines that share the session's model; every engine is closed afterwards."""
    made: list[SyncEngine] = []

    def factory(docs: Path, **overrides: Any) -> SyncEngine:
        engine = SyncEngine(make_config(tmp_path, docs, **overrides), embedder=embedder)
        made.append(engine)
        return engine

    yield factory
    for e in made:
        e.close()
