"""Parse files in worker processes, each file under a time limit and a memory limit.

unstructured runs third-party parsers (pdfminer, lxml, python-docx, pandoc) on whatever
the sources hold; one of them can hang or allocate without bound on a hostile file. In a
worker, that costs one file: the worker is killed, the file is reported with the limit
it broke, and a fresh worker takes the next file.

At most `workers` files are in flight, so memory stays flat however large the corpus;
results come back as they finish. The engine reads them through a prefetching thread
(`ingest.prefetch`), so workers go on parsing while the main process embeds.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import resource
import signal
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess

from ingest.config import LoadingConfig
from ingest.planning import PlannedFile
from ingest.prepare import InProcess, Prepared, PrepareExecutor, Preparer, failure

log = logging.getLogger(__name__)

POLL_S = 0.2
"""How often busy workers' memory and deadlines are checked."""

_PRELOAD = ["ingest.prepare", "ingest.loading", "unstructured.partition.auto"]
"""Imported once in the fork server, so a worker (and its replacement) starts warm."""


def executor_for(config: LoadingConfig) -> PrepareExecutor:
    """The executor `loading.workers` asks for: in this process (0) or a process pool."""
    if config.workers == 0:
        return InProcess()
    return ProcessPool(config.workers, config.timeout_s, config.max_memory_mb)


def _context() -> BaseContext:
    # fork would copy the parent's threads' locks (the embedder's, the prefetch thread's);
    # a fork server forks from a clean, single-threaded process that imported the parsers.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _serve(conn: Connection, preparer: Preparer, max_memory_mb: int) -> None:
    """A worker's life: prepare the files it is sent until told to stop or orphaned."""
    # Ctrl-C goes to the whole process group; the parent decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit = max_memory_mb * 2**20
    # A hard cap on the heap, so a runaway allocation fails fast with MemoryError here
    # instead of pushing the machine into swap; the parent also watches resident memory.
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if item is None:
            return
        try:
            result: Prepared = preparer.prepare_one(item)
        except MemoryError:
            result = failure(item, f"parsing needed more than {max_memory_mb} MB")
        except Exception as exc:  # a parser bug fails its file, not the worker
            result = failure(item, f"parser failed: {type(exc).__name__}: {exc}")
        conn.send(result)


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    item: PlannedFile | None = None
    started: float = 0.0

    def rss_mb(self) -> float:
        """Resident memory of the worker and anything it started (pandoc, tesseract)."""
        import psutil

        try:
            proc = psutil.Process(self.process.pid)
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total / 2**20

    def kill(self) -> None:
        import psutil

        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                child.kill()
        self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


class ProcessPool:
    """Prepare files in `workers` processes, each file within `timeout_s` and `max_memory_mb`."""

    def __init__(self, workers: int, timeout_s: float, max_memory_mb: int) -> None:
        if workers < 1:
            raise ValueError("a process pool needs at least one worker")
        self.workers = workers
        self.timeout_s = timeout_s
        self.max_memory_mb = max_memory_mb

    def _start(self, ctx: BaseContext, preparer: Preparer) -> _Worker:
        parent, child = ctx.Pipe()
        process = ctx.Process(  # type: ignore[attr-defined]
            target=_serve,
            args=(child, preparer, self.max_memory_mb),
            name="headwater-parser",
            daemon=True,
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def map(self, preparer: Preparer, items: Sequence[PlannedFile]) -> Iterator[Prepared]:
        if not items:
            return
        ctx = _context()
        pending = deque(items)
        idle: list[_Worker] = []
        busy: list[_Worker] = []
        size = min(self.workers, len(items))
        try:
            while pending or busy:
                while pending and len(busy) < size:
                    worker = idle.pop() if idle else self._start(ctx, preparer)
                    worker.item, worker.started = pending.popleft(), time.monotonic()
                    try:
                        worker.conn.send(worker.item)
                    except (OSError, ValueError):
                        pending.appendleft(worker.item)
                        worker.kill()
                        continue
                    busy.append(worker)
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy], POLL_S)
                for worker in list(busy):
                    result = self._check(worker)
                    if result is None:
                        continue
                    busy.remove(worker)
                    if worker.process.is_alive() and not worker.conn.closed:
                        idle.append(worker)
                    # Time spent here, while the consumer holds the result, must not count
                    # against the workers still parsing: _check reads a finished result
                    # before it looks at the clock.
                    yield result
        finally:
            for worker in idle:
                with contextlib.suppress(OSError, ValueError):
                    worker.conn.send(None)
            for worker in busy + idle:
                worker.process.join(timeout=0.5 if worker in idle else 0)
                if worker.process.is_alive():
                    worker.kill()

    def _check(self, worker: _Worker) -> Prepared | None:
        """The worker's result if it has one, a failure if it broke a limit, else None."""
        item = worker.item
        assert item is not None
        try:
            if worker.conn.poll():
                result: Prepared = worker.conn.recv()
                worker.item = None
                return result
        except (EOFError, OSError):
            pass  # it died while sending; reported below
        if not worker.process.is_alive():
            worker.process.join(timeout=1)
            worker.kill()
            return failure(item, _death(worker.process.exitcode, self.max_memory_mb))
        if time.monotonic() - worker.started > self.timeout_s:
            worker.kill()
            log.warning("%s: parsing took too long; worker killed", item.file.source_id)
            return failure(item, f"parsing took longer than {self.timeout_s:g} s")
        if worker.rss_mb() > self.max_memory_mb:
            worker.kill()
            log.warning("%s: parsing used too much memory; worker killed", item.file.source_id)
            return failure(item, f"parsing needed more than {self.max_memory_mb} MB")
        return None


def _death(exitcode: int | None, max_memory_mb: int) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        if name == "SIGKILL":
            return (
                f"the parser process was killed (SIGKILL; out of memory? each worker may use "
                f"{max_memory_mb} MB)"
            )
        return f"the parser process crashed ({name})"
    return f"the parser process exited unexpectedly (exit code {exitcode})"
