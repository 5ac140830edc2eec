"""Milvus: Milvus Lite (a file, the embedded default) or a Milvus server by URI.

A server's searches also run natively async, through pymilvus' `AsyncMilvusClient` (one per
event loop); Milvus Lite has no async client, so its async reads take the interface's
worker-thread default.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from headwater.ingest.aio import PerLoop
from headwater.ingest.errors import (
    HostError,
    MissingExtraError,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
    redact,
)
from headwater.ingest.logs import adopt
from headwater.ingest.models import (
    Chunk,
    ChunkMetadata,
    CollectionSpec,
    QueryFilter,
    QueryHit,
    VectorRecord,
)
from headwater.ingest.readonly import cannot_write
from headwater.ingest.store import LexicalSearchUnsupportedError, VectorStore

if TYPE_CHECKING:
    from pymilvus import AsyncMilvusClient, MilvusClient

log = logging.getLogger(__name__)

_BATCH = 1000
_SOURCES_PER_QUERY = 256
"""Document ids in one `source_id in [...]` filter."""
_QUERY_CAP = 16384
"""The most rows one Milvus query returns (offset + limit)."""
_MAX_TEXT_BYTES = 65535
_MODEL_PROPERTY = "headwater.model"
"""Collection property recording the embedding model (kept by Lite and by servers)."""
_OUTPUT = ["id", "text", "source_id", "path", "file_type", "page", "meta"]
_WITH_VECTOR = [*_OUTPUT, "vector"]
_SPARSE = "sparse"
"""The BM25 function's output field: the full-text index of `text`."""
BM25_MIN_VERSION = (2, 5)
"""The first Milvus (server and Lite) with BM25 full-text search."""


def version_tuple(version: str) -> tuple[int, ...]:
    """(2, 3, 5) for "v2.3.5", "2.3.5-dev" or "milvus_lite-2.3.5"; () when none is found."""
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    return tuple(int(g) for g in found.groups() if g is not None) if found else ()


def has_bm25(version: str) -> bool:
    """Whether a Milvus of this version runs BM25 functions (unknown versions: assume not)."""
    parsed = version_tuple(version)
    return bool(parsed) and parsed[:2] >= BM25_MIN_VERSION


