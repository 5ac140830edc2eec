"""`PerLoop`: one async client per event loop, each closed once, whichever way it ends."""

from __future__ import annotations

import asyncio
import threading

import pytest

from headwater.ingest.aio import PerLoop


class Clients:
    """Opens numbered clients bound to the loop that opened them, and records closes."""

    def __init__(self, fail_first: bool = False) -> None:
        self.opened: list[tuple[int, asyncio.AbstractEventLoop]] = []
        self.closed: list[int] = []
        self.fail_first = fail_first

    async def open(self) -> int:
        await asyncio.sleep(0.01)  # concurrent first uses overlap here
        if self.fail_first:
            self.fail_first = False
            raise ConnectionError("refused")
        self.opened.append((len(self.opened), asyncio.get_running_loop()))
        return len(self.opened) - 1

    async def close(self, client: int) -> None:
        assert self.opened[client][1] is asyncio.get_running_loop()  # closed in its own loop
        self.closed.append(client)


def test_a_loop_shares_one_client_and_closes_it_when_it_shuts_down() -> None:
    clients = Clients()
    per_loop = PerLoop(clients.open, clients.close)

    async def use() -> list[int]:
        return list(await asyncio.gather(*(per_loop.get() for _ in range(5))))

    assert asyncio.run(use()) == [0] * 5
    assert clients.closed == [0]  # asyncio.run's shutdown closed it
    assert asyncio.run(use()) == [1] * 5  # a new loop, a new client
    assert clients.closed == [0, 1]


def test_a_failed_open_is_tried_again() -> None:
    clients = Clients(fail_first=True)
    per_loop = PerLoop(clients.open, clients.close)

    async def use() -> int:
        with pytest.raises(ConnectionError):
            await per_loop.get()
        return await per_loop.get()

    assert asyncio.run(use()) == 0


def test_close_from_inside_the_loop_and_from_another_thread() -> None:
    clients = Clients()
    per_loop = PerLoop(clients.open, clients.close)

    async def sync_close_inside() -> None:
        await per_loop.get()
        per_loop.close()  # a sync close in async code: closes as a task of this loop
        await asyncio.sleep(0.01)
        assert clients.closed == [0]
        assert await per_loop.get() == 1  # reopened
        await per_loop.aclose()
        assert clients.closed == [0, 1]

    asyncio.run(sync_close_inside())

    loop = asyncio.new_event_loop()
    ready, done = threading.Event(), threading.Event()

    async def serve() -> None:
        await per_loop.get()
        ready.set()
        while not done.is_set():
            await asyncio.sleep(0.01)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    assert ready.wait(5)
    per_loop.close()  # from this thread, through the other thread's running loop
    done.set()
    thread.join(5)
    loop.close()
    assert clients.closed == [0, 1, 2]
