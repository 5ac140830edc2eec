"""What a long run has done so far, said every so often where no progress bar shows it:
`headwater sync --json` or off a terminal, `headwater watch`, a Prefect flow run's log."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

NOUNS = {"load": ("files", "loaded"), "embed": ("chunks", "embedded")}
"""How a stage's count reads in a heartbeat; other stages read as `stage done/total`."""


@dataclass
class Tally:
    """Counts per stage from progress callbacks (`progress(stage, done, total)`).

    A stage reported in rounds (the sync embeds batch by batch, each counted from 0)
    adds up: the rounds that finished are carried into the next one's count.
    """

    started: float = field(default_factory=time.monotonic)
    current: dict[str, tuple[int, int]] = field(default_factory=dict)
    carried: dict[str, int] = field(default_factory=dict)

    def update(self, stage: str, done: int, total: int) -> None:
        previous = self.current.get(stage)
        if previous is not None and previous[0] >= previous[1] and done < previous[0]:
            self.carried[stage] = self.carried.get(stage, 0) + previous[1]
        self.current[stage] = (done, total)

    def counts(self, stage: str) -> tuple[int, int]:
        """Done and total of `stage` over all its rounds so far."""
        done, total = self.current.get(stage, (0, 0))
        carried = self.carried.get(stage, 0)
        return carried + done, carried + total

    def line(self, now: float | None = None) -> str:
        """One heartbeat: e.g. `40/151 files loaded, 1,234 chunks embedded; 2m30s elapsed`."""
        elapsed = (time.monotonic() if now is None else now) - self.started
        parts = []
        for stage in list(self.current):  # progress callbacks may add a stage meanwhile
            done, total = self.counts(stage)
            noun, verb = NOUNS.get(stage, ("", ""))
            if stage == "embed":  # its total grows batch by batch: only the count says much
                parts.append(f"{done:,} {noun} {verb}")
            elif noun:
                parts.append(f"{done:,}/{total:,} {noun} {verb}")
            else:
                parts.append(f"{stage} {done:,}/{total:,}")
        return f"{', '.join(parts) or 'starting'}; {duration(elapsed)} elapsed"


HEARTBEAT_SECONDS = 30.0
"""How often a run without bars says where it is."""


class Heartbeat:
    """Hands `say` a line about the run (`Tally.line`) every `every` seconds while
    `beating()` lasts; the run's progress callbacks go to `progress`. `every` <= 0: silent.
    """

    def __init__(self, say: Callable[[str], None], every: float = HEARTBEAT_SECONDS) -> None:
        self.say = say
        self.every = every
        self.tally = Tally()

    def progress(self, stage: str, done: int, total: int) -> None:
        self.tally.update(stage, done, total)

    @contextmanager
    def beating(self) -> Iterator[Tally]:
        """One run: counts from zero, and its clock starts now."""
        self.tally = tally = Tally()
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.every):
                self.say(tally.line())

        thread = None
        if self.every > 0:
            # In the caller's context: a Prefect run logger finds its run (and its API) there.
            context = contextvars.copy_context()
            thread = threading.Thread(
                target=context.run, args=(beat,), name="headwater-heartbeat", daemon=True
            )
            thread.start()
        try:
            yield tally
        finally:
            stop.set()
            if thread is not None:
                thread.join()


def duration(seconds: float) -> str:
    """`42s`, `2m05s`, `1h02m`: long enough to read at a glance."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