class MilvusConfig(BaseModel):
    """The ``[store.milvus]`` table."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(
        "",
        description="A Milvus server URI (http://host:19530) or a .db file for Milvus Lite. "
        "Empty: milvus.db in the state folder.",
    )
    token_env: str = Field(
        "MILVUS_TOKEN",
        description="Name of the environment variable holding the server token "
        "('user:password' or an API key). The token itself never goes in the config.",
    )
    db_name: str = Field("", description="Database on a Milvus server; empty for the default.")
    index: Literal["AUTOINDEX", "FLAT", "IVF_FLAT", "HNSW"] = Field(
        "AUTOINDEX", description="Vector index type used when the collection is created."
    )
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for each server call.")


def _quote(value: str) -> str:
    """A string literal for a Milvus filter expression."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def glob_to_like(pattern: str) -> str:
    """Translate a shell glob (`*`, `?`) to a Milvus LIKE pattern."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _glob_prefix(pattern: str) -> str:
    """The literal text before the first wildcard."""
    return re.split(r"[*?]", pattern, maxsplit=1)[0]


def filter_expression(filters: QueryFilter | None, *, prefix_only: bool = False) -> str:
    """A Milvus boolean expression for `filters`.

    With `prefix_only`, a glob becomes a prefix match on its literal start (Milvus 2.3
    servers support no other LIKE); the caller must then check `filters.matches` itself.
    """
    if filters is None:
        return ""
    parts = []
    if filters.source_glob:
        glob = filters.source_glob
        field = filters.glob_field
        filters.glob_regex()  # rejects what neither LIKE nor the client-side check supports
        if not prefix_only:
            parts.append(f"{field} like {_quote(glob_to_like(glob))}")
        else:
            if prefix := _glob_prefix(glob):
                parts.append(f"{field} like {_quote(glob_to_like(prefix) + '%')}")
    if filters.source_ids:
        parts.append(f"source_id in [{', '.join(_quote(s) for s in filters.source_ids)}]")
    if filters.file_types:
        parts.append(f"file_type in [{', '.join(_quote(t) for t in filters.file_types)}]")
    if filters.pages:
        parts.append(f"page in [{', '.join(str(int(p)) for p in filters.pages)}]")
    if (bounds := filters.page_bounds()) is not None:
        parts.append(f"page >= {int(bounds[0])}")  # -1 (no page) fails it
        if bounds[1] is not None:
            parts.append(f"page <= {int(bounds[1])}")
    return " and ".join(f"({p})" for p in parts)


def _row(record: VectorRecord) -> dict[str, Any]:
    c, m = record.chunk, record.chunk.metadata
    if len(c.text.encode("utf-8")) > _MAX_TEXT_BYTES:
        raise StoreError(
            f"{m.source_id}: chunk {m.position} is over {_MAX_TEXT_BYTES} bytes, the most Milvus "
            "stores in a text field; lower the source's chunking.chunk_size"
        )
    return {
        "id": c.id,
        "vector": [float(x) for x in record.vector],
        "text": c.text,
        "source_id": m.source_id,
        "path": m.path,
        "file_type": m.file_type,
        "page": m.page if m.page is not None else -1,
        "meta": {
            "source": m.source,
            "position": m.position,
            "start": m.start,
            "end": m.end,
            "pages": list(m.pages),
            "section": m.section,
            "element_types": list(m.element_types),
        },
    }


def _metadata(row: dict[str, Any]) -> ChunkMetadata:
    meta = row["meta"] if isinstance(row["meta"], dict) else json.loads(row["meta"])
    return ChunkMetadata(
        source_id=row["source_id"],
        source=meta["source"],
        path=row["path"],
        file_type=row["file_type"],
        position=meta["position"],
        start=meta["start"],
        end=meta["end"],
        pages=tuple(meta.get("pages") or ()),
        section=meta.get("section"),
        element_types=tuple(meta.get("element_types") or ()),
    )


_lite_users: dict[str, int] = {}
"""Open stores per Milvus Lite file in this process."""


def _lite_locked(uri: str) -> bool:
    """Whether another process holds Milvus Lite's lock on the file at `uri`."""
    import fcntl

    lock = Path(uri) / "LOCK"  # milvus_lite.db.LOCK_FILENAME
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _release_lite(uri: str) -> None:
    """Stop this process's Milvus Lite server for `uri` once no store uses it.

    Lite serves each file from an in-process server that holds the file's lock until the
    process exits; releasing it lets another process (a query while no sync runs, a
    migration) open the file after `close()`.
    """
    _lite_users[uri] = _lite_users.get(uri, 1) - 1
    if _lite_users[uri] > 0:
        return
    del _lite_users[uri]
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # an older Lite that runs as a subprocess and needs no release
        return
    server_manager_instance.release_server(uri)


def _wait_for_lite_index(uri: str, collection: str, db_name: str) -> None:
    """Block until Milvus Lite has compacted and indexed what `flush` sealed.

    Lite builds the index of a flushed segment on a background thread and answers
    searches of a segment without one by brute force, hundreds of milliseconds a query
    at 10,000 rows; no client call waits for that thread, so this asks the in-process
    engine itself (milvus-lite 3.x). Another Lite, without that engine, is not waited for:
    its searches are then slow until its own build ends, never wrong.
    """
    try:
        from milvus_lite.server_manager import server_manager_instance

        _, db, _ = server_manager_instance._servers[os.path.abspath(uri)]
        names = {"database_name": db_name} if db_name else {}
        db.get_collection(collection, **names)._wait_for_bg()
    except (ImportError, AttributeError, KeyError, TypeError, ValueError) as exc:
        log.debug("not waiting for Milvus Lite's index build at %s: %r", redact(uri), exc)


def _record(row: dict[str, Any]) -> VectorRecord:
    chunk = Chunk(id=row["id"], text=row["text"], metadata=_metadata(row))
    return VectorRecord(chunk, [float(x) for x in row["vector"]])


