"""What a knowledge base holds: its store, the manifest that describes it, and their lock.

The engine writes through it; `verify`, `migrate` and `status` read and repair through
it without an engine. Opens nothing until used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from filelock import FileLock, Timeout

from headwater.ingest.errors import HeadwaterError
from headwater.ingest.manifest import Manifest
from headwater.ingest.store import VectorStore


class SyncLockedError(HeadwaterError):
    pass


class KnowledgeState:
    """One store, the manifest rows that describe it, and the state folder's lock."""

    def __init__(self, store: VectorStore, state_dir: Path, *, backend: str, model: str) -> None:
        self.store = store
        self.state_dir = state_dir
        self.backend = backend
        self.model = model

    @property
    def target(self) -> str:
        """What the manifest rows describe: this store, collection and model."""
        return f"{self.backend}|{self.store.location}|{self.store.collection}|{self.model}"

    @property
    def describe(self) -> str:
        return f"{self.backend} {self.store.location} (collection {self.store.collection})"

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest(self.state_dir / "manifest.sqlite", self.target)

    def lock(self, timeout: float = 0) -> FileLock:
        """An exclusive lock on the state folder, so two syncs never interleave."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(self.state_dir / "sync.lock", timeout=timeout)

    def sync_running(self) -> bool:
        """Whether some process holds the state folder's sync lock right now."""
        lock = self.lock()
        try:
            lock.acquire()
        except Timeout:
            return True
        lock.release()
        return False

    @contextmanager
    def exclusive(self, wait: float = 0) -> Iterator[None]:
        """Hold the state folder's lock, or raise SyncLockedError after `wait` seconds."""
        lock = self.lock(timeout=wait)
        try:
            lock.acquire()
        except Timeout:
            raise SyncLockedError(
                f"another sync is running on {self.state_dir} "
                f"(lock file {self.state_dir / 'sync.lock'}); wait for it to finish"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def close(self) -> None:
        self.store.close()
        self.manifest.close()
