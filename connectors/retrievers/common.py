"""What the LangChain and LlamaIndex adapters share: filters in either form, and why they
do not write."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from headwater.connectors.retrievers.filters import UnsupportedFilterError, to_query_filter
from headwater.connectors.retrievers.filters import from_langchain as _from_langchain
from headwater.ingest.errors import HeadwaterError
from headwater.ingest.models import QueryFilter


class ReadOnlyKnowledgeBaseError(HeadwaterError, NotImplementedError):
    """A framework asked a Headwater knowledge base to store or delete chunks itself."""


def refuse_write(operation: str) -> ReadOnlyKnowledgeBaseError:
    return ReadOnlyKnowledgeBaseError(
        f"{operation}: a Headwater knowledge base is fed by `headwater sync` from its "
        "sources, not written through a framework. Chunks written here would belong to no "
        "source, so `headwater verify` would report them as drift and --repair would "
        "delete them. Put the text in a file under a configured source and sync."
    )


class Nothing:
    """A filter no chunk can pass (``file_type`` both pdf and md): the search finds nothing."""


NOTHING = Nothing()


def langchain_filter(value: Any) -> QueryFilter | Nothing | None:
    """LangChain's ``filter`` (its dict form, or a Headwater `QueryFilter`) for a search."""
    if value is None or isinstance(value, QueryFilter):
        return value
    if not isinstance(value, Mapping):
        raise UnsupportedFilterError(
            f"filter must be a dict or a QueryFilter, not {type(value).__name__}"
        )
    if not value:
        return None
    translated = to_query_filter(_from_langchain(value))
    return NOTHING if translated is None else translated


def awaitable(knowledge_base: object, method: str) -> Callable[..., Awaitable[Any]]:
    """The knowledge base's async twin of `method` (``asearch`` for ``search``), native
    where its store is; an object without one has its sync method run on a worker thread."""
    native = getattr(knowledge_base, "a" + method, None)
    if native is not None:
        return native
    sync = getattr(knowledge_base, method)

    async def threaded(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(sync, *args, **kwargs)

    return threaded
