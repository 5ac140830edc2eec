"""Errors a user can act on. Each message names the file or config key at fault."""

from __future__ import annotations


class HeadwaterError(Exception):
    """Base class for errors that are reported to the user without a traceback."""


class ConfigError(HeadwaterError):
    """The config file or an environment override is invalid."""


class LoadError(HeadwaterError):
    """A file could not be turned into text."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class StoreError(HeadwaterError):
    """The vector store refused an operation or holds incompatible data."""


class MissingExtraError(HeadwaterError):
    """An optional dependency is not installed."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs an optional dependency: pip install 'headwater[{extra}]'")
        self.extra = extra
