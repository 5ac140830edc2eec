"""Errors a user can act on. Each message names the file or config key at fault."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")


def redact(text: str) -> str:
    """`text` without the user:password part of any URL in it, for messages and logs."""
    return _USERINFO.sub("", text)


class HeadwaterError(Exception):
    """Base class for errors that are reported to the user without a traceback."""


class ConfigError(HeadwaterError):
    """The config file or an environment override is invalid."""


class LoadError(HeadwaterError):
    """A file could not be turned into text."""

    def __init__(self, path: str, reason: str, *, permanent: bool = False) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.permanent = permanent
        """The content itself cannot be ingested: the same bytes with the same settings
        fail the same way, so the file is not parsed again until one of them changes."""


class StoreError(HeadwaterError):
    """The vector store refused an operation or holds incompatible data."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached or keeps failing: worth trying again later."""


class StoreBusyError(StoreError):
    """Another process has the store open and the backend allows only one (Milvus Lite)."""


class MissingExtraError(HeadwaterError):
    """An optional dependency is not installed."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs an optional dependency: pip install 'headwater[{extra}]'")
        self.extra = extra


# -- exit codes and the machine's own errors ----------------------------------------------

EXIT_FAILED_FILES = 1
"""A sync ran and some files failed (or `verify` found drift)."""
EXIT_CONFIG = 2
"""The config, the store or the command line is at fault: fix it and run again."""
EXIT_ENVIRONMENT = 3
"""The machine is in the way: a full disk, a read-only state folder, a model not loadable."""


class HostError(HeadwaterError):
    """The machine, not the config or a file, stops the run; fixing it needs no edit."""

    exit_code = EXIT_ENVIRONMENT


class DiskFullError(HostError):
    """A write found no space left; nothing half-written was recorded."""

    def __init__(self, path: object) -> None:
        super().__init__(f"disk full at {path}: free space and run the sync again")
        self.path = path


class ReadOnlyStateError(HostError):
    """The state folder (manifest, lock, embedded store) cannot be written."""

    def __init__(self, path: object) -> None:
        super().__init__(
            f"the state folder {path} is read-only (sync, verify and migrate write there): "
            "make it writable, or point state.dir (HEADWATER_STATE__DIR) at a writable copy; "
            "query and status work on a read-only state"
        )
        self.path = path


class ModelLoadError(HostError):
    """The embedding model (or its tokenizer) cannot be loaded."""


_DISK_FULL_ERRNOS = frozenset({28, 122})  # ENOSPC, EDQUOT
_READ_ONLY_ERRNOS = frozenset({30, 13, 1})  # EROFS, EACCES, EPERM


def _caused_by(
    exc: BaseException, kind: type[BaseException], errnos: frozenset[int], words: tuple[str, ...]
) -> bool:
    """Whether `exc` or an error it wraps is a `kind`, an OSError with one of `errnos`, or
    says one of `words` (client libraries pass the OS's or SQLite's message on as text)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        if isinstance(seen, OSError) and seen.errno in errnos:
            return True
        text = str(seen).lower()
        if any(w in text for w in words):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) says no space is left: an OSError, SQLite's
    SQLITE_FULL, or a client library's message carrying the OS's words."""
    return _caused_by(
        exc,
        DiskFullError,
        _DISK_FULL_ERRNOS,
        ("database or disk is full", "no space left on device"),
    )


def is_read_only(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is a write refused by a read-only file or folder."""
    return _caused_by(
        exc, ReadOnlyStateError, _READ_ONLY_ERRNOS, ("readonly database", "read-only file system")
    )


def _no_space_at(path: object) -> bool:
    """Whether the disk holding `path` (a file or folder, maybe not yet made) is full."""
    import shutil
    from pathlib import Path

    if not isinstance(path, str | Path) or "://" in str(path):
        return False
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        return shutil.disk_usage(where).free < _FULL_BELOW
    except OSError:
        return False


_FULL_BELOW = 1 << 20
"""Free bytes under which an unexplained I/O error is taken for a full disk."""


def host_error(exc: BaseException, path: object) -> HostError | None:
    """The clear error for a full disk or a read-only folder behind `exc`, else None.

    SQLite reports a -shm file it cannot grow on a full disk as "disk I/O error"; that
    error counts as a full disk when the disk at `path` has no room left.
    """
    if is_disk_full(exc) or ("disk i/o error" in str(exc).lower() and _no_space_at(path)):
        return exc if isinstance(exc, DiskFullError) else DiskFullError(path)
    if is_read_only(exc):
        return exc if isinstance(exc, ReadOnlyStateError) else ReadOnlyStateError(path)
    return None
