"""One registry mapping config names to backend classes, imported only when used.

Third-party packages add a store backend with an entry point in the group
``headwater.stores``: ``mystore = "my_package.module:MyStore"``.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from ingest.errors import ConfigError
from ingest.source import is_url

if TYPE_CHECKING:
    from ingest.config import HeadwaterConfig, SourceConfig
    from ingest.source import Source
    from ingest.store import VectorStore

ENTRY_POINT_GROUP = "headwater.stores"

_BUILTIN_STORES = {
    "milvus": "connectors.stores.milvus:MilvusStore",
    "faiss": "connectors.stores.faiss:FaissStore",
    "weaviate": "connectors.stores.weaviate:WeaviateStore",
}


@cache
def store_backends() -> dict[str, str]:
    """Backend name -> "module:Class" for built-in and installed third-party stores."""
    found = dict(_BUILTIN_STORES)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def _import(target: str) -> type:
    module, _, attr = target.partition(":")
    cls: type = getattr(importlib.import_module(module), attr)
    return cls


def store_class(backend: str) -> type[VectorStore]:
    backends = store_backends()
    if backend not in backends:
        raise ConfigError(
            f"store.backend: unknown backend {backend!r}; known: {', '.join(sorted(backends))}"
        )
    return _import(backends[backend])


def store_options(backend: str, table: dict[str, object]) -> BaseModel:
    """A backend's ``[store.<backend>]`` table, validated; errors name the key."""
    cls = store_class(backend)
    try:
        return cls.config_model.model_validate(table)
    except ValidationError as exc:
        problems = "; ".join(
            f"store.{backend}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(problems) from None


def create_store(config: HeadwaterConfig, backend: str | None = None) -> VectorStore:
    """The configured store, not yet connected."""
    name = backend or config.store.backend
    options = store_options(name, config.store.backend_options(name))
    return store_class(name)(
        options, collection=config.store.collection, state_dir=config.state_dir
    )


def create_source(config: HeadwaterConfig, source: SourceConfig) -> Source:
    """The source for one configured entry, chosen by the path's URL scheme."""
    if is_url(source.path):
        from connectors.sources.fsspec import FsspecSource

        return FsspecSource(
            name=source.name,
            url=source.path,
            include=source.include,
            exclude=source.exclude,
            storage_options=source.storage_options,
            max_file_mb=config.loading.max_file_mb,
        )
    if source.storage_options:
        raise ConfigError(
            f"sources.{source.name}.storage_options: only URL sources take storage options"
        )
    from connectors.sources.local import LocalSource

    root = Path(source.path.removeprefix("file://"))
    return LocalSource(
        name=source.name,
        root=config.resolve(root),
        include=source.include,
        exclude=source.exclude,
        follow_symlinks=source.follow_symlinks,
    )
