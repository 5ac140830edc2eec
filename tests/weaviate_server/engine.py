"""Objects, filters and exact vector search behind the server's gRPC services."""

from __future__ import annotations

import math
import re
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
import numpy as np
from google.protobuf.json_format import MessageToDict
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    base_search_pb2,
    batch_delete_pb2,
    batch_pb2,
    properties_pb2,
    search_get_pb2,
)

from .schema import SchemaError, complete_class, vector_spaces

QUERY_MAXIMUM_RESULTS = 10_000
QUERY_DEFAULTS_LIMIT = 10
Op = base_pb2.Filters
SINGLE = (base_pb2.Vectors.VECTOR_TYPE_UNSPECIFIED, base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32)


class RpcFailure(Exception):
    """A request the server answers with a gRPC error status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def unsupported(what: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.UNIMPLEMENTED, f"{what} is not supported by this server")


def invalid(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, message)


class ObjectError(ValueError):
    """Why one object of a batch was refused; the rest of the batch goes on."""


@dataclass
class StoredObject:
    id: uuid.UUID
    properties: dict[str, Any]
    vectors: dict[str, np.ndarray]
    created_ms: int
    updated_ms: int


@dataclass
class Collection:
    schema: dict[str, Any]
    objects: dict[uuid.UUID, StoredObject] = field(default_factory=dict)
    """In insertion order, like Weaviate's doc ids: a replaced object moves to the end."""
    dims: dict[str, int] = field(default_factory=dict)
    """Vector length per vector index, fixed by the first vector it receives."""

    @property
    def name(self) -> str:
        return str(self.schema["class"])

    @property
    def spaces(self) -> dict[str, str]:
        return vector_spaces(self.schema)

    def prop(self, name: str) -> dict[str, Any]:
        for p in self.schema["properties"]:
            if p["name"] == name:
                return dict(p)
        raise ObjectError(
            f"no such prop with name '{name}' found in class '{self.name}' in the schema. "
            "Check your schema files for which properties in this class are available"
        )


# -- values ------------------------------------------------------------------------


def _check_scalar(cls: str, name: str, kind: str, value: Any) -> Any:
    def bad(expected: str) -> ObjectError:
        return ObjectError(
            f"invalid {expected} property '{name}' on class '{cls}': "
            f"not a {expected}, but {type(value).__name__}"
        )

    if kind == "text":
        if not isinstance(value, str):
            raise bad("string")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("integer")
        if value != int(value):
            raise ObjectError(
                f"invalid integer property '{name}' on class '{cls}': requires integer, "
                f"the given value is {value}"
            )
        return int(value)
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("number")
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise bad("boolean")
        return value
    if kind == "date":
        try:
            datetime.fromisoformat(str(value))
        except ValueError:
            raise bad("date") from None
        return str(value)
    if kind == "uuid":
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            raise bad("uuid") from None
    raise AssertionError(kind)


def coerce(coll: Collection, name: str, value: Any) -> Any:
    """A property value as the schema types it; raises ObjectError when it does not fit."""
    kind = coll.prop(name)["dataType"][0]
    if value is None:
        return None
    if kind.endswith("[]"):
        if not isinstance(value, list):
            raise ObjectError(f"invalid {kind} property '{name}' on class '{coll.name}'")
        return [_check_scalar(coll.name, name, kind[:-2], v) for v in value]
    return _check_scalar(coll.name, name, kind, value)


def decode_properties(props: batch_pb2.BatchObject.Properties) -> dict[str, Any]:
    """The properties of a batch object as plain values (numbers untyped, as JSON has them)."""
    refs = props.single_target_ref_props or props.multi_target_ref_props
    if refs or props.object_properties or props.object_array_properties:
        raise ObjectError("cross-references and object properties are not supported here")
    out: dict[str, Any] = MessageToDict(props.non_ref_properties)
    for p in props.text_array_properties:
        out[p.prop_name] = list(p.values)
    for p in props.int_array_properties:
        out[p.prop_name] = list(p.values)
    for p in props.boolean_array_properties:
        out[p.prop_name] = list(p.values)
    for p in props.number_array_properties:
        n = len(p.values_bytes) // 8
        out[p.prop_name] = list(struct.unpack(f"<{n}d", p.values_bytes)) or list(p.values)
    for name in props.empty_list_props:
        out[name] = []
    return out