def _hits(result: Any, lexical: bool) -> list[QueryHit]:
    """A search's hits, best first."""
    hits = []
    for hit in result[0]:
        row = {"id": hit["id"], **hit["entity"]}
        score = float(hit["distance"])
        # Milvus Lite reports BM25 relevance negated (best first, most negative); a
        # server reports it positive. Both list the best match first.
        hits.append(
            QueryHit(row["id"], abs(score) if lexical else score, row["text"], _metadata(row))
        )
    return hits


def _search_args(data: Any, limit: int, expr: str, field: str) -> dict[str, Any]:
    """A search's arguments; `data` is a vector, or a text for the BM25 field."""
    lexical = field == _SPARSE
    return {
        "data": [data if lexical else [float(x) for x in data]],
        "anns_field": field,
        "limit": limit,
        "filter": expr,
        "output_fields": _OUTPUT[1:],
        "search_params": {"metric_type": "BM25" if lexical else "IP"},
        # Strong makes every search wait for the server's next time tick (about 200 ms
        # on 2.3); Session still sees every write made through this process (pymilvus
        # keeps the write timestamps per server and collection, for the sync and the
        # async client), and a separate query process sees writes within a tick.
        "consistency_level": "Session",
    }


def _widen(found: list[QueryHit], kept: list[QueryHit], k: int, limit: int) -> int | None:
    """The next limit for a search whose glob is checked here; None: `kept` is the answer."""
    if len(kept) >= k or len(found) < limit or limit >= _QUERY_CAP:
        return None
    return min(limit * 4, _QUERY_CAP)


def _infix_glob(filters: QueryFilter | None) -> bool:
    """Whether the filter's glob is more than a prefix (`dir/*`), which every LIKE runs."""
    if filters is None or not filters.source_glob:
        return False
    glob = filters.source_glob
    return glob != _glob_prefix(glob) + "*"


def _has_words(text: str) -> bool:
    # No words: the analyzer would make an empty query vector.
    return re.search(r"[^\W_]", text) is not None


_LIKE_PROBE = 'path like "%x"'
"""A suffix LIKE: Milvus 2.3 rejects it ("unsupported pattern")."""


def _like_unsupported(exc: Exception) -> bool:
    return "unsupported pattern" in str(exc)


async def _close_async(client: AsyncMilvusClient) -> None:
    await client.close()


