"""What a knowledge base holds: its store, the manifest that describes it, and their lock.

The engine writes through it; `verify`, `migrate` and `status` read and repair through
it without an engine. Opens nothing until used.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from filelock import FileLock, Timeout

from headwater.ingest.errors import HeadwaterError, host_error
from headwater.ingest.manifest import Manifest
from headwater.ingest.store import VectorStore


class SyncLockedError(HeadwaterError):
    pass


_IN_STATE = "state:"
"""Prefix of a manifest key for a store inside the state folder (see `manifest_target`)."""


def _like(text: str) -> str:
    """`text` matched literally by LIKE ... ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class KnowledgeState:
    """One store, the manifest rows that describe it, and the state folder's lock."""

    def __init__(self, store: VectorStore, state_dir: Path, *, backend: str, model: str) -> None:
        self.store = store
        self.state_dir = state_dir
        self.backend = backend
        self.model = model

    @property
    def target(self) -> str:
        """This store, collection and model, wherever they are (two states with equal
        targets are one store)."""
        return f"{self.backend}|{self.store.location}|{self.store.collection}|{self.model}"

    @property
    def manifest_target(self) -> str:
        """What the manifest rows are keyed by: `target`, except that a store inside the
        state folder (Milvus Lite, FAISS) is named by its place in the folder, so a copy
        of the folder restored at another path still finds its rows."""
        inside = self._inside_state()
        if inside is None:
            return self.target
        return f"{self.backend}|{_IN_STATE}{inside}|{self.store.collection}|{self.model}"

    def _inside_state(self) -> str | None:
        """The store's path relative to the state folder, when it lies inside it."""
        location = self.store.location
        if "://" in location:
            return None
        for root in (self.state_dir, self.state_dir.resolve()):
            for place in (Path(location), Path(location).resolve()):
                if place.is_relative_to(root) and place != root:
                    return place.relative_to(root).as_posix()
        return None

    def _former_targets(self) -> str | None:
        """A LIKE pattern for the keys older versions gave this store: its absolute path,
        wherever the folder was then."""
        inside = self._inside_state()
        if inside is None:
            return None
        parts = (self.backend, "%/" + _like(inside), self.store.collection, self.model)
        return "|".join(p if i == 1 else _like(p) for i, p in enumerate(parts))

    @property
    def describe(self) -> str:
        return f"{self.backend} {self.store.location} (collection {self.store.collection})"

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest(
            self.state_dir / "manifest.sqlite",
            self.manifest_target,
            former=self._former_targets(),
            same_place=self.target,
        )

    def lock(self, timeout: float = 0) -> FileLock:
        """An exclusive lock on the state folder, so two syncs never interleave."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(self.state_dir / "sync.lock", timeout=timeout)

    def sync_running(self) -> bool:
        """Whether some process holds the state folder's sync lock right now."""
        try:
            lock = self.lock()
            lock.acquire()
        except Timeout:
            return True
        except OSError:
            # A read-only folder: ask without writing (a sync of another user may hold it).
            return _held_elsewhere(self.state_dir / "sync.lock")
        lock.release()
        return False

    @contextmanager
    def exclusive(self, wait: float = 0) -> Iterator[None]:
        """Hold the state folder's lock, or raise SyncLockedError after `wait` seconds
        (ReadOnlyStateError or DiskFullError when the lock file cannot be written)."""
        try:
            lock = self.lock(timeout=wait)
            lock.acquire()
        except Timeout:  # before OSError: filelock's Timeout is a TimeoutError
            raise SyncLockedError(
                f"another sync is running on {self.state_dir} "
                f"(lock file {self.state_dir / 'sync.lock'}); wait for it to finish"
            ) from None
        except OSError as exc:
            problem = host_error(exc, self.state_dir)
            if problem is None:
                raise
            raise problem from exc
        try:
            yield
        finally:
            lock.release()

    def close(self) -> None:
        self.store.close()
        if "manifest" in self.__dict__:  # opened; closing must not open it
            self.manifest.close()


def _held_elsewhere(path: Path) -> bool:
    """Whether another process holds an exclusive lock on `path`, asked read-only."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # no lock file: no sync has ever run here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
