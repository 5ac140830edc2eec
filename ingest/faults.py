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