def _batches(items: Sequence[Any], size: int = _BATCH) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class MilvusStore(VectorStore):
    """One Milvus collection: string primary key, one float vector, metadata fields."""

    name: ClassVar[str] = "milvus"
    config_model: ClassVar[type[BaseModel]] = MilvusConfig
    config: MilvusConfig

    def __init__(self, config: BaseModel, *, collection: str, state_dir: Path) -> None:
        super().__init__(config, collection=collection, state_dir=state_dir)
        self._client: MilvusClient | None = None
        self._exists: bool | None = None
        self._like_is_prefix_only: bool | None = None
        self._spec: CollectionSpec | None = None
        self._lexical: bool | None = None
        """Whether the collection has the BM25 field; None until described."""
        self._version: str | None = None
        self._opening = threading.Lock()
        self._async = PerLoop(self._open_async, _close_async)
        """A server's async clients, one per event loop (none made until an async read)."""

    @property
    def uri(self) -> str:
        uri = self.config.uri or str(self.state_dir / "milvus.db")
        if self.is_lite(uri) and not Path(uri).is_absolute():
            uri = str(self.state_dir / uri)
        return uri

    @staticmethod
    def is_lite(uri: str) -> bool:
        return "://" not in uri

    @property
    def location(self) -> str:
        # Credentials embedded in a URI (http://user:pass@host) must never reach logs.
        return redact(self.uri)

    @property
    def client(self) -> MilvusClient:
        if self._client is None:
            # Async reads run on worker threads here (Milvus Lite): two may open at once,
            # and a second Lite server for one file would find it locked.
            with self._opening:
                return self._open()
        return self._client

    def _open(self) -> MilvusClient:
        if self._client is None:
            try:
                from pymilvus import MilvusClient
            except ImportError:
                raise MissingExtraError("The Milvus store", "milvus") from None
            # pymilvus prints its retries on stderr through a handler of its own; our errors
            # say what failed, and the application's logging decides where its records go.
            adopt("pymilvus")
            uri = self.uri
            if self.is_lite(uri):
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                self._client = MilvusClient(**self._client_args())
            except Exception as exc:
                if self.is_lite(uri) and cannot_write(Path(uri)):
                    raise HostError(
                        f"{self.location} is in a read-only folder, and Milvus Lite writes "
                        "(its lock file) even to read: make it writable or copy the state "
                        "folder to a writable disk; a FAISS store (`headwater migrate`) can "
                        "be searched read-only"
                    ) from None
                if self.is_lite(uri) and _lite_locked(uri):
                    raise StoreBusyError(
                        f"{self.location} is open in another process: Milvus Lite lets one "
                        "process at a time open its file"
                    ) from None
                raise StoreUnavailableError(
                    f"cannot open Milvus at {self.location}: {redact(str(exc))}"
                ) from None
            if self.is_lite(uri):
                _lite_users[uri] = _lite_users.get(uri, 0) + 1
        return self._client

    def _client_args(self) -> dict[str, Any]:
        uri = self.uri
        kwargs: dict[str, Any] = {"uri": uri, "timeout": self.config.timeout}
        if not self.is_lite(uri):
            token = os.environ.get(self.config.token_env, "")
            if token:
                kwargs["token"] = token
            if self.config.db_name:
                kwargs["db_name"] = self.config.db_name
        return kwargs

    def _native_async(self) -> bool:
        """Whether async reads use `AsyncMilvusClient`: a server, not Milvus Lite."""
        return not self.is_lite(self.uri)

    async def _open_async(self) -> AsyncMilvusClient:
        try:
            from pymilvus import AsyncMilvusClient
        except ImportError:
            raise MissingExtraError("The Milvus store", "milvus") from None

        adopt("pymilvus")
        # dedicated: pymilvus would otherwise share one connection among a loop's clients,
        # and keep it after this store closes.
        client = AsyncMilvusClient(**self._client_args(), dedicated=True)
        try:
            version = str(await client.get_server_version())  # connects
        except Exception as exc:
            await _close_async(client)
            raise StoreUnavailableError(
                f"cannot open Milvus at {self.location}: {redact(str(exc))}"
            ) from None
        self._version = self._version or version
        return client

    async def _aready(self) -> AsyncMilvusClient | None:
        """This event loop's client when the collection exists (loaded for search)."""
        client = await self._async.get()
        if not self._exists:
            exists = bool(await client.has_collection(self.collection))
            if exists:
                await client.load_collection(self.collection)
            self._exists = exists
        return client if self._exists else None

    # -- collection ----------------------------------------------------------------

    def _ready(self) -> bool:
        """Whether the collection exists (and is loaded for search)."""
        if not self._exists:
            self._exists = self.client.has_collection(self.collection)
            if self._exists:
                self.client.load_collection(self.collection)
        return bool(self._exists)

    def collection_spec(self) -> CollectionSpec | None:
        if not self._ready():
            return None
        if self._spec is None:
            self._described(self.client.describe_collection(self.collection))
        return self._spec

    async def acollection_spec(self) -> CollectionSpec | None:
        if not self._native_async():
            return await super().acollection_spec()
        client = await self._aready()
        if client is None:
            return None
        if self._spec is None:
            self._described(await client.describe_collection(self.collection))
        return self._spec

    def _described(self, info: dict[str, Any]) -> None:
        """Keep what `describe_collection` says: the spec and whether it has BM25."""
        dims = [int(f["params"]["dim"]) for f in info["fields"] if f["name"] == "vector"]
        if not dims:
            raise StoreError(f"collection {self.collection!r} has no 'vector' field")
        props = info.get("properties") or {}
        self._lexical = any(f["name"] == _SPARSE for f in info["fields"])
        self._spec = CollectionSpec(dims[0], str(props.get(_MODEL_PROPERTY, "")))

    def server_version(self) -> str:
        """The server's version ("v2.3.5"), or Milvus Lite's ("milvus_lite-3.2.2")."""
        if self._version is None:
            self._version = str(self.client.get_server_version())
        return self._version

    def create_collection(self, spec: CollectionSpec) -> None:
        from pymilvus import DataType, MilvusClient

        lexical = has_bm25(self.server_version())
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=spec.dimension)
        schema.add_field(
            "text", DataType.VARCHAR, max_length=_MAX_TEXT_BYTES, **self._analyzed(lexical)
        )
        schema.add_field("source_id", DataType.VARCHAR, max_length=4096)
        schema.add_field("path", DataType.VARCHAR, max_length=4096)
        schema.add_field("file_type", DataType.VARCHAR, max_length=64)
        schema.add_field("page", DataType.INT64)
        schema.add_field("meta", DataType.JSON)
        index = self.client.prepare_index_params()
        index.add_index("vector", index_type=self.config.index, metric_type="IP")
        if lexical:
            from pymilvus import Function, FunctionType

            # The engine computes each row's BM25 terms from `text` on every insert and
            # upsert, so the full-text index follows the rows with no extra write.
            schema.add_field(_SPARSE, DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function(
                    name="text_bm25",
                    function_type=FunctionType.BM25,
                    input_field_names=["text"],
                    output_field_names=[_SPARSE],
                )
            )
            index.add_index(_SPARSE, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self.client.create_collection(
            self.collection,
            schema=schema,
            consistency_level="Strong",
            properties={_MODEL_PROPERTY: spec.model},
        )
        # sync=False: waiting for the build asks for a server timestamp, which Milvus Lite
        # does not implement (it logs a traceback). Loading waits for the index anyway.
        self.client.create_index(self.collection, index, sync=False)
        self.client.load_collection(self.collection)
        self._exists = True
        self._spec = spec
        self._lexical = lexical

    @staticmethod
    def _analyzed(lexical: bool) -> dict[str, Any]:
        return {"enable_analyzer": True, "enable_match": True} if lexical else {}

    # -- writes --------------------------------------------------------------------

    def upsert(self, records: Sequence[VectorRecord]) -> int:
        if not records:
            return 0
        self.check_vectors(records)
        for batch in _batches(records):
            self.client.upsert(self.collection, [_row(r) for r in batch])
        return len(records)

    def delete_ids(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        if not ids or not self._ready():
            return 0
        for batch in _batches(ids):
            self.client.delete(self.collection, ids=list(batch))
        return len(ids)

    def delete_source(self, source_id: str) -> int:
        if not self._ready():
            return 0
        # Deleting by primary keys behaves the same on Lite and server; count what goes.
        ids = self.source_ids(source_id)
        return self.delete_ids(ids)

    # -- reads ---------------------------------------------------------------------

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids or not self._ready():
            return set()
        found: set[str] = set()
        for batch in _batches(ids):
            rows = self.client.get(self.collection, ids=list(batch), output_fields=["id"])
            found.update(r["id"] for r in rows)
        return found

    def _iterate(self, expr: str, fields: list[str]) -> Iterable[dict[str, Any]]:
        rows = self.client.query(
            self.collection, filter=expr, output_fields=fields, limit=_QUERY_CAP
        )
        if len(rows) < _QUERY_CAP:
            # One call covers nearly every document; the iterator costs more round trips
            # and logs warnings on Milvus Lite.
            yield from rows
            return
        it = self.client.query_iterator(
            self.collection, filter=expr, output_fields=fields, batch_size=_BATCH
        )
        try:
            while batch := it.next():
                yield from batch
        finally:
            it.close()

    def source_ids(self, source_id: str) -> set[str]:
        if not self._ready():
            return set()
        return {r["id"] for r in self._iterate(f"source_id == {_quote(source_id)}", ["id"])}

    def ids_by_source(self, source_ids: Iterable[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {sid: set() for sid in source_ids}
        if not found or not self._ready():
            return found
        # One filtered query per batch of documents: on Milvus Lite each query scans the
        # collection, so a query per document would make a sync quadratic in its size.
        for batch in _batches(list(found), _SOURCES_PER_QUERY):
            expr = f"source_id in [{', '.join(_quote(s) for s in batch)}]"
            for row in self._iterate(expr, ["id", "source_id"]):
                found[row["source_id"]].add(row["id"])
        return found

    def flush(self) -> None:
        if not self._exists or not self.is_lite(self.uri):
            # A server seals and indexes on its own, and asks clients not to flush often.
            return
        self.client.flush(self.collection)
        _wait_for_lite_index(self.uri, self.collection, self.config.db_name)

    def fetch(self, ids: Iterable[str]) -> list[VectorRecord]:
        ids = list(ids)
        if not ids or not self._ready():
            return []
        out: list[VectorRecord] = []
        for batch in _batches(ids):
            rows = self.client.get(self.collection, ids=list(batch), output_fields=_WITH_VECTOR)
            out.extend(map(_record, rows))
        return out

    async def afetch(self, ids: Iterable[str]) -> list[VectorRecord]:
        if not self._native_async():
            return await super().afetch(ids)
        ids = list(ids)
        client = await self._aready() if ids else None
        if client is None:
            return []
        out: list[VectorRecord] = []
        for batch in _batches(ids):
            rows = await client.get(self.collection, ids=list(batch), output_fields=_WITH_VECTOR)
            out.extend(map(_record, rows))
        return out

    def scan(self, batch_size: int = _BATCH) -> Iterator[list[VectorRecord]]:
        if not self._ready():
            return
        # Ids first, then rows by id: query order is not stable across pages on a server.
        ids = sorted(r["id"] for r in self._iterate('id != ""', ["id"]))
        for batch in _batches(ids, batch_size):
            yield self.fetch(batch)

    def _needs_client_glob(self, filters: QueryFilter | None) -> bool:
        """Whether this server cannot run the glob as LIKE, so we filter rows ourselves."""
        return _infix_glob(filters) and self._prefix_like_only()

    async def _aneeds_client_glob(
        self, client: AsyncMilvusClient, filters: QueryFilter | None
    ) -> bool:
        return _infix_glob(filters) and await self._aprefix_like_only(client)

    def _search(self, data: Any, limit: int, expr: str, *, field: str = "vector") -> list[QueryHit]:
        """`data` is a vector, or a text for the BM25 field."""
        result = self.client.search(self.collection, **_search_args(data, limit, expr, field))
        return _hits(result, field == _SPARSE)

    async def _asearch(
        self, client: AsyncMilvusClient, data: Any, limit: int, expr: str, field: str
    ) -> list[QueryHit]:
        result = await client.search(self.collection, **_search_args(data, limit, expr, field))
        return _hits(result, field == _SPARSE)

    def query(
        self, vector: Sequence[float], k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        if not self._ready():
            return []
        return self._filtered_search(vector, k, filters, "vector")

    async def aquery(
        self, vector: Sequence[float], k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        if not self._native_async():
            return await super().aquery(vector, k, filters)
        client = await self._aready()
        if client is None:
            return []
        return await self._afiltered_search(client, vector, k, filters, "vector")

    def lexical_query(
        self, text: str, k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        if not self._ready() or k <= 0:
            return []
        self.collection_spec()  # describes the collection, setting _lexical
        if not self._lexical:
            raise self._no_lexical(self.server_version())
        if not _has_words(text):
            return []
        return self._filtered_search(text, k, filters, _SPARSE)

    async def alexical_query(
        self, text: str, k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        if not self._native_async():
            return await super().alexical_query(text, k, filters)
        client = await self._aready()
        if client is None or k <= 0:
            return []
        await self.acollection_spec()
        if not self._lexical:
            raise self._no_lexical(self._version or str(await client.get_server_version()))
        if not _has_words(text):
            return []
        return await self._afiltered_search(client, text, k, filters, _SPARSE)

    def _no_lexical(self, version: str) -> LexicalSearchUnsupportedError:
        if not has_bm25(version):
            return LexicalSearchUnsupportedError(
                f"Milvus at {self.location} is version {version}, which has no BM25 full-text "
                f"search (Milvus {'.'.join(map(str, BM25_MIN_VERSION))} or later has): lexical "
                "and hybrid search are not available there; use mode 'dense'"
            )
        return LexicalSearchUnsupportedError(
            f"collection {self.collection!r} at {self.location} was made without a full-text "
            "index (by Headwater 0.2 or earlier, or on an older Milvus): copy it into a new one "
            "with `headwater migrate --to <config naming another store.collection>` (no "
            "re-embedding), or delete it and sync again; dense search works as it is"
        )

    def _filtered_search(
        self, data: Any, k: int, filters: QueryFilter | None, field: str
    ) -> list[QueryHit]:
        if not self._needs_client_glob(filters):
            return self._search(data, k, filter_expression(filters, prefix_only=False), field=field)
        assert filters is not None and filters.source_glob
        expr = filter_expression(filters, prefix_only=True)
        limit: int | None = max(8 * k, 64)
        while limit is not None:
            found = self._search(data, limit, expr, field=field)
            kept = [h for h in found if filters.matches(h.metadata)]
            limit = _widen(found, kept, k, limit)
        return kept[:k]

    async def _afiltered_search(
        self,
        client: AsyncMilvusClient,
        data: Any,
        k: int,
        filters: QueryFilter | None,
        field: str,
    ) -> list[QueryHit]:
        if not await self._aneeds_client_glob(client, filters):
            expr = filter_expression(filters, prefix_only=False)
            return await self._asearch(client, data, k, expr, field)
        assert filters is not None and filters.source_glob
        expr = filter_expression(filters, prefix_only=True)
        limit: int | None = max(8 * k, 64)
        while limit is not None:
            found = await self._asearch(client, data, limit, expr, field)
            kept = [h for h in found if filters.matches(h.metadata)]
            limit = _widen(found, kept, k, limit)
        return kept[:k]

    def count(self, filters: QueryFilter | None = None) -> int:
        if not self._ready():
            return 0
        if self._needs_client_glob(filters):
            assert filters is not None and filters.source_glob
            expr = filter_expression(filters, prefix_only=True)
            regex = filters.glob_regex()
            assert regex is not None
            rows = self._iterate(expr or 'id != ""', ["id", filters.glob_field])
            return sum(regex.fullmatch(r[filters.glob_field]) is not None for r in rows)
        rows = self.client.query(
            self.collection, filter=filter_expression(filters), output_fields=["count(*)"]
        )
        return int(rows[0]["count(*)"])

    def _prefix_like_only(self) -> bool:
        """Whether the server lacks suffix/infix LIKE (Milvus 2.3 does); asked once."""
        if self._like_is_prefix_only is None:
            try:
                self.client.query(
                    self.collection, filter=_LIKE_PROBE, limit=1, output_fields=["id"]
                )
                self._like_is_prefix_only = False
            except Exception as exc:
                if not _like_unsupported(exc):
                    raise
                self._like_is_prefix_only = True
        return self._like_is_prefix_only

    async def _aprefix_like_only(self, client: AsyncMilvusClient) -> bool:
        if self._like_is_prefix_only is None:
            try:
                await client.query(
                    self.collection, filter=_LIKE_PROBE, limit=1, output_fields=["id"]
                )
                self._like_is_prefix_only = False
            except Exception as exc:
                if not _like_unsupported(exc):
                    raise
                self._like_is_prefix_only = True
        return self._like_is_prefix_only

    async def aclose(self) -> None:
        await self._async.aclose()
        if self._native_async():
            self.close()  # the sync client's channel closes without waiting
        else:
            await super().aclose()

    def close(self) -> None:
        self._async.close()
        self._exists = None
        self._spec = None
        self._lexical = None
        self._version = None
        if self._client is not None:
            self._client.close()
            self._client = None
            uri = self.uri
            if self.is_lite(uri):
                _release_lite(uri)
