"""`headwater watch`: turn file events in the local source folders into ingestion runs.

Events are grouped (watchfiles' debounce), each file waits until its size and mtime stop
changing, and the batch's document ids go either to Prefect as a `FILES_CHANGED` event
(the served files-changed deployment runs a sync of exactly those files) or, with no
Prefect API configured, to a sync run in this process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from headwater.compose import build_engine, build_sources
from headwater.connectors.sources.local import LocalSource
from headwater.flows.config import HeadwaterConfig
from headwater.ingest.engine import Progress
from headwater.ingest.errors import HeadwaterError
from headwater.ingest.planning import Scope
from headwater.ingest.report import SyncReport

log = logging.getLogger(__name__)

EVENT_PATHS_MAX = 500
"""Document ids per event: keeps payloads small when a whole folder lands at once."""


@dataclass(frozen=True)
class WatchedRoot:
    """A local source folder and the filter its config applies."""

    source: str
    root: Path
    wants: Callable[[str], bool]
    """Whether a path relative to the root is one of the source's documents."""


def watched_roots(config: HeadwaterConfig) -> list[WatchedRoot]:
    """The configured sources that are local folders; others sync on their schedules."""
    roots = []
    for source in build_sources(config):
        if not isinstance(source, LocalSource):
            log.warning("source %s is not a local folder: it is not watched", source.name)
            continue
        roots.append(WatchedRoot(source.name, source.root.resolve(), _wanted_by(source)))
    return roots


def _wanted_by(source: LocalSource) -> Callable[[str], bool]:
    def wants(rel: str) -> bool:
        return bool(source.include.match_file(rel) and not source.exclude.match_file(rel))

    return wants


def document_id(roots: list[WatchedRoot], path: str) -> str | None:
    """The document id of a changed path, or None when no source wants it."""
    p = Path(path)
    for r in roots:
        try:
            rel = p.relative_to(r.root).as_posix()
        except ValueError:
            continue
        if r.wants(rel):
            return f"{r.source}:{rel}"
    return None


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _age(signature: tuple[int, int] | None, now: float) -> float:
    """Seconds since the file was last modified (0 if in the future); a file that is gone
    has nothing left to wait for."""
    return float("inf") if signature is None else max(0.0, now - signature[1] / 1e9)


def settle(paths: list[Path], quiet_s: float, timeout_s: float) -> list[Path]:
    """Wait until each existing path's size and mtime held still for `quiet_s`; return
    those that did (deleted ones count as settled). Files still changing at the timeout
    are left out: their next write is a new event."""
    if quiet_s <= 0:
        return paths
    last = {p: _signature(p) for p in paths}
    # A file is still since it was last written: one moved in with an old mtime is ready
    # at once, and a note saved in one go waits quiet_s from its save, not from the event.
    start, wall = time.monotonic(), time.time()
    still_since = {p: start - _age(last[p], wall) for p in paths}
    deadline = start + timeout_s
    pending = {p for p in paths if start - still_since[p] < quiet_s}
    while pending and time.monotonic() < deadline:
        time.sleep(min(quiet_s / 10, 0.05))
        now = time.monotonic()
        for p in list(pending):
            sig = _signature(p)
            if sig != last[p]:
                last[p], still_since[p] = sig, now
            elif now - still_since[p] >= quiet_s:
                pending.discard(p)
    if pending:
        log.warning("still being written after %.0fs, left for later: %s", timeout_s, pending)
    return [p for p in paths if p not in pending]


def _files(changes: Iterable[tuple[object, str]]) -> list[Path]:
    """The files a batch of changes names. A new folder stands for every file in it: files
    written into it before the watcher added it were never reported on their own."""
    out: list[Path] = []
    for _, name in changes:
        path = Path(name)
        if path.is_dir():
            out.extend(p for p in path.rglob("*") if p.is_file())
        else:
            out.append(path)  # a file, or a path that is gone (a deleted file)
    return out


def batches(config: HeadwaterConfig, stop: threading.Event | None = None) -> Iterator[list[str]]:
    """Batches of changed document ids, each settled and sorted, until `stop` is set."""
    import watchfiles

    roots = watched_roots(config)
    if not roots:
        raise ValueError("no local source folder to watch")
    opts = config.orchestration.watch
    for changes in watchfiles.watch(
        *(r.root for r in roots),
        debounce=opts.debounce_ms,
        step=50,
        stop_event=stop,
        recursive=True,
        ignore_permission_denied=True,
    ):
        by_id = {}
        for path in _files(changes):
            sid = document_id(roots, str(path))
            if sid is not None:
                by_id[sid] = path
        ready = set(settle(list(by_id.values()), opts.settle_s, opts.settle_timeout_s))
        ids = sorted(sid for sid, p in by_id.items() if p in ready)
        if ids:
            yield ids


WARM_UP_TEXT = (
    "Travel costs are reimbursed within thirty days of the trip. Submit the receipts with "
    "the expense form; your manager approves the claim and finance pays it with the next "
    "salary. Ask the finance team about costs that the policy does not list."
)


class InProcessRunner:
    """Runs each batch as a scoped sync here, with everything a run needs kept warm: one
    engine, its loaded model, its chunkers (tokenizers) and its parser processes live as
    long as the watcher, so a file dropped in costs its own parsing and embedding only.

    The store and the manifest are closed after every run, so between runs other
    processes (`headwater query`, a Milvus Lite reader) can open them.
    """

    def __init__(self, config: HeadwaterConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.engine = build_engine(config, progress=progress)

    def warm_up(self) -> None:
        """Load the model, build the chunkers and start the parser processes now, before
        the first event, instead of in the first event's run."""
        engine = self.engine
        # The first calls of a model are slower than later ones (thread pools, kernels).
        for _ in range(2):
            engine.embedder.embed([WARM_UP_TEXT])
        engine.preparer.warm_up(WARM_UP_TEXT)
        if engine.executor is not None:
            # Parser processes start (importing the parsers) on first use, and each builds
            # its own chunkers on its first file: one task each now. They run at once, so
            # each goes to a process of its own.
            workers = getattr(engine.executor, "local_workers", 1) or 1
            tasks = [
                engine.executor.submit(engine.preparer.warm_up, WARM_UP_TEXT)
                for _ in range(workers)
            ]
            for task in tasks:
                task.result()
        # The first open of the store is the slow one (Milvus Lite starts its server and
        # loads the collection); later runs reopen it in milliseconds.
        try:
            engine.state.store.ensure_collection(engine.collection_spec)
        except HeadwaterError as exc:
            log.warning("could not open the store yet (%s); the first run will", exc)
        finally:
            engine.state.close()

    def __call__(self, ids: list[str]) -> SyncReport:
        try:
            return self.engine.run(
                wait=self.config.orchestration.lock_wait_s, scope=Scope(source_ids=frozenset(ids))
            )
        finally:
            self.engine.state.close()

    def close(self) -> None:
        self.engine.close()


class EventEmitter:
    """Sends each batch to Prefect as `FILES_CHANGED` events about this config."""

    def __init__(self, config_file: str) -> None:
        from headwater.flows.deployments import resource_id

        self.config_file = config_file
        self.resource = {
            "prefect.resource.id": resource_id(config_file),
            "prefect.resource.name": os.path.basename(config_file),
        }

    def __call__(self, ids: list[str]) -> None:
        from prefect.events import emit_event

        from headwater.flows.deployments import FILES_CHANGED

        for start in range(0, len(ids), EVENT_PATHS_MAX):
            emit_event(
                event=FILES_CHANGED,
                resource=self.resource,
                payload={"paths": ids[start : start + EVENT_PATHS_MAX]},
            )
