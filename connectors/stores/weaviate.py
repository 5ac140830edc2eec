"""Weaviate: a self-hosted Weaviate server or a Weaviate Cloud cluster, over REST and gRPC.

Async reads are native: weaviate-client's async client (httpx and gRPC aio), one per
event loop.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from headwater.ingest.aio import PerLoop
from headwater.ingest.errors import HeadwaterError, MissingExtraError, StoreError
from headwater.ingest.models import (
    Chunk,
    ChunkMetadata,
    CollectionSpec,
    Fusion,
    FusionMethod,
    QueryFilter,
    QueryHit,
    VectorRecord,
)
from headwater.ingest.store import VectorStore

if TYPE_CHECKING:
    from weaviate import WeaviateAsyncClient, WeaviateClient
    from weaviate.collections import Collection, CollectionAsync
    from weaviate.collections.classes.config import CollectionConfigSimple
    from weaviate.collections.classes.filters import _Filters
    from weaviate.collections.classes.internal import Object

DEFAULT_URL = "http://localhost:8080"
_CLOUD_SUFFIXES = (".weaviate.cloud", ".weaviate.network")
_VECTOR = "default"
"""The collection's one named vector."""
_TEXT = "text"
"""The property keyword (BM25) search reads; the others are ids and paths."""
_SPEC_KEY = "headwater"
"""Key of the CollectionSpec in the collection description (JSON)."""
_MAX_RESULTS = 10_000
"""Weaviate's default QUERY_MAXIMUM_RESULTS: the most objects one search may reach."""
_PAGE = 1000
_SHOWN_FAILURES = 20


def _is_cloud_host(host: str) -> bool:
    return host.lower().endswith(_CLOUD_SUFFIXES)


