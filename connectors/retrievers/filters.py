"""Framework metadata filters (LangChain's ``filter`` dict, LlamaIndex's ``MetadataFilters``)
translated to Headwater's `QueryFilter`.

Both frameworks' forms are first read into one small tree of conditions (`Condition`,
`AllOf`, `AnyOf`); `to_query_filter` then decides what the tree means for Headwater. A
`QueryFilter` is an AND of per-field conditions that every store evaluates natively, so a
condition it cannot express (``$ne``, an OR across two fields, a field it does not index)
raises `UnsupportedFilterError`: a filter is never dropped or applied after the fact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from headwater.ingest.errors import HeadwaterError
from headwater.ingest.models import QueryFilter

FIELDS = {
    "source": "source_ids",
    "source_id": "source_ids",
    "path": "path",
    "file_type": "file_types",
    "page": "pages",
}
"""Metadata keys a filter may name (as ``hit_metadata`` returns them) and what they set."""

OPERATORS = ("eq", "in", "gt", "gte", "lt", "lte")
"""What Headwater evaluates; ``page`` takes all, the other fields eq and in."""

_HINT = (
    "Headwater filters on source, path, file_type and page with eq, in (and gt, gte, lt, "
    "lte on page), combined with AND; an OR only over values of one field"
)


class UnsupportedFilterError(HeadwaterError, ValueError):
    """A framework filter that Headwater's stores cannot evaluate."""


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    """One of OPERATORS, or the framework's name for one Headwater lacks (it raises)."""
    value: Any


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Node, ...]


Node = Condition | AllOf | AnyOf


def unsupported(what: str) -> UnsupportedFilterError:
    return UnsupportedFilterError(f"filter {what} is not supported: {_HINT}")


def from_langchain(spec: Mapping[str, Any]) -> Node:
    """LangChain's filter dict (Chroma/PGVector form): ``{"file_type": "pdf"}``,
    ``{"page": {"$gte": 2}}``, ``{"$and": [...]}``, ``{"$or": [...]}``, ``$eq``, ``$in``..."""
    if not isinstance(spec, Mapping):
        raise UnsupportedFilterError(f"filter must be a dict, not {type(spec).__name__}")
    parts: list[Node] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, Sequence) or isinstance(value, str):
                raise UnsupportedFilterError(f"filter {key} takes a list of filters")
            nodes = tuple(from_langchain(v) for v in value)
            parts.append(AllOf(nodes) if key == "$and" else AnyOf(nodes))
        elif key.startswith("$"):
            raise unsupported(repr(key))
        elif isinstance(value, Mapping):
            for op, operand in value.items():
                if not isinstance(op, str) or not op.startswith("$"):
                    raise UnsupportedFilterError(
                        f"filter {key!r}: {op!r} is not an operator; write {{{key!r}: "
                        "{'$eq': value}} or {key: value}"
                    )
                parts.append(Condition(key, op[1:], operand))
        else:
            parts.append(Condition(key, "eq", value))
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


@dataclass
class _Field:
    """What the conditions on one field allow so far (None: no limit yet)."""

    values: set[Any] | None = None
    low: int | None = None
    high: int | None = None

    def allow(self, values: set[Any]) -> None:
        self.values = values if self.values is None else self.values & values


def _values(cond: Condition) -> set[Any]:
    if cond.op == "eq":
        items = [cond.value]
    elif isinstance(cond.value, Sequence) and not isinstance(cond.value, str):
        items = list(cond.value)
    else:
        raise UnsupportedFilterError(f"filter {cond.field!r} $in takes a list")
    if cond.field == "page":
        return {_page(cond, v) for v in items}
    if not all(isinstance(v, str) for v in items):
        raise UnsupportedFilterError(f"filter {cond.field!r} compares text values")
    return set(items)


def _page(cond: Condition, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise UnsupportedFilterError(f"filter 'page' {cond.op}: {value!r} is not a page number")
    return int(value)


def _flatten(node: Node) -> list[Condition]:
    """The conditions an AND of `node` requires; an OR must be one field's values."""
    if isinstance(node, Condition):
        return [node]
    if isinstance(node, AllOf):
        return [c for part in node.parts for c in _flatten(part)]
    leaves = [c for part in node.parts for c in _or_leaves(part)]
    if not leaves:
        raise UnsupportedFilterError("filter: an OR needs at least one condition")
    fields = {c.field for c in leaves}
    if len(fields) > 1 or any(c.op not in ("eq", "in") for c in leaves):
        what = " OR ".join(f"{c.field} {c.op}" for c in leaves)
        raise unsupported(f"({what})")
    values: list[Any] = [v for c in leaves for v in sorted(_values(c), key=str)]
    return [Condition(leaves[0].field, "in", values)]


def _or_leaves(node: Node) -> list[Condition]:
    if isinstance(node, Condition):
        return [node]
    if isinstance(node, AnyOf) or len(node.parts) == 1:
        return [c for part in node.parts for c in _or_leaves(part)]
    raise unsupported("with an AND of several conditions inside an OR")


def to_query_filter(node: Node | None) -> QueryFilter | None:
    """The `QueryFilter` meaning `node`; None when nothing can match (``file_type`` both
    pdf and md). Raises `UnsupportedFilterError` for what Headwater cannot evaluate."""
    if node is None:
        return QueryFilter()
    fields: dict[str, _Field] = {}
    for cond in _flatten(node):
        if cond.field not in FIELDS:
            known = ", ".join(sorted(FIELDS))
            raise UnsupportedFilterError(
                f"filter on {cond.field!r} is not supported: Headwater's stores index {known}"
            )
        if cond.op not in OPERATORS:
            raise unsupported(f"{cond.field!r} {cond.op}")
        state = fields.setdefault(cond.field, _Field())
        if cond.op in ("eq", "in"):
            state.allow(_values(cond))
        elif cond.field != "page":
            raise unsupported(f"{cond.field!r} {cond.op}")
        else:
            bound = _page(cond, cond.value)
            if cond.op in ("gt", "gte"):
                low = bound + 1 if cond.op == "gt" else bound
                state.low = low if state.low is None else max(state.low, low)
            else:
                high = bound - 1 if cond.op == "lt" else bound
                state.high = high if state.high is None else min(state.high, high)
    return _build(fields)


def _build(fields: dict[str, _Field]) -> QueryFilter | None:
    kwargs: dict[str, Any] = {}
    for name, state in fields.items():
        values = state.values
        if name == "page" and values is not None:
            # Bounds and a list: the list's pages within the bounds.
            values = {
                p
                for p in values
                if (state.low is None or p >= state.low) and (state.high is None or p <= state.high)
            }
        elif name == "page":
            if state.low is not None and state.high is not None and state.low > state.high:
                return None
            kwargs.update(page_min=state.low, page_max=state.high)
        if values is None:
            continue
        if not values:
            return None
        target = FIELDS[name]
        if target == "path":
            kwargs["source_glob"] = _exact_path(values)
        elif target in kwargs:  # source and source_id name one field
            both = set(kwargs[target]) & values
            if not both:
                return None
            kwargs[target] = tuple(sorted(both))
        else:
            kwargs[target] = tuple(sorted(values))
    return QueryFilter(**kwargs)


def _exact_path(values: set[str]) -> str:
    if len(values) > 1:
        raise unsupported("'path' in a list of several paths (use 'source' $in)")
    (path,) = values
    if any(c in path for c in "*?[]"):
        raise UnsupportedFilterError(
            f"filter 'path' {path!r}: * ? [ ] would read as a glob; pass "
            "QueryFilter(source_glob=...) to match by glob"
        )
    return path
