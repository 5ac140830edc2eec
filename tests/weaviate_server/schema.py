"""Collection definitions as a Weaviate server accepts, completes and returns them."""

from __future__ import annotations

import copy
import re
from typing import Any

CLASS_NAME = re.compile(r"^[A-Z][_0-9A-Za-z]*$")
PROPERTY_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
RESERVED = {"id", "_id", "_additional"}
SCALAR_TYPES = {"text", "int", "number", "boolean", "date", "uuid"}
DATA_TYPES = SCALAR_TYPES | {f"{t}[]" for t in SCALAR_TYPES}
TOKENIZATIONS = {"word", "lowercase", "whitespace", "field"}
"""The tokenizations this server implements (Weaviate also has trigram, gse, kagome...)."""
DISTANCES = {"cosine", "dot", "l2-squared"}
INDEX_TYPES = {"hnsw", "flat"}
"""Both searched exactly here: results equal an exact search, as HNSW approximates."""

_INVERTED = {
    "bm25": {"b": 0.75, "k1": 1.2},
    "cleanupIntervalSeconds": 60,
    "stopwords": {"additions": None, "preset": "en", "removals": None},
    "usingBlockMaxWAND": True,
}
_REPLICATION = {"factor": 1, "asyncEnabled": False, "deletionStrategy": "NoAutomatedResolution"}
_SHARDING = {
    "virtualPerPhysical": 128,
    "desiredCount": 1,
    "actualCount": 1,
    "desiredVirtualCount": 128,
    "actualVirtualCount": 128,
    "key": "_id",
    "strategy": "hash",
    "function": "murmur3",
}
_MULTI_TENANCY = {"enabled": False, "autoTenantCreation": False, "autoTenantActivation": False}
_OFF = {"enabled": False}
_INDEX_DEFAULTS: dict[str, dict[str, Any]] = {
    "hnsw": {
        "skip": False,
        "cleanupIntervalSeconds": 300,
        "maxConnections": 32,
        "efConstruction": 128,
        "ef": -1,
        "dynamicEfMin": 100,
        "dynamicEfMax": 500,
        "dynamicEfFactor": 8,
        "vectorCacheMaxObjects": 1000000000000,
        "flatSearchCutoff": 40000,
        "distance": "cosine",
        "filterStrategy": "sweeping",
        "pq": _OFF,
        "bq": _OFF,
        "sq": _OFF,
        "rq": _OFF,
        "multivector": _OFF,
    },
    "flat": {
        "vectorCacheMaxObjects": 1000000000000,
        "distance": "cosine",
        "pq": _OFF,
        "bq": _OFF,
        "sq": _OFF,
        "rq": _OFF,
        "multivector": _OFF,
    },
}


class SchemaError(ValueError):
    """A class definition the server refuses (HTTP 422)."""


def _merged(defaults: dict[str, Any], given: object) -> dict[str, Any]:
    out = copy.deepcopy(defaults)
    if isinstance(given, dict):
        for key, value in given.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = _merged(out[key], value)
            else:
                out[key] = value
    return out


def _vector_index(where: str, index_type: object, config: object) -> tuple[str, dict[str, Any]]:
    index_type = index_type or "hnsw"
    if index_type not in INDEX_TYPES:
        raise SchemaError(f"{where}: vector index type {index_type!r} is not supported")
    full = _merged(_INDEX_DEFAULTS[str(index_type)], config)
    if full["distance"] not in DISTANCES:
        raise SchemaError(f"{where}: distance {full['distance']!r} is not supported")
    for quantizer in ("pq", "bq", "sq", "rq", "multivector"):
        if full[quantizer].get("enabled"):
            raise SchemaError(f"{where}: {quantizer} is not supported by this server")
    return str(index_type), full


