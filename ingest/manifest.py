"""The manifest: what the store holds, per document, as last committed.

SQLite, one file under the state folder. Rows are scoped by a *target* (backend,
location, collection, model), so pointing the config at another store starts that
store's manifest from empty instead of trusting rows that describe a different store.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from headwater.ingest.errors import ReadOnlyStateError, host_error, is_read_only
from headwater.ingest.readonly import cannot_write, open_read_only

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    target TEXT NOT NULL,
    source_id TEXT NOT NULL,
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    chunker TEXT NOT NULL,
    chunk_count INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (target, source_id)
);
CREATE TABLE IF NOT EXISTS chunks (
    target TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    meta_hash TEXT NOT NULL,
    PRIMARY KEY (target, chunk_id)
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks (target, source_id);
CREATE TABLE IF NOT EXISTS failures (
    target TEXT NOT NULL,
    source_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    settings TEXT NOT NULL,
    reason TEXT NOT NULL,
    failed_at REAL NOT NULL,
    PRIMARY KEY (target, source_id)
);
"""
_IN_BATCH = 1000
"""Document ids per lookup statement."""
_ENTRY_COLUMNS = (
    "source_id, source, path, fingerprint, content_hash, chunker, chunk_count, updated_at"
)


@dataclass(frozen=True)
class ManifestEntry:
    source_id: str
    source: str
    path: str
    fingerprint: str
    content_hash: str
    chunker: str
    chunk_count: int
    updated_at: float = 0.0


@dataclass(frozen=True)
class FailureEntry:
    """A file whose content could not be ingested, as it was when it failed."""

    source_id: str
    fingerprint: str
    settings: str
    """The chunker and loading settings it failed under (see `planning.failure_key`)."""
    reason: str


