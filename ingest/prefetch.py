"""Run an iterator ahead of its consumer in a background thread, a bounded number of items.

The sync engine reads prepared files through this so that files go on being parsed
(in this process or in workers) while the main thread embeds and writes the previous
batch. The bound keeps memory flat however many files a run has: the producer waits
once `limit` items are ready and not yet taken.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_ITEM, _DONE, _ERROR = range(3)
_POLL = 0.1
"""Seconds between checks for a consumer that stopped early."""


class Prefetch(Generic[T]):
    """Iterates `source` in a thread; items, the end and any exception reach the consumer
    in order. Close it (or exhaust it) to stop the thread."""

    def __init__(self, source: Iterable[T], limit: int = 8) -> None:
        self._source = source
        self._queue: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=max(1, limit))
        self._stop = threading.Event()
        self._working = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def working(self) -> bool:
        """Whether the producer is producing now, not waiting for room or finished."""
        return self._working.is_set()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._thread is None:
            # The producer runs in the consumer's context: a Prefect flow's tasks, submitted
            # from this thread, must still belong to its flow run.
            context = contextvars.copy_context()
            self._thread = threading.Thread(
                target=context.run, args=(self._run,), name="headwater-prefetch", daemon=True
            )
            self._thread.start()
        kind, value = self._queue.get()
        if kind == _DONE:
            self._queue.put((_DONE, None))  # later calls end too
            raise StopIteration
        if kind == _ERROR:
            assert isinstance(value, BaseException)
            raise value
        return value  # type: ignore[return-value]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # The producer finishes the item in hand (a file being parsed) on its own; a
            # daemon thread cannot hold the process open.
            self._thread.join(timeout=_POLL * 2)

    def _put(self, entry: tuple[int, object]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        it = iter(self._source)
        try:
            while not self._stop.is_set():
                self._working.set()
                try:
                    item = next(it)
                except StopIteration:
                    break
                finally:
                    self._working.clear()
                if not self._put((_ITEM, item)):
                    return
        except BaseException as exc:
            self._put((_ERROR, exc))
            return
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        self._put((_DONE, None))
