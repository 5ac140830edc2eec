"""Fault-injection points for the crash-consistency test (tests/test_kill.py).

With ``HEADWATER_FAULT=<point>:<n>`` set, the process kills itself with SIGKILL the n-th
time it reaches `fault_point(<point>)`, so the test can stop a sync at an exact stage
(after a file is loaded, before embedding, after a store write, before the manifest
commit, after a delete) instead of at a lucky moment. Unset, a point costs one
environment lookup and does nothing. Points are placed in ingest/sync.py and
ingest/retry.py.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "HEADWATER_FAULT"
_hits: Counter[str] = Counter()


def fault_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


FILE_ENV = "HEADWATER_FAULT_FILE"


def fault_file(path: str) -> None:
    """With ``HEADWATER_FAULT_FILE=<name>`` the process kills itself (SIGKILL) when it starts
    preparing a file whose path ends with <name>, wherever that is (a Dask worker, a
    parser process). ``<name>@<marker path>``: only the first process to get there dies
    (it creates the marker), so the file's retry elsewhere succeeds. For the cluster tests
    (tests/test_cluster.py); unset, it costs one environment lookup."""
    spec = os.environ.get(FILE_ENV)
    if not spec:
        return
    name, _, marker = spec.partition("@")
    if not path.endswith(name):
        return
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)
