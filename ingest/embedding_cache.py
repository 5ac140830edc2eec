"""Vectors already computed, keyed by (model, chunk text), in the state folder.

A chunk id includes its source and chunker settings, so the store cannot tell that a
chunk which moved to another file, or which a new chunking strategy cut the same way,
was embedded before. The cache can: it is keyed by what the model actually reads.
Least recently used vectors are dropped once it holds `max_entries`.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headwater.ingest.errors import host_error

if TYPE_CHECKING:
    from headwater.ingest.embedding import Embedder, ThreadBudget

Vectors = np.ndarray[Any, np.dtype[np.float32]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    key BLOB PRIMARY KEY,
    vector BLOB NOT NULL,
    used REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vectors_used ON vectors (used);
"""

_LOOKUP_BATCH = 500
"""Keys per SELECT, below SQLite's limit on bound parameters."""


def cache_key(model: str, text: str) -> bytes:
    # The NUL keeps ("ab", "c") and ("a", "bc") apart.
    return hashlib.blake2b(f"{model}\0{text}".encode(), digest_size=20).digest()


class EmbeddingCache:
    """Opens its SQLite file on first use; one writer at a time, as the sync lock ensures."""

    def __init__(self, path: Path, model: str, max_entries: int = 500_000) -> None:
        self.path = path
        self.model = model
        self.max_entries = max_entries
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            with self._host_errors():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path)
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    # Losing the last writes on a power cut only costs re-embedding them.
                    db.execute("PRAGMA synchronous=NORMAL")
                    db.executescript(_SCHEMA)
                except sqlite3.Error:
                    db.close()
                    raise
            self._db = db
        return self._db

    @contextmanager
    def _host_errors(self) -> Iterator[None]:
        """A full disk or a read-only folder is raised as the error that says so; the
        transaction that met it is rolled back, so the cache stays as it was."""
        try:
            yield
        except (OSError, sqlite3.Error) as exc:
            problem = host_error(exc, self.path)
            if problem is None:
                raise
            raise problem from exc

    def get(self, texts: Sequence[str], dimension: int) -> dict[int, Vectors]:
        """Cached vectors by index into `texts`."""
        keys = [cache_key(self.model, t) for t in texts]
        found: dict[bytes, bytes] = {}
        for i in range(0, len(keys), _LOOKUP_BATCH):
            part = keys[i : i + _LOOKUP_BATCH]
            rows = self.db.execute(
                f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})",
                part,
            )
            found.update(rows)
        out: dict[int, Vectors] = {}
        for i, key in enumerate(keys):
            blob = found.get(key)
            if blob is not None and len(blob) == 4 * dimension:
                out[i] = np.frombuffer(blob, dtype=np.float32)
        if out:
            now = time.time()
            with self._host_errors(), self.db:
                self.db.executemany(
                    "UPDATE vectors SET used = ? WHERE key = ?",
                    [(now, keys[i]) for i in out],
                )
        return out

    def put(self, texts: Sequence[str], vectors: Vectors) -> None:
        now = time.time()
        rows = [
            (cache_key(self.model, t), np.asarray(v, dtype=np.float32).tobytes(), now)
            for t, v in zip(texts, vectors, strict=True)
        ]
        with self._host_errors(), self.db:
            self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
            self._evict()

    def _evict(self) -> None:
        (count,) = self.db.execute("SELECT count(*) FROM vectors").fetchone()
        excess = count - self.max_entries
        if excess > 0:
            self.db.execute(
                "DELETE FROM vectors WHERE key IN (SELECT key FROM vectors ORDER BY used LIMIT ?)",
                (excess,),
            )

    def __len__(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM vectors").fetchone()[0])

    def clear(self) -> None:
        with self.db:
            self.db.execute("DELETE FROM vectors")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def embed(
        self,
        embedder: Embedder,
        texts: Sequence[str],
        token_counts: Sequence[int] | None = None,
        *,
        threads: ThreadBudget | None = None,
    ) -> tuple[Vectors, set[int]]:
        """Vectors for `texts`, and the indices not embedded now: found in the cache, or
        repeating a text earlier in `texts`."""
        dim = embedder.dimension
        hits = self.get(texts, dim)
        missing = [i for i in range(len(texts)) if i not in hits]
        out = np.empty((len(texts), dim), dtype=np.float32)
        for i, v in hits.items():
            out[i] = v
        if missing:
            # Equal texts in one batch are embedded once.
            unique = list(dict.fromkeys(texts[i] for i in missing))
            where = {t: n for n, t in enumerate(unique)}
            counts = None
            if token_counts is not None:
                first = {texts[i]: token_counts[i] for i in reversed(missing)}
                counts = [first[t] for t in unique]
            vectors = embedder.embed(unique, counts, threads=threads)
            embedded: set[str] = set()
            for i in missing:
                out[i] = vectors[where[texts[i]]]
                if texts[i] in embedded:
                    hits[i] = out[i]
                embedded.add(texts[i])
            self.put(unique, vectors)
        return out, set(hits)