def _property(cls: str, prop: object, seen: set[str]) -> dict[str, Any]:
    if not isinstance(prop, dict):
        raise SchemaError(f"class {cls}: a property must be an object")
    name = prop.get("name")
    if not isinstance(name, str) or not PROPERTY_NAME.match(name):
        raise SchemaError(f"'{name}' is not a valid property name")
    if name.lower() in RESERVED:
        raise SchemaError(f"'{name}' is a reserved property name")
    if name.lower() in seen:
        raise SchemaError(f"class {cls}: conflict for property {name}: already in use")
    seen.add(name.lower())
    data_type = prop.get("dataType")
    if not (isinstance(data_type, list) and len(data_type) == 1 and data_type[0] in DATA_TYPES):
        raise SchemaError(f"property '{name}': data type {data_type!r} is not supported")
    kind = data_type[0]
    is_text = kind in ("text", "text[]")
    tokenization = prop.get("tokenization")
    if is_text:
        tokenization = tokenization or "word"
        if tokenization not in TOKENIZATIONS:
            raise SchemaError(f"property '{name}': tokenization {tokenization!r} not supported")
    elif tokenization:
        raise SchemaError(f"Tokenization is not allowed for data type '{kind}' (property '{name}')")
    searchable = prop.get("indexSearchable")
    if searchable and not is_text:
        raise SchemaError(
            f"`indexSearchable` is allowed only for text/text[] data types. "
            f"For other data types set false or leave empty (property '{name}')"
        )
    out: dict[str, Any] = {
        "name": name,
        "dataType": [kind],
        "indexFilterable": prop.get("indexFilterable", True) is not False,
        "indexSearchable": is_text and searchable is not False,
        "indexRangeFilters": prop.get("indexRangeFilters") is True,
    }
    if is_text:
        out["tokenization"] = tokenization
    if prop.get("description"):
        out["description"] = prop["description"]
    return out


def complete_class(body: object) -> dict[str, Any]:
    """The class as stored: validated, capitalized, with the server's defaults filled in."""
    if not isinstance(body, dict) or not isinstance(body.get("class"), str) or not body["class"]:
        raise SchemaError("class name is required")
    name = body["class"][0].upper() + body["class"][1:]
    if not CLASS_NAME.match(name):
        raise SchemaError(f"'{body['class']}' is not a valid class name")
    seen: set[str] = set()
    out: dict[str, Any] = {
        "class": name,
        "properties": [_property(name, p, seen) for p in body.get("properties") or []],
        "invertedIndexConfig": _merged(_INVERTED, body.get("invertedIndexConfig")),
        "multiTenancyConfig": _merged(_MULTI_TENANCY, body.get("multiTenancyConfig")),
        "replicationConfig": _merged(_REPLICATION, body.get("replicationConfig")),
        "shardingConfig": _merged(_SHARDING, body.get("shardingConfig")),
    }
    if body.get("description"):
        out["description"] = body["description"]
    if out["multiTenancyConfig"]["enabled"]:
        raise SchemaError("multi-tenancy is not supported by this server")
    factor = out["replicationConfig"]["factor"]
    if factor != 1:
        raise SchemaError(
            f"could not find enough weaviate nodes for replication: 1 available, {factor} requested"
        )
    if body.get("moduleConfig"):
        raise SchemaError("no modules are enabled on this server")
    named = body.get("vectorConfig")
    if named:
        if not isinstance(named, dict):
            raise SchemaError("vectorConfig must be an object")
        out["vectorConfig"] = {}
        for vector, config in named.items():
            vectorizer = (config or {}).get("vectorizer") or {"none": {}}
            if list(vectorizer) != ["none"]:
                raise SchemaError(f"vector {vector!r}: no vectorizer modules are enabled")
            index_type, index = _vector_index(
                f"vector {vector!r}", config.get("vectorIndexType"), config.get("vectorIndexConfig")
            )
            out["vectorConfig"][vector] = {
                "vectorizer": {"none": {}},
                "vectorIndexType": index_type,
                "vectorIndexConfig": index,
            }
    else:
        if (body.get("vectorizer") or "none") != "none":
            raise SchemaError(f"vectorizer: no module with name {body['vectorizer']!r} present")
        out["vectorizer"] = "none"
        out["vectorIndexType"], out["vectorIndexConfig"] = _vector_index(
            f"class {name}", body.get("vectorIndexType"), body.get("vectorIndexConfig")
        )
    return out


def vector_spaces(cls: dict[str, Any]) -> dict[str, str]:
    """Vector name -> distance metric; the legacy unnamed vector is named ""."""
    if "vectorConfig" in cls:
        return {n: c["vectorIndexConfig"]["distance"] for n, c in cls["vectorConfig"].items()}
    return {"": cls["vectorIndexConfig"]["distance"]}