class WeaviateConfig(BaseModel):
    """The ``[store.weaviate]`` table."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        "",
        description="Weaviate REST endpoint, http(s)://host[:port], or a Weaviate Cloud cluster "
        f"URL or host name. Empty: {DEFAULT_URL}.",
    )
    cloud: bool | None = Field(
        None,
        description="Connect the Weaviate Cloud way (the client derives the gRPC endpoint). "
        "Empty: detected from the host name (*.weaviate.cloud, *.weaviate.network).",
    )
    grpc_host: str = Field(
        "", description="gRPC host of a self-hosted server. Empty: the host of `url`."
    )
    grpc_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="gRPC port of a self-hosted server. Empty: 50051 for http:// URLs, "
        "443 for https:// (gRPC behind the same TLS endpoint).",
    )
    api_key_env: str = Field(
        "WEAVIATE_API_KEY",
        description="Name of the environment variable holding the API key, sent as a Bearer "
        "token when set. The key itself never goes in the config.",
    )
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for each server call.")
    batch_size: int = Field(
        500,
        ge=1,
        le=_MAX_RESULTS,
        description="Objects per write request, and per read when fetching by id.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        url = url.strip()
        if not url:
            return url
        if "://" not in url and _is_cloud_host(url.split("/", 1)[0]):
            url = "https://" + url  # Weaviate Cloud consoles show the bare host name
        parts = urlsplit(url)
        # Checked first so that no later message repeats a secret.
        if "@" in parts.netloc:
            raise ValueError(
                "credentials do not belong in the URL: put the API key in the environment "
                "variable named by store.weaviate.api_key_env"
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{url!r}: Weaviate is reached at a host and port, without a path")
        try:
            parts.port  # noqa: B018 - raises on a port outside 0-65535
        except ValueError as exc:
            raise ValueError(f"{url!r}: {exc}") from None
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("grpc_host", "grpc_port")
    @classmethod
    def _not_for_cloud(cls, value: object, info: ValidationInfo) -> object:
        url = info.data.get("url") or ""
        cloud = info.data.get("cloud")
        if value and (cloud or (cloud is None and _is_cloud_host(urlsplit(url).hostname or ""))):
            raise ValueError("Weaviate Cloud sets its own gRPC endpoint; leave this empty")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{name!r} is not an environment variable name")
        return name


@dataclass(frozen=True)
class Endpoint:
    """Where the client connects, resolved from the config."""

    url: str
    cloud: bool
    http_host: str
    http_port: int
    secure: bool
    grpc_host: str
    grpc_port: int


def resolve_endpoint(config: WeaviateConfig) -> Endpoint:
    url = config.url or DEFAULT_URL
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    secure = parts.scheme == "https"
    cloud = config.cloud if config.cloud is not None else _is_cloud_host(host)
    return Endpoint(
        url=url,
        cloud=cloud,
        http_host=host,
        http_port=parts.port or (443 if secure else 80),
        secure=secure,
        grpc_host=config.grpc_host or host,
        grpc_port=config.grpc_port or (443 if secure else 50051),
    )


def class_name(collection: str) -> str:
    """The Weaviate class for a Headwater collection name (see `WeaviateStore`)."""
    name = re.sub(r"[^0-9A-Za-z_]", "_", collection)
    if not name[:1].isalpha():
        name = "C" + name
    return name[0].upper() + name[1:]


def object_uuid(chunk_id: str) -> uuid.UUID:
    """The object id of a chunk: the same as ``weaviate.util.generate_uuid5(chunk_id)``."""
    return uuid.uuid5(uuid.NAMESPACE_DNS, chunk_id)


def _properties(record: VectorRecord) -> dict[str, Any]:
    c, m = record.chunk, record.chunk.metadata
    return {
        "chunk_id": c.id,
        "text": c.text,
        "source_id": m.source_id,
        "source": m.source,
        "path": m.path,
        "file_type": m.file_type,
        "page": m.page if m.page is not None else -1,
        "pages": list(m.pages),
        "section": m.section,
        "element_types": list(m.element_types),
        "position": m.position,
        "start": m.start,
        "end": m.end,
    }


def _chunk(props: dict[str, Any]) -> Chunk:
    meta = ChunkMetadata(
        source_id=props["source_id"],
        source=props["source"],
        path=props["path"],
        file_type=props["file_type"],
        position=int(props["position"]),
        start=int(props["start"]),
        end=int(props["end"]),
        # Weaviate leaves empty lists and nulls out of the result.
        pages=tuple(int(p) for p in props.get("pages") or ()),
        section=props.get("section"),
        element_types=tuple(props.get("element_types") or ()),
    )
    return Chunk(id=props["chunk_id"], text=props["text"], metadata=meta)


def _record(obj: Object[Any, Any]) -> VectorRecord:
    # The collection's vector is a single vector, never a multi-vector.
    vector = cast(list[float], obj.vector[_VECTOR])
    return VectorRecord(_chunk(obj.properties), [float(x) for x in vector])


def filter_for(filters: QueryFilter | None) -> _Filters | None:
    """The Weaviate filter for `filters`; Weaviate's `like` knows the same `*` and `?`."""
    if filters is None or filters.is_empty():
        return None
    from weaviate.classes.query import Filter

    parts = []
    if filters.source_glob:
        filters.glob_regex()  # rejects what `like` would read differently
        parts.append(Filter.by_property(filters.glob_field).like(filters.source_glob))
    if filters.source_ids:
        parts.append(Filter.by_property("source_id").contains_any(list(filters.source_ids)))
    if filters.file_types:
        parts.append(Filter.by_property("file_type").contains_any(list(filters.file_types)))
    if filters.pages:
        parts.append(Filter.by_property("page").contains_any([int(p) for p in filters.pages]))
    if (bounds := filters.page_bounds()) is not None:
        parts.append(Filter.by_property("page").greater_or_equal(bounds[0]))  # -1: no page
        if bounds[1] is not None:
            parts.append(Filter.by_property("page").less_or_equal(bounds[1]))
    return Filter.all_of(parts)


def _has_words(text: str) -> bool:
    return re.search(r"[^\W_]", text) is not None


