"""One executor shape: bounded maps over any concurrent.futures.Executor."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from headwater.ingest.executors import BoundedMap, InProcessExecutor, local_workers


def test_results_arrive_and_the_submitter_stays_bounded() -> None:
    submitted: list[int] = []

    def items():
        for i in range(20):
            submitted.append(i)
            yield i

    with ThreadPoolExecutor(4) as pool:
        work = BoundedMap(pool, lambda i: i * i, items(), limit=3)
        it = iter(work)
        first_item, first = next(it)
        time.sleep(0.2)
        # One handed over and refilled: never more than `limit` submitted and not taken.
        assert len(submitted) <= 4
        rest = {item: f.result() for item, f in it}
    assert {first_item: first.result(), **rest} == {i: i * i for i in range(20)}


def test_an_error_stays_with_its_item() -> None:
    def square(i: int) -> int:
        if i == 2:
            raise ValueError("bad file")
        return i * i

    with InProcessExecutor() as pool:
        results = dict(BoundedMap(pool, square, range(4), limit=2))
    assert [results[i].result() for i in (0, 1, 3)] == [0, 1, 9]
    with pytest.raises(ValueError, match="bad file"):
        results[2].result()


def test_closing_early_cancels_what_has_not_started() -> None:
    started: list[int] = []
    gate = threading.Event()

    def slow(i: int) -> int:
        started.append(i)
        gate.wait(5)
        return i

    with ThreadPoolExecutor(1) as pool:
        work = BoundedMap(pool, slow, range(10), limit=4)
        it = iter(work)
        gate.set()
        next(it)
        it.close()
    assert len(started) <= 5


def test_local_workers_say_who_shares_the_cores() -> None:
    with InProcessExecutor() as pool:
        assert local_workers(pool) == 1
    with ThreadPoolExecutor(2) as pool:
        assert local_workers(pool) == 0  # unknown: assumed to run elsewhere
