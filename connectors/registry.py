"""One registry mapping config names to backend classes, imported only when used.

Third-party packages add a store backend with an entry point in the group
``headwater.stores``: ``mystore = "my_package.module:MyStore"``.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from headwater.ingest.errors import ConfigError
from headwater.ingest.source import is_url

if TYPE_CHECKING:
    from headwater.ingest.config import SourceConfig, StoreConfig
    from headwater.ingest.source import Source
    from headwater.ingest.store import VectorStore

ENTRY_POINT_GROUP = "headwater.stores"

_BUILTIN_STORES = {
    "milvus": "headwater.connectors.stores.milvus:MilvusStore",
    "faiss": "headwater.connectors.stores.faiss:FaissStore",
    "weaviate": "headwater.connectors.stores.weaviate:WeaviateStore",
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
    from headwater.ingest.config import unknown_key

    model = store_class(backend).config_model
    try:
        return model.model_validate(table)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            key = f"store.{backend}.{'.'.join(str(p) for p in e['loc'])}"
            msg = (
                unknown_key(key, model.model_fields) if e["type"] == "extra_forbidden" else e["msg"]
            )
            problems.append(f"{key}: {msg}")
        raise ConfigError("; ".join(problems)) from None


def check_store_tables(store: StoreConfig) -> None:
    """The chosen backend is known and every ``[store.<backend>]`` table is valid for its
    backend; a ConfigError names the key."""
    known = store_backends()
    if store.backend not in known:
        raise ConfigError(
            f"store.backend: unknown backend {store.backend!r}; known: {', '.join(sorted(known))}"
        )
    tables = store.model_extra or {}
    for name, value in tables.items():
        if name not in known:
            from headwater.ingest.config import StoreConfig, unknown_key

            if not isinstance(value, dict):  # a misspelt key of [store] itself
                keys = [k for k in StoreConfig.model_fields if k != "retry"]
                raise ConfigError(f"store.{name}: {unknown_key(f'store.{name}', keys)}")
            hint = unknown_key(f"store.{name}", [*known, "retry"]).removeprefix("unknown key")
            raise ConfigError(f"store.{name}: not a known backend table{hint}")
        if not isinstance(value, dict):
            raise ConfigError(f"store.{name}: must be a table")
    for name in sorted({store.backend, *tables}):
        store_options(name, store.backend_options(name))


def coerced_store_values(data: dict[str, Any]) -> list[str]:
    """Values in the file's ``[store.<backend>]`` tables that pass only by coercion
    (``timeout = "30"``), one line each; environment overrides are not checked here."""
    from headwater.ingest.config import strict_type_problem

    store = data.get("store")
    tables = store if isinstance(store, dict) else {}
    out = []
    for name, table in tables.items():
        if name not in store_backends() or not isinstance(table, dict):
            continue
        try:
            store_class(name).config_model.model_validate(table, strict=True)
        except ValidationError as exc:
            for e in exc.errors():
                problem = strict_type_problem(e)
                if problem is not None:
                    out.append(f"store.{name}.{'.'.join(map(str, e['loc']))}: {problem}")
    return out


def create_store(store: StoreConfig, state_dir: Path, backend: str | None = None) -> VectorStore:
    """The store the ``[store]`` section names (or `backend`), not yet connected."""
    name = backend or store.backend
    options = store_options(name, store.backend_options(name))
    return store_class(name)(options, collection=store.collection, state_dir=state_dir)


def create_source(source: SourceConfig, *, config_dir: Path, max_file_mb: float) -> Source:
    """The source for one ``[[sources]]`` entry, chosen by the path's URL scheme."""
    if is_url(source.path):
        from headwater.connectors.sources.fsspec import FsspecSource

        return FsspecSource(
            name=source.name,
            url=source.path,
            include=source.include,
            exclude=source.exclude,
            storage_options=source.storage_options,
            max_file_mb=max_file_mb,
        )
    if source.storage_options:
        raise ConfigError(
            f"sources.{source.name}.storage_options: only URL sources take storage options"
        )
    from headwater.connectors.sources.local import LocalSource

    root = Path(source.path.removeprefix("file://")).expanduser()
    return LocalSource(
        name=source.name,
        root=root if root.is_absolute() else config_dir / root,
        include=source.include,
        exclude=source.exclude,
        follow_symlinks=source.follow_symlinks,
    )