class Manifest:
    """Read and commit manifest rows for one target. Opens the database on first use."""

    def __init__(
        self, path: Path, target: str, *, former: str | None = None, same_place: str = ""
    ) -> None:
        self.path = path
        self.target = target
        self.former = former
        """A LIKE pattern for keys an older version gave this target's rows; such rows are
        taken over when this target has none (see `KnowledgeState.manifest_target`)."""
        self.same_place = same_place
        """The former key of this very place, preferred when `former` matches several."""
        self._db: sqlite3.Connection | None = None
        self.read_only = False
        """Opened in a folder this process cannot write: reads work, writes raise
        ReadOnlyStateError."""

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = self._open()
            except (OSError, sqlite3.Error) as exc:
                if not (is_read_only(exc) or cannot_write(self.path.parent)):
                    problem = host_error(exc, self.path)
                    if problem is None:
                        raise
                    raise problem from exc
                self._db = self._open_read_only()
                self.read_only = True
            self._adopt_former_rows(self._db)
        return self._db

    def _adopt_former_rows(self, db: sqlite3.Connection) -> None:
        if self.former is None:
            return
        mine = (
            "SELECT 1 FROM files WHERE target = ? UNION ALL SELECT 1 FROM failures WHERE target = ?"
        )
        if db.execute(mine, (self.target, self.target)).fetchone():
            return
        olds = {
            row[0]
            for table in ("files", "failures")
            for row in db.execute(
                f"SELECT DISTINCT target FROM {table} WHERE target LIKE ? ESCAPE '\\'",
                (self.former,),
            )
        }
        old = self.same_place if self.same_place in olds else None
        if old is None and len(olds) == 1:
            old = olds.pop()
        if old is None:
            return
        if self.read_only:
            self.target = old
            return
        with _Transaction(db, self.path):
            for table in ("files", "chunks", "failures"):
                db.execute(f"UPDATE {table} SET target = ? WHERE target = ?", (self.target, old))

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _open_read_only(self) -> sqlite3.Connection:
        if self.path.exists():
            return open_read_only(self.path)
        # Nothing was ever committed here: an empty manifest, as a fresh folder has.
        db = sqlite3.connect(":memory:", isolation_level=None)
        db.executescript(_SCHEMA)
        return db

    def entries(self) -> dict[str, ManifestEntry]:
        rows = self.db.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM files WHERE target = ?", (self.target,)
        )
        return {r[0]: ManifestEntry(*r) for r in rows}

    def entries_of(self, source_ids: Iterable[str]) -> dict[str, ManifestEntry]:
        """The rows of these documents (those recorded), one query per thousand."""
        unique = list(dict.fromkeys(source_ids))
        found: dict[str, ManifestEntry] = {}
        for start in range(0, len(unique), _IN_BATCH):
            rows = self.db.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM files WHERE target = ?"
                " AND source_id IN (SELECT value FROM json_each(?))",
                (self.target, json.dumps(unique[start : start + _IN_BATCH])),
            )
            found.update((r[0], ManifestEntry(*r)) for r in rows)
        return found

    @contextmanager
    def listing(self) -> Iterator[Listed]:
        """A run's record of the documents its listing saw, for the rows it did not see.

        The ids go to a temporary table of this connection (on disk past SQLite's small
        cache, gone when the block ends): a set of 100,000 ids in Python would be memory
        that grows with the corpus for a question SQLite answers with its index."""
        db = self.db
        db.execute("DROP TABLE IF EXISTS temp.listed")
        db.execute("CREATE TEMP TABLE listed (source_id TEXT PRIMARY KEY) WITHOUT ROWID")
        try:
            yield Listed(db, self.target)
        finally:
            db.execute("DROP TABLE IF EXISTS temp.listed")

    def failures(self) -> dict[str, FailureEntry]:
        rows = self.db.execute(
            "SELECT source_id, fingerprint, settings, reason FROM failures WHERE target = ?",
            (self.target,),
        )
        return {r[0]: FailureEntry(*r) for r in rows}

    def forget_failures(self, source_ids: Iterable[str]) -> None:
        with self._transaction() as db:
            db.executemany(
                "DELETE FROM failures WHERE target = ? AND source_id = ?",
                [(self.target, sid) for sid in source_ids],
            )

    def chunk_hashes(self, source_id: str) -> dict[str, str]:
        """chunk id -> metadata hash of every chunk committed for a document."""
        rows = self.db.execute(
            "SELECT chunk_id, meta_hash FROM chunks WHERE target = ? AND source_id = ?",
            (self.target, source_id),
        )
        return dict(rows.fetchall())

    def chunk_hashes_of(self, source_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """`chunk_hashes` of many documents in one query per thousand (an empty mapping for
        a document with no chunks committed)."""
        unique = list(dict.fromkeys(source_ids))
        found: dict[str, dict[str, str]] = {sid: {} for sid in unique}
        for start in range(0, len(unique), _IN_BATCH):
            rows = self.db.execute(
                "SELECT source_id, chunk_id, meta_hash FROM chunks WHERE target = ?"
                " AND source_id IN (SELECT value FROM json_each(?))",
                (self.target, json.dumps(unique[start : start + _IN_BATCH])),
            )
            for sid, cid, meta in rows:
                found[sid][cid] = meta
        return found

    def commit_batch(
        self,
        documents: Iterable[tuple[ManifestEntry, Mapping[str, str]]] = (),
        touched: Iterable[tuple[str, str]] = (),
        failures: Iterable[FailureEntry] = (),
    ) -> None:
        """One transaction for a written batch: documents with their chunk hashes replace
        what was recorded; `touched` (source id, fingerprint) are files whose bytes did not
        change under a new fingerprint; `failures` failed on their content."""
        now = time.time()
        with self._transaction() as db:
            for entry, chunks in documents:
                self._remove(db, entry.source_id)
                db.execute(
                    "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.target,
                        entry.source_id,
                        entry.source,
                        entry.path,
                        entry.fingerprint,
                        entry.content_hash,
                        entry.chunker,
                        len(chunks),
                        now,
                    ),
                )
                db.executemany(
                    "INSERT INTO chunks VALUES (?, ?, ?, ?)",
                    [(self.target, cid, entry.source_id, h) for cid, h in chunks.items()],
                )
            db.executemany(
                "UPDATE files SET fingerprint = ? WHERE target = ? AND source_id = ?",
                [(fingerprint, self.target, sid) for sid, fingerprint in touched],
            )
            db.executemany(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (self.target, f.source_id, f.fingerprint, f.settings, f.reason, now)
                    for f in failures
                ],
            )

    def remove(self, source_ids: Iterable[str]) -> None:
        with self._transaction() as db:
            for sid in source_ids:
                self._remove(db, sid)

    def copy_to(self, other: Manifest) -> int:
        """Make `other` (another target, maybe another file) describe exactly what this one
        does (documents, chunks and remembered failures), in one transaction on `other`;
        returns the documents copied."""
        files = self.db.execute(
            "SELECT source_id, source, path, fingerprint, content_hash, chunker, chunk_count,"
            " updated_at FROM files WHERE target = ?",
            (self.target,),
        ).fetchall()
        chunks = self.db.execute(
            "SELECT chunk_id, source_id, meta_hash FROM chunks WHERE target = ?", (self.target,)
        ).fetchall()
        # The memory of files that failed on their content travels too, so the first sync on
        # the new store does not parse them again (they fail there the same way).
        failures = self.db.execute(
            "SELECT source_id, fingerprint, settings, reason, failed_at FROM failures"
            " WHERE target = ?",
            (self.target,),
        ).fetchall()
        with other._transaction() as db:
            for table in ("files", "chunks", "failures"):
                db.execute(f"DELETE FROM {table} WHERE target = ?", (other.target,))
            db.executemany(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(other.target, *row) for row in files],
            )
            db.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?)", [(other.target, *row) for row in chunks]
            )
            db.executemany(
                "INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?)",
                [(other.target, *row) for row in failures],
            )
        return len(files)

    def chunk_sources(self) -> dict[str, str]:
        """chunk id -> document id of every chunk committed for this target."""
        rows = self.db.execute(
            "SELECT chunk_id, source_id FROM chunks WHERE target = ?", (self.target,)
        )
        return dict(rows.fetchall())

    def counts(self) -> tuple[int, int]:
        """(documents, chunks) committed for this target."""
        files = self.db.execute("SELECT COUNT(*) FROM files WHERE target = ?", (self.target,))
        chunks = self.db.execute("SELECT COUNT(*) FROM chunks WHERE target = ?", (self.target,))
        return int(files.fetchone()[0]), int(chunks.fetchone()[0])

    def last_commit(self) -> float | None:
        row = self.db.execute("SELECT MAX(updated_at) FROM files WHERE target = ?", (self.target,))
        value = row.fetchone()[0]
        return float(value) if value is not None else None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _remove(self, db: sqlite3.Connection, source_id: str) -> None:
        db.execute("DELETE FROM files WHERE target = ? AND source_id = ?", (self.target, source_id))
        db.execute(
            "DELETE FROM chunks WHERE target = ? AND source_id = ?", (self.target, source_id)
        )
        db.execute(
            "DELETE FROM failures WHERE target = ? AND source_id = ?", (self.target, source_id)
        )

    def _transaction(self) -> _Transaction:
        db = self.db
        if self.read_only:
            raise ReadOnlyStateError(self.path.parent)
        return _Transaction(db, self.path)