def _scored_hits(objects: Iterable[Object[Any, Any]]) -> list[QueryHit]:
    hits = []
    for obj in objects:
        chunk = _chunk(obj.properties)
        hits.append(
            QueryHit(chunk.id, float(obj.metadata.score or 0.0), chunk.text, chunk.metadata)
        )
    return hits


def _distance_hits(objects: Iterable[Object[Any, Any]]) -> list[QueryHit]:
    hits = []
    for obj in objects:
        chunk = _chunk(obj.properties)
        # Weaviate's cosine distance is 1 - cosine similarity.
        score = 1.0 - float(obj.metadata.distance or 0.0)
        hits.append(QueryHit(chunk.id, score, chunk.text, chunk.metadata))
    return hits


def _near_vector(vector: Sequence[float], k: int, filters: QueryFilter | None) -> dict[str, Any]:
    from weaviate.classes.query import MetadataQuery

    return {
        "near_vector": [float(x) for x in vector],
        "limit": min(k, _MAX_RESULTS),
        "filters": filter_for(filters),
        "target_vector": _VECTOR,
        "return_metadata": MetadataQuery(distance=True),
    }


def _bm25(text: str, k: int, filters: QueryFilter | None) -> dict[str, Any]:
    from weaviate.classes.query import MetadataQuery

    return {
        "query": text,
        "query_properties": [_TEXT],
        "limit": min(k, _MAX_RESULTS),
        "filters": filter_for(filters),
        "return_metadata": MetadataQuery(score=True),
    }


def _hybrid(
    vector: Sequence[float], text: str, k: int, filters: QueryFilter | None, fusion: Fusion
) -> dict[str, Any]:
    from weaviate.classes.query import HybridFusion, MetadataQuery

    # Weaviate fuses in the engine: rankedFusion is reciprocal rank fusion with its
    # constant fixed at 60, weighted by alpha (0.5: both rankings count the same);
    # relativeScoreFusion is the min-max weighting of `fuse`'s weighted method.
    ranked = fusion.method is FusionMethod.RRF
    return {
        "query": text,
        "vector": [float(x) for x in vector],
        "alpha": 0.5 if ranked else fusion.alpha,
        "fusion_type": HybridFusion.RANKED if ranked else HybridFusion.RELATIVE_SCORE,
        "query_properties": [_TEXT],
        "target_vector": _VECTOR,
        "limit": min(k, _MAX_RESULTS),
        "filters": filter_for(filters),
        "return_metadata": MetadataQuery(score=True),
    }


def _by_ids(batch: Sequence[str], vectors: bool, properties: list[str] | None) -> dict[str, Any]:
    from weaviate.classes.query import Filter

    return {
        "filters": Filter.by_id().contains_any([object_uuid(i) for i in batch]),
        "limit": len(batch),
        "include_vector": [_VECTOR] if vectors else False,
        "return_properties": properties,
    }