def _list_value(kind: str, values: list[Any]) -> properties_pb2.ListValue:
    if kind == "text":
        return properties_pb2.ListValue(text_values=properties_pb2.TextValues(values=values))
    if kind == "int":
        packed = struct.pack(f"<{len(values)}q", *values)
        return properties_pb2.ListValue(int_values=properties_pb2.IntValues(values=packed))
    if kind == "number":
        packed = struct.pack(f"<{len(values)}d", *values)
        return properties_pb2.ListValue(number_values=properties_pb2.NumberValues(values=packed))
    if kind == "boolean":
        return properties_pb2.ListValue(bool_values=properties_pb2.BoolValues(values=values))
    if kind == "date":
        return properties_pb2.ListValue(date_values=properties_pb2.DateValues(values=values))
    return properties_pb2.ListValue(uuid_values=properties_pb2.UuidValues(values=values))


def encode_value(kind: str, value: Any) -> properties_pb2.Value:
    if kind.endswith("[]"):
        return properties_pb2.Value(list_value=_list_value(kind[:-2], value))
    key = {
        "text": "text_value",
        "int": "int_value",
        "number": "number_value",
        "boolean": "bool_value",
        "date": "date_value",
        "uuid": "uuid_value",
    }[kind]
    return properties_pb2.Value(**{key: value})


