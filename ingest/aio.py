"""Async clients bound to the event loop that uses them, for stores with a native async API."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """One async client per event loop, opened on its first use in that loop.

    An async client's channels belong to the loop that opened them: reused from another
    loop (a second ``asyncio.run``, a test framework's loop) they hang or raise. So each
    running loop gets its own client, closed by `aclose` or `close`, or else when its loop
    shuts down (``asyncio.run`` finalizes the loop's async generators, and a suspended one
    holds each client). Concurrent first uses in one loop share one open.
    """

    def __init__(
        self,
        open: Callable[[], Coroutine[Any, Any, T]],
        close: Callable[[T], Coroutine[Any, Any, None]],
    ) -> None:
        self._open = open
        self._close = close
        self._lock = threading.Lock()
        self._made: dict[asyncio.AbstractEventLoop, asyncio.Task[_Held[T]]] = {}

    async def get(self) -> T:
        """This loop's client, opened now if it has none (an open that failed is retried)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._made = {lp: t for lp, t in self._made.items() if not lp.is_closed()}
            task = self._made.get(loop)
            if task is None or (task.done() and not _ok(task)):
                task = self._made[loop] = loop.create_task(self._held())
        # Shielded: one caller cancelled must not cancel the open the others wait for.
        return (await asyncio.shield(task)).client

    async def _held(self) -> _Held[T]:
        client = await self._open()
        keeper = self._keeper(client)
        await keeper.asend(None)  # started: the loop now closes it when it shuts down
        return _Held(client, keeper)

    async def _keeper(self, client: T) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await self._close(client)

    async def aclose(self) -> None:
        """Close the running loop's client, and the others as `close` does."""
        loop = asyncio.get_running_loop()
        with self._lock:
            mine = self._made.pop(loop, None)
        self.close()
        if mine is not None and _ok(mine):
            await mine.result().keeper.aclose()

    def close(self) -> None:
        """Close every client whose loop can still run its close; forget them all.

        One of a loop running in this thread (a sync close inside async code) closes as a
        task, one of a loop running in another thread through that loop; a closed loop
        closed its clients as it shut down.
        """
        with self._lock:
            made, self._made = self._made, {}
        here = _running_loop()
        for loop, task in made.items():
            if loop.is_closed() or not _ok(task):
                continue
            closing = _shut(task.result().keeper)
            if loop is here:
                loop.create_task(closing)
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(closing, loop)
            else:
                loop.run_until_complete(closing)


class _Held(Generic[T]):
    """A loop's client and the suspended generator that closes it."""

    def __init__(self, client: T, keeper: AsyncGenerator[None, None]) -> None:
        self.client = client
        self.keeper = keeper


async def _shut(keeper: AsyncGenerator[None, None]) -> None:
    await keeper.aclose()  # a coroutine, which tasks and other threads' loops take


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _ok(task: asyncio.Task[Any]) -> bool:
    """Whether `task` opened its client."""
    return task.done() and not task.cancelled() and task.exception() is None