async def _close_async(client: WeaviateAsyncClient) -> None:
    await client.close()


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class WeaviateStore(VectorStore):
    """One Weaviate collection: chunk metadata as typed properties, one named vector.

    Weaviate class names start with a capital letter and hold only letters, digits and
    ``_``. The class for ``store.collection`` is `class_name(collection)`: every other
    character becomes ``_``, a name not starting with a letter gets a ``C`` prefix, and the
    first letter is upper-cased (``docs-v2`` -> ``Docs_v2``). Object ids are uuid5 of the
    chunk id, so every client maps a chunk to the same object.
    """

    name: ClassVar[str] = "weaviate"
    config_model: ClassVar[type[BaseModel]] = WeaviateConfig
    config: WeaviateConfig

    def __init__(self, config: BaseModel, *, collection: str, state_dir: Path) -> None:
        super().__init__(config, collection=collection, state_dir=state_dir)
        self.endpoint = resolve_endpoint(self.config)
        self.class_name = class_name(collection)
        self._client: WeaviateClient | None = None
        self._exists = False
        self._spec: CollectionSpec | None = None
        self._async = PerLoop(self._open_async, _close_async)
        """Async clients, one per event loop (none made until an async read)."""

    def __repr__(self) -> str:
        return f"WeaviateStore({self.location!r}, class_name={self.class_name!r})"

    @property
    def location(self) -> str:
        # The URL is validated to carry no credentials; the key lives only in the environment.
        return self.endpoint.url

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Report client errors as StoreErrors naming the collection and server."""
        try:
            yield
        except HeadwaterError:
            raise  # already says what went wrong, such as a missing client
        except Exception as exc:
            from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateBaseError

            if not isinstance(exc, WeaviateBaseError):
                raise
            hint = ""
            status = getattr(exc, "status_code", None)
            if isinstance(exc, UnexpectedStatusCodeError) and status in (401, 403):
                hint = (
                    f" (the API key comes from ${self.config.api_key_env}, "
                    "see store.weaviate.api_key_env)"
                )
            raise StoreError(
                f"Weaviate at {self.location}, collection {self.collection!r}: {action} "
                f"failed: {exc.message}{hint}"
            ) from None

    @property
    def client(self) -> WeaviateClient:
        if self._client is None:
            cloud, kwargs = self._connection()  # first: it says which extra is missing
            import weaviate

            # The client's init checks would also ask PyPI for its newest version on every
            # connect, so they are skipped: connecting still reads /v1/meta (reachability,
            # API key) and is_live() below pings gRPC, the check that was skipped.
            with self._errors("connecting"):
                if cloud:
                    client = weaviate.connect_to_weaviate_cloud(**kwargs)
                else:
                    client = weaviate.connect_to_custom(**kwargs)
                live = client.is_live()
            if not live:
                client.close()
                raise self._not_live()
            self._client = client
        return self._client

    async def _open_async(self) -> WeaviateAsyncClient:
        cloud, kwargs = self._connection()
        import weaviate

        with self._errors("connecting"):
            if cloud:
                client = weaviate.use_async_with_weaviate_cloud(**kwargs)
            else:
                client = weaviate.use_async_with_custom(**kwargs)
            try:
                await client.connect()
                live = await client.is_live()
            except BaseException:
                await client.close()
                raise
        if not live:
            await client.close()
            raise self._not_live()
        return client

    def _connection(self) -> tuple[bool, dict[str, Any]]:
        """Whether the server is Weaviate Cloud, and the connect helper's arguments."""
        try:
            from weaviate.classes.init import AdditionalConfig, Auth, Timeout
        except ImportError:
            raise MissingExtraError("The Weaviate store", "weaviate") from None
        ep = self.endpoint
        key = os.environ.get(self.config.api_key_env, "")
        if ep.cloud and not key:
            raise StoreError(
                f"Weaviate Cloud at {self.location} needs an API key: set "
                f"${self.config.api_key_env} (store.weaviate.api_key_env names the variable)"
            )
        t = self.config.timeout
        common = {
            "additional_config": AdditionalConfig(timeout=Timeout(init=t, query=t, insert=t)),
            "skip_init_checks": True,
        }
        if ep.cloud:
            return True, {"cluster_url": ep.url, "auth_credentials": Auth.api_key(key), **common}
        return False, {
            "http_host": ep.http_host,
            "http_port": ep.http_port,
            "http_secure": ep.secure,
            "grpc_host": ep.grpc_host,
            "grpc_port": ep.grpc_port,
            "grpc_secure": ep.secure,
            "auth_credentials": Auth.api_key(key) if key else None,
            **common,
        }

    def _not_live(self) -> StoreError:
        # Without this check a wrong gRPC port shows as a minute of retries.
        ep = self.endpoint
        check = (
            "the cluster URL, store.weaviate.url"
            if ep.cloud
            else f"{ep.grpc_host}:{ep.grpc_port}, from store.weaviate.grpc_host and "
            "store.weaviate.grpc_port"
        )
        return StoreError(
            f"Weaviate at {self.location} answers over REST but not over gRPC: check {check}"
        )

    async def _acollection(self) -> CollectionAsync[Any, Any] | None:
        """This event loop's handle on the collection; None when it does not exist."""
        client = await self._async.get()
        if not self._exists:
            with self._errors("checking the collection"):
                self._exists = await client.collections.exists(self.class_name)
        return client.collections.use(self.class_name) if self._exists else None

    def _collection(self) -> Collection[Any, Any]:
        return self.client.collections.use(self.class_name)

    # -- collection ----------------------------------------------------------------

    def _ready(self) -> bool:
        """Whether the collection exists."""
        if not self._exists:
            with self._errors("checking the collection"):
                self._exists = self.client.collections.exists(self.class_name)
        return self._exists

    def collection_spec(self) -> CollectionSpec | None:
        if not self._ready():
            return None
        if self._spec is None:
            with self._errors("reading the collection config"):
                config = self._collection().config.get(simple=True)
            self._spec = self._spec_of(config)
        return self._spec

    async def acollection_spec(self) -> CollectionSpec | None:
        collection = await self._acollection()
        if collection is None:
            return None
        if self._spec is None:
            with self._errors("reading the collection config"):
                config = await collection.config.get(simple=True)
            self._spec = self._spec_of(config)
        return self._spec

    def _spec_of(self, config: CollectionConfigSimple) -> CollectionSpec:
        try:
            recorded = json.loads(config.description or "")[_SPEC_KEY]
            return CollectionSpec(int(recorded["dimension"]), str(recorded["model"]))
        except (ValueError, TypeError, KeyError):
            raise StoreError(
                f"Weaviate class {self.class_name!r} at {self.location} was not made by "
                "Headwater (its description records no vector size): use another "
                "store.collection"
            ) from None

    def create_collection(self, spec: CollectionSpec) -> None:
        from weaviate.classes.config import Configure, DataType, Property, Tokenization
        from weaviate.classes.config import VectorDistances as Distance

        # Field tokenization keeps each value whole, so equality and `like` see the full
        # path or id rather than its words.
        def key(name: str, data_type: DataType = DataType.TEXT) -> Property:
            return Property(name=name, data_type=data_type, tokenization=Tokenization.FIELD)

        properties = [
            key("chunk_id"),
            Property(name="text", data_type=DataType.TEXT, index_filterable=False),
            key("source_id"),
            key("source"),
            key("path"),
            key("file_type"),
            Property(name="page", data_type=DataType.INT),
            Property(name="pages", data_type=DataType.INT_ARRAY),
            Property(name="section", data_type=DataType.TEXT),
            key("element_types", DataType.TEXT_ARRAY),
            Property(name="position", data_type=DataType.INT),
            Property(name="start", data_type=DataType.INT),
            Property(name="end", data_type=DataType.INT),
        ]
        description = json.dumps({_SPEC_KEY: {"dimension": spec.dimension, "model": spec.model}})
        with self._errors("creating the collection"):
            self.client.collections.create(
                self.class_name,
                description=description,
                properties=properties,
                vector_config=Configure.Vectors.self_provided(
                    name=_VECTOR,
                    vector_index_config=Configure.VectorIndex.hnsw(distance_metric=Distance.COSINE),
                ),
            )
        self._exists = True
        self._spec = spec

    # -- writes --------------------------------------------------------------------

    def upsert(self, records: Sequence[VectorRecord]) -> int:
        if not records:
            return 0
        self.check_vectors(records)
        from weaviate.classes.data import DataObject
        from weaviate.exceptions import WeaviateInsertManyAllFailedError

        data = self._collection().data
        failed: dict[str, list[VectorRecord]] = {}
        for batch in _batches(records, self.config.batch_size):
            objects = [
                DataObject(
                    properties=_properties(r),
                    uuid=object_uuid(r.id),
                    vector={_VECTOR: [float(x) for x in r.vector]},
                )
                for r in batch
            ]
            with self._errors("upsert"):
                try:
                    result = data.insert_many(objects)
                except WeaviateInsertManyAllFailedError as exc:
                    # When every object fails the client keeps only the distinct messages.
                    failed.setdefault(exc.message, []).extend(batch)
                    continue
            for index, error in result.errors.items():
                failed.setdefault(error.message, []).append(batch[index])
        if failed:
            raise StoreError(self._failures(failed, len(records)))
        return len(records)

    def _failures(self, failed: dict[str, list[VectorRecord]], total: int) -> str:
        count = sum(len(rs) for rs in failed.values())
        parts = []
        for message, rs in failed.items():
            # The client prefixes the messages of an all-failed batch; keep the server's words.
            reason = message.rpartition("Here is the set of all errors: ")[2].replace("\n", " | ")
            shown = ", ".join(
                f"{r.id} ({r.chunk.metadata.source_id})" for r in rs[:_SHOWN_FAILURES]
            )
            more = f" and {len(rs) - _SHOWN_FAILURES} more" if len(rs) > _SHOWN_FAILURES else ""
            parts.append(f"{reason}: chunks {shown}{more}")
        written = "nothing was written" if count == total else "the others were written"
        return (
            f"Weaviate at {self.location} refused {count} of {total} chunks for collection "
            f"{self.collection!r} ({written}): " + "; ".join(parts)
        )

    def delete_ids(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        if not ids or not self._ready():
            return 0
        from weaviate.classes.query import Filter

        data = self._collection().data
        for batch in _batches(ids, self.config.batch_size):
            where = Filter.by_id().contains_any([object_uuid(i) for i in batch])
            with self._errors("delete"):
                data.delete_many(where=where)
        return len(ids)

    def delete_source(self, source_id: str) -> int:
        if not self._ready():
            return 0
        from weaviate.classes.query import Filter

        data = self._collection().data
        where = Filter.by_property("source_id").equal(source_id)
        deleted = 0
        # A server deletes at most QUERY_MAXIMUM_RESULTS objects per call: repeat until none match.
        while True:
            with self._errors(f"deleting {source_id}"):
                result = data.delete_many(where=where)
            if result.failed:
                raise StoreError(
                    f"Weaviate at {self.location} failed to delete {result.failed} chunks of "
                    f"{source_id} from collection {self.collection!r}"
                )
            deleted += result.successful
            if result.matches == 0 or result.successful == 0:
                return deleted

    # -- reads ---------------------------------------------------------------------

    def _by_ids(
        self, ids: Sequence[str], *, vectors: bool, properties: list[str] | None = None
    ) -> Iterator[Object[Any, Any]]:
        query = self._collection().query
        for batch in _batches(ids, min(self.config.batch_size, _PAGE)):
            with self._errors("fetch"):
                result = query.fetch_objects(**_by_ids(batch, vectors, properties))
            yield from result.objects

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(ids))
        if not ids or not self._ready():
            return set()
        return {
            str(o.properties["chunk_id"])
            for o in self._by_ids(ids, vectors=False, properties=["chunk_id"])
        }

    def source_ids(self, source_id: str) -> set[str]:
        if not self._ready():
            return set()
        from weaviate.classes.query import Filter

        query = self._collection().query
        where = Filter.by_property("source_id").equal(source_id)
        found: set[str] = set()
        # Filters cannot be combined with the `after` cursor, so this pages by offset (up to
        # the server's QUERY_MAXIMUM_RESULTS chunks per document).
        offset = 0
        while True:
            with self._errors(f"listing {source_id}"):
                result = query.fetch_objects(
                    filters=where, limit=_PAGE, offset=offset, return_properties=["chunk_id"]
                )
            found.update(str(o.properties["chunk_id"]) for o in result.objects)
            if len(result.objects) < _PAGE:
                return found
            offset += _PAGE

    def fetch(self, ids: Iterable[str]) -> list[VectorRecord]:
        ids = list(dict.fromkeys(ids))
        if not ids or not self._ready():
            return []
        return [_record(o) for o in self._by_ids(ids, vectors=True)]

    async def afetch(self, ids: Iterable[str]) -> list[VectorRecord]:
        ids = list(dict.fromkeys(ids))
        collection = await self._acollection() if ids else None
        if collection is None:
            return []
        records: list[VectorRecord] = []
        for batch in _batches(ids, min(self.config.batch_size, _PAGE)):
            with self._errors("fetch"):
                result = await collection.query.fetch_objects(**_by_ids(batch, True, None))
            records.extend(map(_record, result.objects))
        return records

    def scan(self, batch_size: int = _PAGE) -> Iterator[list[VectorRecord]]:
        if not self._ready():
            return
        # The iterator pages with the `after` cursor, in object-id order.
        objects = self._collection().iterator(include_vector=True, cache_size=batch_size)
        batch: list[VectorRecord] = []
        with self._errors("scan"):
            for obj in objects:
                batch.append(_record(obj))
                if len(batch) == batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def query(
        self, vector: Sequence[float], k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        if k <= 0 or not self._ready():
            return []
        with self._errors("query"):
            result = self._collection().query.near_vector(**_near_vector(vector, k, filters))
        return _distance_hits(result.objects)

    async def aquery(
        self, vector: Sequence[float], k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        collection = await self._acollection() if k > 0 else None
        if collection is None:
            return []
        with self._errors("query"):
            result = await collection.query.near_vector(**_near_vector(vector, k, filters))
        return _distance_hits(result.objects)

    def lexical_query(
        self, text: str, k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        if k <= 0 or not self._ready() or not _has_words(text):
            return []
        with self._errors("keyword (BM25) query"):
            result = self._collection().query.bm25(**_bm25(text, k, filters))
        return _scored_hits(result.objects)

    async def alexical_query(
        self, text: str, k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        collection = await self._acollection() if k > 0 and _has_words(text) else None
        if collection is None:
            return []
        with self._errors("keyword (BM25) query"):
            result = await collection.query.bm25(**_bm25(text, k, filters))
        return _scored_hits(result.objects)

    def hybrid_search(
        self,
        text: str,
        embed: Callable[[str], Sequence[float]],
        k: int = 5,
        filters: QueryFilter | None = None,
        fusion: Fusion = Fusion(),
    ) -> list[QueryHit]:
        # Weaviate's hybrid query takes the vector and the text together.
        return self.hybrid_query(embed(text), text, k, filters, fusion)

    async def ahybrid_search(
        self,
        text: str,
        embed: Callable[[str], Awaitable[Sequence[float]]],
        k: int = 5,
        filters: QueryFilter | None = None,
        fusion: Fusion = Fusion(),
    ) -> list[QueryHit]:
        vector = await embed(text)
        if not _has_words(text):
            return await self.aquery(vector, k, filters)
        collection = await self._acollection() if k > 0 else None
        if collection is None:
            return []
        with self._errors("hybrid query"):
            result = await collection.query.hybrid(**_hybrid(vector, text, k, filters, fusion))
        return _scored_hits(result.objects)

    def hybrid_query(
        self,
        vector: Sequence[float],
        text: str,
        k: int = 5,
        filters: QueryFilter | None = None,
        fusion: Fusion = Fusion(),
    ) -> list[QueryHit]:
        if k <= 0 or not self._ready():
            return []
        if not _has_words(text):
            return self.query(vector, k, filters)
        with self._errors("hybrid query"):
            result = self._collection().query.hybrid(**_hybrid(vector, text, k, filters, fusion))
        return _scored_hits(result.objects)

    def count(self, filters: QueryFilter | None = None) -> int:
        if not self._ready():
            return 0
        with self._errors("count"):
            result = self._collection().aggregate.over_all(
                total_count=True, filters=filter_for(filters)
            )
        return int(result.total_count or 0)

    async def aclose(self) -> None:
        await self._async.aclose()
        self.close()

    def close(self) -> None:
        self._async.close()
        self._exists = False
        self._spec = None
        if self._client is not None:
            client, self._client = self._client, None
            client.close()