def _floats(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").copy()


# -- filters -----------------------------------------------------------------------


def tokens(text: str, tokenization: str) -> list[str]:
    """Weaviate's tokenizations of a text value (the ones this server supports)."""
    if tokenization == "field":
        return [text.strip()] if text.strip() else []
    if tokenization == "word":
        return [t.lower() for t in re.findall(r"[^\W_]+", text)]
    if tokenization == "lowercase":
        return text.lower().split()
    return text.split()


def like_regex(pattern: str) -> re.Pattern[str]:
    """Weaviate's `like`: `*` is any run of characters, `?` any one character."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, flags=re.DOTALL)


Predicate = Callable[[StoredObject], bool]
_TEXT_OPS = {Op.OPERATOR_EQUAL, Op.OPERATOR_NOT_EQUAL, Op.OPERATOR_LIKE}
_CONTAINS = {Op.OPERATOR_CONTAINS_ANY, Op.OPERATOR_CONTAINS_ALL, Op.OPERATOR_CONTAINS_NONE}
_RANGE = {
    Op.OPERATOR_GREATER_THAN: lambda a, b: a > b,
    Op.OPERATOR_GREATER_THAN_EQUAL: lambda a, b: a >= b,
    Op.OPERATOR_LESS_THAN: lambda a, b: a < b,
    Op.OPERATOR_LESS_THAN_EQUAL: lambda a, b: a <= b,
}
_VALUE_FIELDS = {
    "text": "valueText",
    "date": "valueText",
    "uuid": "valueText",
    "int": "valueInt",
    "number": "valueNumber",
    "boolean": "valueBoolean",
}


def _filter_values(f: base_pb2.Filters) -> tuple[str, list[Any]]:
    """Which value field the filter uses (as Weaviate names it) and its values."""
    which = f.WhichOneof("test_value")
    if which is None:
        raise invalid("filter has no value")
    if which == "value_geo":
        raise unsupported("geo filtering")
    value = getattr(f, which)
    kind = "value" + "".join(w.title() for w in which.split("_")[1:])
    if which.endswith("_array"):
        return kind.removesuffix("Array"), list(value.values)
    return kind, [value]


def _id_filter(f: base_pb2.Filters) -> Predicate:
    _, values = _filter_values(f)
    try:
        ids = {uuid.UUID(str(v)) for v in values}
    except ValueError as exc:
        raise invalid(f"invalid uuid in filter: {exc}") from None
    op = f.operator
    if op in (Op.OPERATOR_EQUAL, Op.OPERATOR_CONTAINS_ANY):
        return lambda o: o.id in ids
    if op in (Op.OPERATOR_NOT_EQUAL, Op.OPERATOR_CONTAINS_NONE):
        return lambda o: o.id not in ids
    raise unsupported(f"operator {Op.Operator.Name(op)} on _id")


def compile_filter(coll: Collection, f: base_pb2.Filters) -> Predicate:
    op = f.operator
    if op in (Op.OPERATOR_AND, Op.OPERATOR_OR):
        parts = [compile_filter(coll, c) for c in f.filters]
        if op == Op.OPERATOR_AND:
            return lambda o: all(p(o) for p in parts)
        return lambda o: any(p(o) for p in parts)
    if op == Op.OPERATOR_NOT:
        if len(f.filters) != 1:
            raise invalid("Not takes exactly one filter")
        inner = compile_filter(coll, f.filters[0])
        return lambda o: not inner(o)
    if f.HasField("target"):
        if f.target.WhichOneof("target") != "property":
            raise unsupported("filtering on references")
        name = f.target.property
    elif len(f.on) == 1:
        name = f.on[0]
    else:
        raise unsupported("filtering on reference paths")
    if name == "_id":
        return _id_filter(f)
    if name.startswith("_"):
        raise unsupported(f"filtering on {name}")
    try:
        prop = coll.prop(name)
    except ObjectError as exc:
        raise invalid(str(exc)) from None
    if op == Op.OPERATOR_IS_NULL:
        if not coll.schema["invertedIndexConfig"].get("indexNullState"):
            raise invalid(
                "Nullstate must be indexed to be filterable! "
                "Add `indexNullState: true` to the invertedIndexConfig"
            )
        return lambda o: (o.properties.get(name) is None) == f.value_boolean
    if not (prop["indexFilterable"] or prop["indexSearchable"]):
        raise invalid(
            f"Filtering by property '{name}' requires inverted index. Is `indexFilterable` "
            f"option of property '{name}' enabled? Set it to `true` or leave empty"
        )
    kind = prop["dataType"][0].removesuffix("[]")
    value_field, values = _filter_values(f)
    expected = _VALUE_FIELDS[kind]
    if value_field != expected and not (kind == "number" and value_field == "valueInt"):
        raise invalid(
            f'data type filter cannot use "{value_field}" on type "{kind}", use "{expected}" '
            "instead"
        )
    if kind == "text":
        return _text_filter(name, prop["tokenization"], op, values)
    if op == Op.OPERATOR_LIKE:
        raise invalid(f"Like is not supported for data type {kind}")
    wanted: list[Any] = [_filter_scalar(kind, v) for v in values]

    def present(o: StoredObject) -> list[Any]:
        v = o.properties.get(name)
        return (
            []
            if v is None
            else [_filter_scalar(kind, x) for x in (v if isinstance(v, list) else [v])]
        )

    return _match(op, wanted, lambda o, w: w in present(o), present)


def _filter_scalar(kind: str, value: Any) -> Any:
    if kind == "date":
        return datetime.fromisoformat(str(value))
    if kind == "uuid":
        return uuid.UUID(str(value))
    return value


def _text_filter(name: str, tokenization: str, op: int, values: list[Any]) -> Predicate:
    def held(o: StoredObject) -> set[str]:
        v = o.properties.get(name)
        texts = [] if v is None else v if isinstance(v, list) else [v]
        return {t for text in texts for t in tokens(text, tokenization)}

    if op == Op.OPERATOR_LIKE:
        pattern = str(values[0])
        if tokenization in ("word", "lowercase"):
            pattern = pattern.lower()
        regex = like_regex(pattern)
        return lambda o: any(regex.fullmatch(t) for t in held(o))
    if op in _RANGE:
        raise unsupported("range filters on text")
    wanted = [set(tokens(str(v), tokenization)) for v in values]
    return _match(op, wanted, lambda o, w: bool(w) and w <= held(o), None)


def _match(
    op: int,
    wanted: list[Any],
    has: Callable[[StoredObject, Any], bool],
    present: Callable[[StoredObject], list[Any]] | None,
) -> Predicate:
    if op == Op.OPERATOR_EQUAL:
        return lambda o: has(o, wanted[0])
    if op == Op.OPERATOR_NOT_EQUAL:
        return lambda o: not has(o, wanted[0])
    if op == Op.OPERATOR_CONTAINS_ANY:
        return lambda o: any(has(o, w) for w in wanted)
    if op == Op.OPERATOR_CONTAINS_ALL:
        return lambda o: all(has(o, w) for w in wanted)
    if op == Op.OPERATOR_CONTAINS_NONE:
        return lambda o: not any(has(o, w) for w in wanted)
    if op in _RANGE and present is not None:
        compare = _RANGE[op]
        return lambda o: any(compare(v, wanted[0]) for v in present(o))
    raise unsupported(f"operator {Op.Operator.Name(op)}")


# -- the database ------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


_SEARCHES = (
    "near_object",
    "near_text",
    "near_image",
    "near_audio",
    "near_video",
    "near_depth",
    "near_thermal",
    "near_imu",
    "group_by",
    "generative",
    "rerank",
)


_AGGREGATE_SEARCHES = ("hybrid", "near_vector", *(s for s in _SEARCHES if s.startswith("near_")))


class Database:
    """All classes and objects of one server, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.classes: dict[str, Collection] = {}
        self.searches: list[search_get_pb2.SearchRequest] = []
        """Every search request received, for tests to check what a client sent."""

    # -- schema (REST) -----------------------------------------------------------

    def create_class(self, body: object) -> dict[str, Any]:
        schema = complete_class(body)
        with self.lock:
            if schema["class"].lower() in {n.lower() for n in self.classes}:
                raise SchemaError(f"class name {schema['class']!r} already exists")
            self.classes[schema["class"]] = Collection(schema)
        return schema

    def get_class(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            coll = self.classes.get(_class_name(name))
            return coll.schema if coll else None

    def list_classes(self) -> list[dict[str, Any]]:
        with self.lock:
            return [c.schema for c in self.classes.values()]

    def delete_class(self, name: str) -> None:
        with self.lock:
            self.classes.pop(_class_name(name), None)

    def collection(self, name: str) -> Collection:
        coll = self.classes.get(_class_name(name))
        if coll is None:
            raise invalid(f"could not find class {name} in schema")
        return coll

    # -- batch writes --------------------------------------------------------------

    def batch_objects(self, request: batch_pb2.BatchObjectsRequest) -> batch_pb2.BatchObjectsReply:
        start = time.perf_counter()
        errors = []
        with self.lock:
            for index, obj in enumerate(request.objects):
                try:
                    self._put(obj)
                except ObjectError as exc:
                    errors.append(
                        batch_pb2.BatchObjectsReply.BatchError(index=index, error=str(exc))
                    )
        return batch_pb2.BatchObjectsReply(took=time.perf_counter() - start, errors=errors)

    def _put(self, obj: batch_pb2.BatchObject) -> None:
        coll = self.classes.get(_class_name(obj.collection))
        if coll is None:
            raise ObjectError(f'class "{obj.collection}" not found in schema')
        if obj.tenant:
            raise ObjectError(f"class {coll.name}: multi-tenancy is not enabled, got tenant")
        try:
            oid = uuid.UUID(obj.uuid) if obj.uuid else uuid.uuid4()
        except ValueError:
            raise ObjectError(f"invalid UUID {obj.uuid!r}") from None
        raw = decode_properties(obj.properties)
        properties = {
            k: v for k, v in ((k, coerce(coll, k, v)) for k, v in raw.items()) if v is not None
        }
        vectors = self._vectors(coll, obj)
        for name, vector in vectors.items():
            dims = coll.dims.get(name)
            if dims is not None and dims != len(vector):
                raise ObjectError(
                    f"new node has a vector with length {len(vector)}. "
                    f"Existing nodes have vectors with length {dims}"
                )
        for name, vector in vectors.items():
            coll.dims.setdefault(name, len(vector))
        old = coll.objects.pop(oid, None)
        now = _now_ms()
        coll.objects[oid] = StoredObject(
            oid, properties, vectors, old.created_ms if old else now, now
        )

    @staticmethod
    def _vectors(coll: Collection, obj: batch_pb2.BatchObject) -> dict[str, np.ndarray]:
        spaces = coll.spaces
        named = {}
        for v in obj.vectors:
            if v.type not in SINGLE:
                raise ObjectError("multi-vectors are not supported by this server")
            named[v.name] = _floats(v.vector_bytes)
        unnamed = _floats(obj.vector_bytes) if obj.vector_bytes else np.asarray(obj.vector, "<f4")
        if named and "" in spaces:
            raise ObjectError(
                f"collection {coll.name} is configured without multiple named vectors, but "
                f"received named vectors: {sorted(named)}"
            )
        if unnamed.size:
            if "" in spaces:
                return {"": unnamed}
            if len(spaces) > 1:
                raise ObjectError(
                    f"collection {coll.name} is configured with multiple named vectors, "
                    "but received an unnamed vector"
                )
            named.setdefault(next(iter(spaces)), unnamed)
        for name in named:
            if name not in spaces:
                raise ObjectError(f"collection {coll.name} has no named vector {name!r}")
        return named

    def batch_delete(
        self, request: batch_delete_pb2.BatchDeleteRequest
    ) -> batch_delete_pb2.BatchDeleteReply:
        start = time.perf_counter()
        if not request.HasField("filters"):
            raise invalid("batch delete needs filters")
        with self.lock:
            coll = self.collection(request.collection)
            keep = compile_filter(coll, request.filters)
            # Like Weaviate, one call deletes at most QUERY_MAXIMUM_RESULTS objects.
            matched = [o for o in coll.objects.values() if keep(o)][:QUERY_MAXIMUM_RESULTS]
            if not request.dry_run:
                for o in matched:
                    del coll.objects[o.id]
        return batch_delete_pb2.BatchDeleteReply(
            took=time.perf_counter() - start,
            matches=len(matched),
            successful=len(matched),
            failed=0,
            objects=[
                batch_delete_pb2.BatchDeleteObject(uuid=o.id.bytes, successful=True)
                for o in matched
            ]
            if request.verbose
            else [],
        )

    # -- reads -----------------------------------------------------------------------

    def _matching(self, coll: Collection, filters: base_pb2.Filters | None) -> list[StoredObject]:
        objects = list(coll.objects.values())
        if filters is None:
            return objects
        keep = compile_filter(coll, filters)
        return [o for o in objects if keep(o)]

    def aggregate(self, request: aggregate_pb2.AggregateRequest) -> aggregate_pb2.AggregateReply:
        start = time.perf_counter()
        searches = [s for s in _AGGREGATE_SEARCHES if request.HasField(s)]
        if request.aggregations or request.HasField("group_by") or searches:
            raise unsupported("aggregating anything but objects_count")
        with self.lock:
            coll = self.collection(request.collection)
            found = self._matching(coll, request.filters if request.HasField("filters") else None)
        single = aggregate_pb2.AggregateReply.Single()
        if request.objects_count:
            single.objects_count = len(found)
        return aggregate_pb2.AggregateReply(took=time.perf_counter() - start, single_result=single)

    def search(self, request: search_get_pb2.SearchRequest) -> search_get_pb2.SearchReply:
        start = time.perf_counter()
        for name in _SEARCHES:
            if request.HasField(name):
                raise unsupported(name)
        if request.tenant:
            raise invalid("multi-tenancy is not enabled")
        limit = request.limit or QUERY_DEFAULTS_LIMIT
        filters = request.filters if request.HasField("filters") else None
        near = request.near_vector if request.HasField("near_vector") else None
        with self.lock:
            self.searches.append(request)
            coll = self.collection(request.collection)
            distances: dict[uuid.UUID, float] = {}
            scores: dict[uuid.UUID, float] = {}
            if request.HasField("bm25_search") or request.HasField("hybrid_search"):
                if request.after or request.sort_by:
                    raise invalid("keyword and hybrid search take no cursor or sort")
                found = self._matching(coll, filters)
                if request.HasField("bm25_search"):
                    bm = request.bm25_search
                    scores = bm25(coll, bm.query, list(bm.properties), found)
                else:
                    scores = self._hybrid(coll, request.hybrid_search, found)
                found = sorted((o for o in found if o.id in scores), key=lambda o: -scores[o.id])
                found = found[request.offset : request.offset + limit]
                results = [self._result(coll, o, request, None, scores.get(o.id)) for o in found]
                return search_get_pb2.SearchReply(took=time.perf_counter() - start, results=results)
            if request.after:
                if filters is not None or near is not None or request.sort_by or request.offset:
                    raise invalid(
                        "cursor api: invalid 'after' parameter: where, nearVector, sort and "
                        "offset must be empty"
                    )
                after = uuid.UUID(request.after)
                found = sorted(
                    (o for o in coll.objects.values() if o.id.bytes > after.bytes),
                    key=lambda o: o.id.bytes,
                )[:limit]
            else:
                if request.offset + limit > QUERY_MAXIMUM_RESULTS:
                    raise invalid("invalid pagination params: query maximum results exceeded")
                found = self._matching(coll, filters)
                if near is not None:
                    distances = self._near_vector(coll, near, found)
                    found = sorted(
                        (o for o in found if o.id in distances), key=lambda o: distances[o.id]
                    )
                elif request.sort_by:
                    found = _sorted(found, request.sort_by)
                elif filters is None:
                    # Unfiltered lists read the objects bucket, keyed by uuid.
                    found.sort(key=lambda o: o.id.bytes)
                found = found[request.offset : request.offset + limit]
            results = [self._result(coll, o, request, distances.get(o.id)) for o in found]
        return search_get_pb2.SearchReply(took=time.perf_counter() - start, results=results)

    def _hybrid(
        self, coll: Collection, hybrid: Any, candidates: list[StoredObject]
    ) -> dict[uuid.UUID, float]:
        """Weaviate's hybrid: a BM25 and a vector ranking of the same candidates, fused."""
        if hybrid.HasField("near_text") or hybrid.target_vectors or hybrid.vector:
            raise unsupported("hybrid search with near_text or legacy vector fields")
        if hybrid.HasField("near_vector"):
            near = hybrid.near_vector
        elif hybrid.vector_bytes or hybrid.vectors:
            # Client 4.x sends the vector in the hybrid message itself.
            near = base_search_pb2.NearVector(
                vector_bytes=hybrid.vector_bytes, vectors=hybrid.vectors, targets=hybrid.targets
            )
        else:
            # Without a vector Weaviate would vectorize the query with a module; none here.
            raise invalid("hybrid search without a vector needs a vectorizer module")
        keyword = bm25(coll, hybrid.query, list(hybrid.properties), candidates)
        distances = self._near_vector(coll, near, candidates)
        alpha = hybrid.alpha_param if hybrid.use_alpha_param else hybrid.alpha
        rankings = (
            (alpha, sorted(distances.items(), key=lambda kv: kv[1])),
            (1 - alpha, sorted(keyword.items(), key=lambda kv: -kv[1])),
        )
        fused: dict[uuid.UUID, float] = {}
        # relativeScoreFusion has been the default since Weaviate 1.24.
        if hybrid.fusion_type != base_search_pb2.Hybrid.FUSION_TYPE_RANKED:
            for (weight, ranking), flip in zip(rankings, (True, False), strict=True):
                values = [-v if flip else v for _, v in ranking]
                low, high = min(values, default=0.0), max(values, default=0.0)
                for (oid, _), v in zip(ranking, values, strict=True):
                    scaled = 1.0 if high == low else (v - low) / (high - low)
                    fused[oid] = fused.get(oid, 0.0) + weight * scaled
        else:
            # rankedFusion: weight / (60 + rank), rank counted from 0.
            for weight, ranking in rankings:
                for rank, (oid, _) in enumerate(ranking):
                    fused[oid] = fused.get(oid, 0.0) + weight / (60 + rank)
        return fused

    def _near_vector(
        self, coll: Collection, near: Any, candidates: list[StoredObject]
    ) -> dict[uuid.UUID, float]:
        if near.vector_for_targets or near.vector_per_target:
            raise unsupported("per-target query vectors")
        targets = list(near.targets.target_vectors) or list(near.target_vectors)
        spaces = coll.spaces
        if len(targets) > 1:
            raise unsupported("multi-target vector search")
        if targets:
            space = targets[0]
            if space not in spaces or space == "":
                raise invalid(f'class {coll.name} does not have named vector "{space}" configured')
        elif len(spaces) == 1:
            space = next(iter(spaces))
        else:
            raise invalid(
                f"class {coll.name} has multiple vectors, but no target vector was specified"
            )
        if near.vectors:
            if near.vectors[0].type not in SINGLE:
                raise unsupported("multi-vector queries")
            query = _floats(near.vectors[0].vector_bytes)
        elif near.vector_bytes:
            query = _floats(near.vector_bytes)
        else:
            query = np.asarray(near.vector, "<f4")
        dims = coll.dims.get(space)
        if dims is not None and dims != len(query):
            raise invalid(f"vector search: vector lengths don't match: {dims} vs {len(query)}")
        held = [o for o in candidates if space in o.vectors]
        if not held:
            return {}
        matrix = np.stack([o.vectors[space] for o in held])
        metric = spaces[space]
        if metric == "cosine":
            norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) or 1.0)
            dist = 1.0 - (matrix @ query) / np.where(norms == 0, 1.0, norms)
        elif metric == "dot":
            dist = -(matrix @ query)
        else:
            dist = ((matrix - query) ** 2).sum(axis=1)
        out = {o.id: float(d) for o, d in zip(held, dist, strict=True)}
        if near.HasField("distance"):
            out = {k: d for k, d in out.items() if d <= near.distance}
        if near.HasField("certainty"):
            if metric != "cosine":
                raise invalid(
                    "can't compute and return certainty when vector index is not "
                    "configured with cosine distance"
                )
            out = {k: d for k, d in out.items() if 1 - d / 2 >= near.certainty}
        return out

    def _result(
        self,
        coll: Collection,
        obj: StoredObject,
        request: search_get_pb2.SearchRequest,
        distance: float | None,
        score: float | None = None,
    ) -> search_get_pb2.SearchResult:
        props = request.properties if request.HasField("properties") else None
        if props is not None and props.ref_properties:
            raise unsupported("returning references")
        if props is None or props.return_all_nonref_properties:
            names: Iterable[str] = [p["name"] for p in coll.schema["properties"]]
        else:
            names = props.non_ref_properties
        fields = {}
        for name in names:
            value = obj.properties.get(name)
            if value is not None:
                fields[name] = encode_value(coll.prop(name)["dataType"][0], value)
        meta = search_get_pb2.MetadataResult(id=str(obj.id), id_as_bytes=obj.id.bytes)
        md = request.metadata
        if md.vector or md.vectors:
            wanted = set(md.vectors) or set(obj.vectors)
            for name, vector in obj.vectors.items():
                packed = vector.astype("<f4").tobytes()
                if name == "":
                    meta.vector_bytes = packed
                elif name in wanted:
                    meta.vectors.append(
                        base_pb2.Vectors(
                            name=name,
                            vector_bytes=packed,
                            type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32,
                        )
                    )
        if md.creation_time_unix:
            meta.creation_time_unix, meta.creation_time_unix_present = obj.created_ms, True
        if md.last_update_time_unix:
            meta.last_update_time_unix, meta.last_update_time_unix_present = obj.updated_ms, True
        if md.is_consistent:
            meta.is_consistent, meta.is_consistent_present = True, True
        if distance is not None and md.distance:
            meta.distance, meta.distance_present = distance, True
        if distance is not None and md.certainty:
            meta.certainty, meta.certainty_present = 1 - distance / 2, True
        if score is not None and md.score:
            meta.score, meta.score_present = score, True
        return search_get_pb2.SearchResult(
            properties=search_get_pb2.PropertiesResult(
                non_ref_props=properties_pb2.Properties(fields=fields),
                target_collection=coll.name,
            ),
            metadata=meta,
        )