class Listed:
    """The document ids a run listed so far (see `Manifest.listing`)."""

    def __init__(self, db: sqlite3.Connection, target: str) -> None:
        self._db = db
        self._target = target

    def add(self, source_ids: Sequence[str]) -> None:
        """Record listed ids: one statement per call, so call it with a batch."""
        self._db.execute(
            "INSERT OR IGNORE INTO temp.listed SELECT value FROM json_each(?)",
            (json.dumps(list(source_ids)),),
        )

    def unlisted(self, only: Collection[str] = ()) -> Iterator[ManifestEntry]:
        """The manifest's rows whose document was not listed (of `only`, if given, or
        below one of them: a named folder stands for its files), read as they are
        consumed."""
        query = (
            f"SELECT {_ENTRY_COLUMNS} FROM files WHERE target = ?"
            " AND source_id NOT IN (SELECT source_id FROM temp.listed)"
        )
        args: tuple[str, ...] = (self._target,)
        if only:
            query += (
                " AND (source_id IN (SELECT value FROM json_each(?)) OR EXISTS (SELECT 1"
                " FROM json_each(?) WHERE substr(source_id, 1, length(value) + 1) = value || '/'))"
            )
            args += (json.dumps(list(only)),) * 2
        for row in self._db.execute(query, args):
            yield ManifestEntry(*row)

    def missing(self, source_ids: Collection[str]) -> list[str]:
        """Those of `source_ids` that were not listed."""
        rows = self._db.execute(
            "SELECT value FROM json_each(?) WHERE value NOT IN (SELECT source_id FROM temp.listed)",
            (json.dumps(list(source_ids)),),
        )
        return [r[0] for r in rows]


class _Transaction:
    """One write; a full disk or a read-only file is raised as the error that says so,
    after the rollback that keeps the manifest as it was."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.path = path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            problem = host_error(exc, self.path)
            if problem is None:
                raise
            raise problem from exc
        return self.db

    def __exit__(self, exc_type: object, exc: BaseException | None, _: object) -> None:
        if exc is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error as failed:
                exc = failed
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        problem = host_error(exc, self.path)
        if problem is not None:
            raise problem from exc
        if exc_type is None:
            raise exc
