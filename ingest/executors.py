"""Map a function over files, bounded, while the caller embeds: one shape for every runner.

An executor is a `concurrent.futures.Executor`: a thread in this process
(`InProcessExecutor`), the isolated parser pool (`headwater.ingest.workers.ParserPool`),
a Prefect task runner (`headwater.flows.sync.TaskRunnerExecutor`) or a Dask cluster
(`headwater.connectors.cluster.DaskExecutor`). `BoundedMap` keeps at most `limit` files
submitted and not yet taken, so memory stays flat however large the corpus, and files go
on being prepared while the caller embeds and writes the previous batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class InProcessExecutor(ThreadPoolExecutor):
    """Prepare files one at a time on a thread of this process, beside the embedding."""

    local_workers = 1
    """Files this executor parses on this machine's cores at once (see `local_workers`)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="headwater-prepare")


def local_workers(executor: Executor) -> int:
    """How many of the executor's workers share this machine's cores with the embedder.

    Executors that run elsewhere (a Dask cluster) say 0 by not naming a number.
    """
    return int(getattr(executor, "local_workers", 0) or 0)


def in_flight(executor: Executor, default: int) -> int:
    """Files the executor may hold submitted and not yet taken: its own `files_in_flight`
    (a cluster keeps more busy than one machine, still a fixed number), else `default`."""
    return int(getattr(executor, "files_in_flight", 0) or default)


class BoundedMap(Generic[T, R]):
    """``fn(item)`` for each item on `executor`, at most `limit` in flight; iterating gives
    ``(item, future)`` pairs as they finish, each future done (its result or exception)."""

    def __init__(
        self, executor: Executor, fn: Callable[[T], R], items: Iterable[T], limit: int
    ) -> None:
        self._executor = executor
        self._fn = fn
        self._items = iter(items)
        self._limit = max(1, limit)
        self._pending: dict[Future[R], T] = {}

    @property
    def running(self) -> int:
        """Submitted and not finished: files being prepared (or queued for it) now."""
        return sum(1 for f in self._pending if not f.done())

    def __iter__(self) -> Iterator[tuple[T, Future[R]]]:
        try:
            self._fill()
            while self._pending:
                done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
                for future in done:
                    item = self._pending.pop(future)
                    # Refill before handing the result over: the next file is prepared
                    # while the caller embeds this one.
                    self._fill()
                    yield item, future
        finally:
            self.close()

    def close(self) -> None:
        """Cancel what has not started; what runs finishes on its own."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()

    def _fill(self) -> None:
        while len(self._pending) < self._limit:
            for item in self._items:
                self._pending[self._executor.submit(self._fn, item)] = item
                break
            else:
                return