BM25_K1 = 1.2
BM25_B = 0.75
"""Weaviate's default BM25 parameters (invertedIndexConfig.bm25)."""


def bm25(
    coll: Collection, query: str, properties: list[str], candidates: list[StoredObject]
) -> dict[uuid.UUID, float]:
    """Okapi BM25 of each candidate that holds a query term, summed over `properties`
    (all text properties when none are named); statistics over the whole collection, as
    Weaviate keeps them per shard."""
    names = properties or [
        p["name"] for p in coll.schema["properties"] if p["dataType"][0] in ("text", "text[]")
    ]
    scores: dict[uuid.UUID, float] = {}
    everyone = list(coll.objects.values())
    for name in names:
        prop = coll.prop(name)
        if prop.get("indexSearchable") is False:
            raise invalid(f"property '{name}' is not searchable (indexSearchable is false)")
        tokenization = prop.get("tokenization") or "word"

        def terms(o: StoredObject, name: str = name, tokenization: str = tokenization) -> list[str]:
            value = o.properties.get(name)
            values = value if isinstance(value, list) else [value] if value is not None else []
            return [t for v in values for t in tokens(str(v), tokenization)]

        docs = {o.id: terms(o) for o in everyone}
        n = len(docs)
        if not n:
            continue
        avg = sum(map(len, docs.values())) / n or 1.0
        for term in dict.fromkeys(tokens(query, tokenization)):
            holding = sum(term in d for d in docs.values())
            if not holding:
                continue
            idf = math.log(1 + (n - holding + 0.5) / (holding + 0.5))
            for o in candidates:
                d = docs[o.id]
                tf = d.count(term)
                if tf:
                    norm = tf + BM25_K1 * (1 - BM25_B + BM25_B * len(d) / avg)
                    scores[o.id] = scores.get(o.id, 0.0) + idf * tf * (BM25_K1 + 1) / norm
    return scores


def _sorted(
    objects: list[StoredObject], sort_by: Iterable[search_get_pb2.SortBy]
) -> list[StoredObject]:
    out = list(objects)
    # Stable sorts, last key first; objects without the value go last.
    for s in reversed(list(sort_by)):
        (name,) = s.path
        present = [o for o in out if o.properties.get(name) is not None]
        missing = [o for o in out if o.properties.get(name) is None]
        present.sort(key=lambda o: o.properties[name], reverse=not s.ascending)
        out = present + missing
    return out


def _class_name(name: str) -> str:
    return name[:1].upper() + name[1:]
