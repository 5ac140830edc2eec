"""Parse files in worker processes, each file under a time limit and a memory limit.

unstructured runs third-party parsers (pdfminer, lxml, python-docx, pandoc) on whatever
the sources hold; one of them can hang or allocate without bound on a hostile file. In a
worker, that costs one file: pebble kills a worker that overruns its time and replaces
one that dies, a cap on the heap turns a runaway allocation into an error, and the file
is reported with the limit it broke.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import resource
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing.context import BaseContext
from typing import Any, TypeVar

from headwater.ingest.config import LoadingConfig
from headwater.ingest.errors import HeadwaterError
from headwater.ingest.executors import InProcessExecutor
from headwater.ingest.logs import route_logs

T = TypeVar("T")

_PRELOAD = ["headwater.ingest.prepare", "headwater.ingest.loading", "unstructured.partition.auto"]
"""Imported once in the fork server, so a worker (and its replacement) starts warm."""


class ParseLimitError(HeadwaterError):
    """A file broke a worker's time or memory limit, or killed its worker."""

    seconds: float | None = None
    """How long the worker spent on the file, when known (its time limit)."""


def executor_for(config: LoadingConfig) -> Executor:
    """The executor `loading.workers` asks for: a thread here (0) or the parser pool."""
    if config.workers == 0:
        return InProcessExecutor()
    return ParserPool(config.workers, config.timeout_s, config.max_memory_mb)


def _context() -> BaseContext:
    # fork would copy the parent's threads' locks (the embedder's, the executor's); a fork
    # server forks from a clean, single-threaded process that imported the parsers.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _start_worker(max_memory_mb: int, log_level: int = logging.WARNING) -> None:
    # Ctrl-C goes to the whole process group; the parent decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parsers' own warnings ("incorrect startxref pointer") are the debug log here too;
    # without a handler, Python would print every one of them on stderr.
    route_logs(log_level)
    # A hard cap on the heap (inherited by pandoc or tesseract started from here), so a
    # runaway allocation fails fast with MemoryError instead of pushing the machine into
    # swap.
    limit = max_memory_mb * 2**20
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    # Import the parsers before the first file, so that a fresh worker (one replaces each
    # that broke a limit) does not spend a file's time limit on imports; on a busy machine
    # that alone took over 20 s and failed good files as too slow.
    from headwater.ingest.loading import warm_up

    warm_up()


class ParserPool(Executor):
    """`workers` processes, each task within `timeout_s` and `max_memory_mb`.

    A future fails with `ParseLimitError` when its task broke a limit or its worker died;
    other exceptions (a parser bug) come back as they were raised. The processes start on
    the first `submit`.
    """

    def __init__(self, workers: int, timeout_s: float, max_memory_mb: int) -> None:
        if workers < 1:
            raise ValueError("a parser pool needs at least one worker")
        self.workers = self.local_workers = workers
        self.timeout_s = timeout_s
        self.max_memory_mb = max_memory_mb
        self._pool: Any = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        with self._lock:
            if self._pool is None:
                from pebble import ProcessPool

                self._pool = ProcessPool(
                    max_workers=self.workers,
                    initializer=_start_worker,
                    initargs=(self.max_memory_mb, logging.getLogger().getEffectiveLevel()),
                    context=_context(),
                )
            inner = self._pool.schedule(fn, args=args, kwargs=kwargs, timeout=self.timeout_s)
        outer: Future[T] = Future()
        outer.set_running_or_notify_cancel()
        inner.add_done_callback(lambda done: self._settle(outer, done))
        return outer

    def _settle(self, outer: Future[T], inner: Future[T]) -> None:
        from pebble import ProcessExpired

        try:
            outer.set_result(inner.result())
        except FutureTimeout:
            slow = ParseLimitError(
                f"parsing took longer than {self.timeout_s:g} s; raise loading.timeout_s "
                "to give big files more time"
            )
            slow.seconds = self.timeout_s
            outer.set_exception(slow)
        except MemoryError:
            outer.set_exception(
                ParseLimitError(
                    f"parsing needed more than {self.max_memory_mb} MB; raise "
                    "loading.max_memory_mb to give big files more memory"
                )
            )
        except ProcessExpired as exc:
            outer.set_exception(ParseLimitError(_death(exc.exitcode, self.max_memory_mb)))
        except BaseException as exc:
            outer.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        # Workers may be deep in a parser; stopping kills them rather than wait for it.
        pool.stop()
        if wait:
            pool.join(timeout=5)


def _death(exitcode: int | None, max_memory_mb: int) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        if name == "SIGKILL":
            return (
                f"the parser process was killed (SIGKILL; out of memory? each worker may use "
                f"{max_memory_mb} MB: loading.max_memory_mb, and loading.workers run at once)"
            )
        return f"the parser process crashed ({name})"
    return f"the parser process exited unexpectedly (exit code {exitcode})"
