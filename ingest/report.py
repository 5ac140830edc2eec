"""What a sync did: counts per run and per file, failures with reasons, time per stage."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from headwater.ingest.models import FileResult, FileStatus

STAGES = ("list_plan", "load", "chunk", "embed", "write", "commit")

STAGE_TIMES = (
    "busy time per stage, summed over the parser workers; stages overlap (files are "
    "parsed while earlier batches are embedded and written), so they can add up to more "
    "than the wall time"
)


@dataclass
class SyncReport:
    files: list[FileResult] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    source_errors: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    wall_seconds: float = 0.0
    _clock: float = field(default_factory=time.perf_counter, repr=False)
    store: str = ""
    model_max_tokens: int = 0
    """The embedding model's input window, known once something was embedded."""
    unopened: int = 0
    """Unchanged files the plan did not open: counted here, with no entry in `files` (at
    100,000 files, an entry each was most of a no-change sync's memory)."""

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[stage] = (
                self.stage_seconds.get(stage, 0.0) + time.perf_counter() - t0
            )

    def stop_clock(self) -> None:
        self.wall_seconds = time.perf_counter() - self._clock

    def times(self) -> str:
        """The wall time, then the busy time per stage, saying that they overlap."""
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in self.stage_seconds.items())
        return f"time: {self.wall_seconds:.2f}s wall; {STAGE_TIMES}: {stages}"

    def add(self, result: FileResult) -> None:
        self.files.append(result)

    @property
    def failures(self) -> list[FileResult]:
        return [f for f in self.files if f.status is FileStatus.FAILED]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.source_errors

    def file_counts(self) -> dict[str, int]:
        counts = Counter(f.status.value for f in self.files)
        counts[FileStatus.UNCHANGED.value] += self.unopened
        return {s.value: counts.get(s.value, 0) for s in FileStatus}

    def chunk_counts(self) -> dict[str, int]:
        return {
            "embedded": sum(f.embedded for f in self.files),
            "written": sum(f.written for f in self.files),
            "deleted": sum(f.deleted for f in self.files),
        }

    @property
    def truncated(self) -> int:
        """Chunks embedded in this run that the model read only in part."""
        return sum(f.truncated for f in self.files)

    def warnings(self) -> list[str]:
        """What went through but deserves a look; each says what to change."""
        out = []
        if self.truncated:
            files = [f.source_id for f in self.files if f.truncated]
            shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
            out.append(
                f"{self.truncated} chunk(s) in {len(files)} file(s) are longer than the "
                f"embedding model's input window ({self.model_max_tokens} tokens) and were "
                f"truncated when embedded, so their tail cannot be found: {shown}. Use a "
                "strategy sized in tokens (recursive or headers with unit = 'tokens', token, "
                "semantic) or a smaller chunk_size."
            )
        out += [f"{f.source_id}: {w}" for f in self.files for w in f.warnings]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "store": self.store,
            "files": self.file_counts(),
            "chunks": self.chunk_counts(),
            "truncated": self.truncated,
            "warnings": self.warnings(),
            "failures": [
                {"path": f.source_id, "reason": f.reason, "stale": f.stale} for f in self.failures
            ],
            "source_errors": self.source_errors,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "stage_seconds_are": STAGE_TIMES,
            "wall_seconds": round(self.wall_seconds, 3),
            "per_file": [
                {
                    k: round(v, 3) if k == "seconds" else v
                    for k, v in asdict(f).items()
                    if v is not None and v != ()
                }
                for f in self.files
                if f.status is not FileStatus.UNCHANGED
            ],
        }
