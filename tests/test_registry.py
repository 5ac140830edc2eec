"""Backends by name: built-ins, third-party entry points, and config errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.compose import build_store
from headwater.config import HeadwaterConfig
from headwater.connectors import registry
from headwater.ingest.errors import ConfigError
from headwater.ingest.models import CollectionSpec


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    registry.store_backends.cache_clear()
    yield
    registry.store_backends.cache_clear()


def test_builtin_backends_are_known_without_importing_them() -> None:
    # A fresh interpreter: listing and choosing backends imports no client library.
    code = (
        "import sys; from connectors import registry; "
        "names = sorted(registry.store_backends()); "
        "registry.store_class('faiss'); registry.store_class('weaviate'); "
        "print(names, [m for m in ('faiss', 'weaviate', 'pymilvus') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['faiss', 'milvus', 'weaviate'] []"


def test_third_party_backend_through_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    # An installed distribution, as pip would leave it: metadata plus entry_points.txt.
    dist = tmp_path / "acme_vectors-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-vectors\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[headwater.stores]\nacme = headwater.connectors.stores.faiss:FaissStore\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.store_backends()["acme"] == "headwater.connectors.stores.faiss:FaissStore"

    config = HeadwaterConfig(
        sources=[],
        store={"backend": "acme", "collection": "kb", "acme": {"index": "flat"}},
        state={"dir": str(tmp_path / "state")},
        config_dir=tmp_path,
    )
    store = build_store(config)
    store.ensure_collection(CollectionSpec(4, "m"))
    assert store.collection_spec() == CollectionSpec(4, "m")
    store.close()


def test_unknown_backend_and_bad_option_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"store\.backend: unknown backend 'nosuch'"):
        registry.store_class("nosuch")
    with pytest.raises(ConfigError, match=r"store\.faiss\.index"):
        registry.store_options("faiss", {"index": "lsh"})
