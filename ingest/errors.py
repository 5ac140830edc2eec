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
