"""Prefetch: items in order, the producer held to its bound, errors reach the consumer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from headwater.ingest.prefetch import Prefetch


def test_items_arrive_in_order_and_the_producer_stays_bounded() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(20):
            produced.append(i)
            yield i

    it = Prefetch(source(), limit=3)
    assert next(it) == 0
    time.sleep(0.3)
    # One taken, three waiting in the queue, one in the producer's hand.
    assert len(produced) <= 5
    assert [0, *it] == list(range(20))
    with pytest.raises(StopIteration):
        next(it)


def test_an_error_in_the_producer_is_raised_to_the_consumer() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise ValueError("bad file")

    it = Prefetch(source())
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad file"):
        next(it)


def test_close_stops_the_producer() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = Prefetch(source(), limit=2)
    next(it)
    it.close()
    assert closed.wait(2)
