"""Where log records go: Headwater's own at their level, other libraries' to the debug log.

Parsers and clients (pdfminer, pypdf, unstructured, pymilvus, gRPC) log what they work
around at WARNING ("incorrect startxref pointer", "Cannot set non-stroke color"): a user
reads those as failures. Headwater says what matters in its own words (a file's failure
reason, a warning in the report), so another library's records are the debug log: its
warnings show from `--log-level info` (`-v`), the rest with `--log-level debug`. The same routing runs in the parser worker processes.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

OWN_LOGGERS = ("headwater", "distributed")
"""Loggers whose records keep their level: ours, and Dask's (a lost worker is a WARNING
a user should see)."""


def shown(name: str, level: int, threshold: int) -> bool:
    """Whether a record of logger `name` at `level` is shown at log level `threshold`.

    Headwater's own records (and anything CRITICAL) at their level; another library's
    only from `info` down (its warnings and errors) and, at `debug`, all of them."""
    if level >= logging.CRITICAL or any(
        name == own or name.startswith(own + ".") for own in OWN_LOGGERS
    ):
        return level >= threshold
    if threshold <= logging.DEBUG:
        return level >= threshold
    if threshold <= logging.INFO:
        return level >= logging.WARNING
    return False


class ThirdPartyToDebug(logging.Filter):
    """Keeps another library's records out of a handler unless the log level asks."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        return shown(record.name, record.levelno, self.threshold)


def quiet_native_libraries(level: int) -> None:
    """Silence what C libraries print themselves (gRPC's core logs a GOAWAY from the
    embedded Milvus server's keepalive at ERROR), unless the debug log is on. Takes effect
    only before the library is first imported; a variable the user set wins."""
    if level > logging.DEBUG:
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        os.environ.setdefault("GRPC_TRACE", "")


@dataclass
class Routing:
    """What `route_logs` changed, so that a process running several commands (a test, an
    application embedding the CLI) can put it back."""

    handler: logging.Handler
    previous_level: int

    def undo(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self.previous_level)
        logging.captureWarnings(False)


def route_logs(level: int, handler: logging.Handler | None = None) -> Routing:
    """Send the root logger's records to `handler` (default: stderr) at `level`, other
    libraries' only as `shown` says; Python warnings (`warnings.warn`) go the same way.
    Handlers someone else put on the root stay; one from an earlier call goes."""
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    handler.addFilter(ThirdPartyToDebug(level))
    root = logging.getLogger()
    for old in list(root.handlers):
        if any(isinstance(f, ThirdPartyToDebug) for f in old.filters):
            root.removeHandler(old)
    root.addHandler(handler)
    routing = Routing(handler, root.level)
    # Records below the level are not even created: pdfminer's DEBUG is a flood.
    root.setLevel(level)
    logging.captureWarnings(True)
    quiet_native_libraries(level)
    return routing


def adopt(*names: str) -> None:
    """Hand a library's loggers back to the application's logging: some (pymilvus) give
    themselves a stderr handler when imported and stop their records there."""
    for name in names:
        for logger_name in [name, *_children(name)]:
            logger = logging.getLogger(logger_name)
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
            logger.setLevel(logging.NOTSET)


def _children(name: str) -> list[str]:
    return [n for n in logging.root.manager.loggerDict if n.startswith(name + ".")]
