"""FAISS: an in-process vector index on disk, with SQLite beside it as the source of truth.

Layout of a collection folder (``<state>/faiss/<collection>/`` unless ``path`` says otherwise):

- ``meta.sqlite``: one row per chunk (text, metadata, and the vector as float32 bytes),
  the collection's spec, and a generation counter bumped by every write that changes
  which vectors the index must hold.
- ``chunks_fts`` in the same database: an SQLite FTS5 full-text index over the chunk
  texts (external content: the text is stored once, in ``chunks``), kept in step by
  triggers inside each write's transaction, so it always holds exactly the stored rows.
- ``index.<layout>.<generation>.faiss``: the FAISS index as of that generation. It is a
  cache: when the file for the current generation is missing, unreadable or written for
  another layout, the index is rebuilt from the vectors in SQLite.

Each write is one SQLite transaction, committed before the in-memory index is touched,
and an index file only ever appears whole (temp file, fsync, rename). A crash at any
point therefore leaves SQLite complete and, at worst, an index file for an older
generation, which is ignored.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Concatenate, Literal, ParamSpec, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from headwater.ingest.errors import MissingExtraError, StoreError
from headwater.ingest.fusion import fuse_ranked
from headwater.ingest.models import (
    Chunk,
    ChunkMetadata,
    CollectionSpec,
    Fusion,
    QueryFilter,
    QueryHit,
    VectorRecord,
)
from headwater.ingest.readonly import cannot_write, open_read_only
from headwater.ingest.store import LexicalSearchUnsupportedError, VectorStore

if TYPE_CHECKING:
    import numpy.typing as npt

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_DB_NAME = "meta.sqlite"
_SCHEMA_VERSION = 2
"""1: no full-text index; 2: chunks_fts (added to a format-1 database on open)."""
_BATCH = 1000
"""Ids per SQL statement when looking rows up by chunk id."""
_STREAM = 16384
"""Vectors read from SQLite per step when (re)building or searching exactly."""
_EXACT_LIMIT = 10_000
"""A filter matching at most this many records is searched exactly over their stored
vectors: cheaper than a selector over the whole index, and exact for every index type."""
_MIN_POINTS_PER_CENTROID = 39
"""FAISS warns that k-means below 39 points per list gives poor centroids; IVF waits
for that many vectors before it trains."""
_MAX_POINTS_PER_CENTROID = 256
"""FAISS's own k-means subsamples to this many points per list; no use reading more."""
_TOMBSTONE_FRACTION = 0.25
"""HNSW cannot remove vectors; once this share of the graph is deleted vectors, it is
rebuilt. Each rebuild follows at least n/4 deletions, so its cost is amortized."""
_STALE_TEMP_SECONDS = 3600
"""Temp files left by a save killed midway are deleted once this old; a live save, even
of a large index, finishes long before."""

_COLUMNS = "id, chunk_id, text, source_id, source, path, file_type, page, meta"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value NOT NULL)",
    # AUTOINCREMENT: ids are never reused, so a stale index or an HNSW tombstone can
    # never alias a newer row.
    """CREATE TABLE IF NOT EXISTS chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chunk_id TEXT NOT NULL UNIQUE,
        text TEXT NOT NULL,
        source_id TEXT NOT NULL,
        source TEXT NOT NULL,
        path TEXT NOT NULL,
        file_type TEXT NOT NULL,
        page INTEGER,
        meta TEXT NOT NULL,
        vector BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS chunks_source_id ON chunks (source_id)",
    # GLOB with a literal prefix (policies/*) can use this.
    "CREATE INDEX IF NOT EXISTS chunks_path ON chunks (path)",
)
_FTS_SCHEMA = (
    # porter: "runs" finds "running"; remove_diacritics: "cafe" finds "café".
    """CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
        text, content='chunks', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts (rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN
        INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO chunks_fts (rowid, text) VALUES (new.id, new.text);
    END""",
)


def fts_match(text: str) -> str:
    """An FTS5 query matching any word of `text` (empty when it has none).

    Each word is quoted, so FTS5 syntax in a user's query (AND, NEAR, *, column:) is text.
    unicode61 splits on everything but letters, digits and private-use characters, so
    this splits the same way, `_` included.
    """
    words = dict.fromkeys(re.findall(r"[^\W_]+", text))
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


class FaissConfig(BaseModel):
    """The ``[store.faiss]`` table."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        "",
        description="Folder holding one subfolder per collection. Relative paths are inside "
        "the state folder. Empty: 'faiss' in the state folder.",
    )
    index: Literal["flat", "ivf", "hnsw"] = Field(
        "ivf",
        description="ivf: inverted lists, searched exactly until the collection holds "
        "39 x nlist vectors, then trained on them; recall@10 0.98 at 100,000 real chunks "
        "(benchmarks/results/ann_recall.md). flat: always exact; its query time grows with "
        "the collection (12 ms at 100,000 vectors on an idle 2-core machine, 140+ ms under "
        "load). hnsw: a graph, fast and approximate; deleted vectors are skipped and the graph "
        "is rebuilt when a quarter is deleted.",
    )
    nlist: int = Field(256, ge=1, description="ivf: number of inverted lists (k-means cells).")
    nprobe: int = Field(
        64,
        ge=1,
        description="ivf: lists searched per query (recall vs speed; 64 of 256: recall@10 "
        "0.98 and 2.7 ms p50 at 100,000 chunks).",
    )
    hnsw_m: int = Field(32, ge=2, description="hnsw: neighbours per node (memory vs recall).")
    ef_search: int = Field(
        64, ge=1, description="hnsw: candidate list size per query (at least k is used)."
    )
    ef_construction: int = Field(
        128, ge=1, description="hnsw: candidate list size while building the graph."
    )


def _import_faiss() -> ModuleType:
    try:
        import faiss
    except ImportError:
        raise MissingExtraError("The FAISS store", "faiss") from None
    return faiss


def _locked(
    method: Callable[Concatenate[FaissStore, P], R],
) -> Callable[Concatenate[FaissStore, P], R]:
    """Serialize calls: the SQLite connection and the FAISS index are shared state."""

    @functools.wraps(method)
    def wrapper(self: FaissStore, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


def _json(values: Iterable[object]) -> str:
    """A JSON array for ``json_each(?)``: one parameter however many values."""
    return json.dumps(list(values), ensure_ascii=False)


def _where(filters: QueryFilter | None) -> tuple[str, list[object]]:
    """An SQL condition (empty: everything) and its parameters for `filters`."""
    if filters is None or filters.is_empty():
        return "", []
    parts: list[str] = []
    params: list[object] = []
    if filters.source_glob:
        # glob_regex rejects [...], the only syntax SQLite's GLOB has beyond * and ?, so
        # GLOB means exactly what QueryFilter.matches means (case-sensitive, * spans /).
        filters.glob_regex()
        field = filters.glob_field
        assert field in ("path", "source_id")
        parts.append(f"{field} GLOB ?")
        params.append(filters.source_glob)
    if filters.source_ids:
        parts.append("source_id IN (SELECT value FROM json_each(?))")
        params.append(_json(filters.source_ids))
    if filters.file_types:
        parts.append("file_type IN (SELECT value FROM json_each(?))")
        params.append(_json(filters.file_types))
    if filters.pages:
        parts.append("page IN (SELECT value FROM json_each(?))")
        params.append(_json(int(p) for p in filters.pages))
    if (bounds := filters.page_bounds()) is not None:
        parts.append("page >= ?")  # NULL (no page) fails it
        params.append(bounds[0])
        if bounds[1] is not None:
            parts.append("page <= ?")
            params.append(bounds[1])
    return " AND ".join(parts), params


_Row = tuple[str, str, str, str, str, str, int | None, str, bytes]
"""Values for the chunks columns from chunk_id to vector, in table order."""


def _row(record: VectorRecord) -> _Row:
    c, m = record.chunk, record.chunk.metadata
    meta = {
        "position": m.position,
        "start": m.start,
        "end": m.end,
        "pages": list(m.pages),
        "section": m.section,
        "element_types": list(m.element_types),
    }
    return (
        c.id,
        c.text,
        m.source_id,
        m.source,
        m.path,
        m.file_type,
        m.page,
        json.dumps(meta, ensure_ascii=False),
        _blob(record.vector),
    )


def _blob(vector: Sequence[float]) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _chunk(row: Sequence[Any]) -> Chunk:
    """A chunk from the columns in `_COLUMNS` order."""
    _, chunk_id, text, source_id, source, path, file_type, _page, meta_json = row[:9]
    meta = json.loads(meta_json)
    metadata = ChunkMetadata(
        source_id=source_id,
        source=source,
        path=path,
        file_type=file_type,
        position=meta["position"],
        start=meta["start"],
        end=meta["end"],
        pages=tuple(meta["pages"]),
        section=meta["section"],
        element_types=tuple(meta["element_types"]),
    )
    return Chunk(id=chunk_id, text=text, metadata=metadata)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; Windows has no directory handles)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FaissStore(VectorStore):
    """One collection: a FAISS index over int64 ids, and SQLite mapping them to chunks."""

    name: ClassVar[str] = "faiss"
    config_model: ClassVar[type[BaseModel]] = FaissConfig
    config: FaissConfig

    def __init__(self, config: BaseModel, *, collection: str, state_dir: Path) -> None:
        super().__init__(config, collection=collection, state_dir=state_dir)
        self._lock = threading.RLock()
        self._faiss: ModuleType | None = None
        self._db: sqlite3.Connection | None = None
        self._spec: CollectionSpec | None = None
        self._index: Any = None
        self._index_gen = -1
        """The SQLite generation the in-memory index reflects."""
        self._saved = False
        """Whether the index file for `_index_gen` already holds what is in memory."""
        self._tombstones: set[int] = set()
        """HNSW only: ids still in the graph whose rows are gone."""
        self._tombstone_sel: tuple[Any, Any] | None = None
        """Cached (IDSelectorNot, its inner IDSelectorBatch): Not only points at the inner."""
        self._read_only = False
        """The folder cannot be written: searches work, the index is never saved."""

    # -- places --------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        root = Path(self.config.path) if self.config.path else Path("faiss")
        if not root.is_absolute():
            root = self.state_dir / root
        return root / self.collection

    @property
    def location(self) -> str:
        return str(self.folder)

    @property
    def _layout(self) -> str:
        """What an index file was built as; a file for another layout is rebuilt."""
        c = self.config
        return {"flat": "flat", "ivf": f"ivf{c.nlist}", "hnsw": f"hnsw{c.hnsw_m}"}[c.index]

    def _index_file(self, generation: int) -> Path:
        return self.folder / f"index.{self._layout}.{generation}.faiss"

    # -- connection and transactions -----------------------------------------------

    def _connect(self, *, create: bool = False) -> sqlite3.Connection | None:
        """The metadata database; None when it does not exist and `create` is false."""
        if self._faiss is None:
            # Checked before anything else so a missing extra fails every call the same way.
            self._faiss = _import_faiss()
        if self._db is None:
            db_path = self.folder / _DB_NAME
            if not create and not db_path.exists():
                return None
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                db = self._open(db_path)
            except sqlite3.Error as exc:
                if create or not cannot_write(self.folder):
                    raise StoreError(f"cannot open FAISS metadata at {db_path}: {exc}") from None
                # A read-only folder (a restored backup, another user's state): search it.
                db = open_read_only(db_path, check_same_thread=False)
                self._read_only = True
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                db.close()
                raise StoreError(
                    f"{db_path} was written by a newer Headwater (format {version}); upgrade"
                )
            if version == 1:
                self._add_fts(db, db_path)
            self._db = db
        return self._db

    @staticmethod
    def _open(db_path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(db_path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            # WAL: a reader in another process keeps working while the sync writes.
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: once upsert returns, the sync records the chunks in its manifest;
            # the store must not lose them to a power cut after that.
            db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _add_fts(self, db: sqlite3.Connection, db_path: Path) -> None:
        """Give a format-1 collection its full-text index, built from the stored texts."""
        try:
            with self._transaction(db, write=True):
                if db.execute("PRAGMA user_version").fetchone()[0] != 1:
                    return  # another process upgraded it first
                for statement in _FTS_SCHEMA:
                    db.execute(statement)
                db.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild')")
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            # A read-only open can still search densely; lexical_query says what is missing.
            log.warning("could not add the full-text index to %s: %s", db_path, exc)

    @property
    def faiss(self) -> ModuleType:
        if self._faiss is None:
            self._faiss = _import_faiss()
        return self._faiss

    @contextmanager
    def _transaction(self, db: sqlite3.Connection, *, write: bool) -> Iterator[None]:
        """One snapshot (reads) or one atomic write; IMMEDIATE takes the write lock up front
        so the generation read at the start is still current at commit."""
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _ready(self) -> sqlite3.Connection | None:
        """The database when the collection exists."""
        db = self._connect()
        return db if db is not None and self.collection_spec() is not None else None

    @staticmethod
    def _generation(db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT value FROM info WHERE key = 'generation'").fetchone()[0])

    # -- collection ----------------------------------------------------------------

    @_locked
    def collection_spec(self) -> CollectionSpec | None:
        if self._spec is None:
            db = self._connect()
            if db is None:
                return None
            has_info = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'info'"
            ).fetchone()
            if not has_info:
                return None
            info = dict(
                db.execute("SELECT key, value FROM info WHERE key IN ('dimension', 'model')")
            )
            if "dimension" not in info:
                return None
            self._spec = CollectionSpec(int(info["dimension"]), str(info.get("model", "")))
        return self._spec

    @_locked
    def create_collection(self, spec: CollectionSpec) -> None:
        db = self._connect(create=True)
        assert db is not None
        with self._transaction(db, write=True):
            for statement in (*_SCHEMA, *_FTS_SCHEMA):
                db.execute(statement)
            # OR IGNORE: a process that created it first wins; ensure_collection then
            # compares against what it recorded.
            db.executemany(
                "INSERT OR IGNORE INTO info (key, value) VALUES (?, ?)",
                [("dimension", spec.dimension), ("model", spec.model), ("generation", 0)],
            )
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        self._spec = None

    # -- the index -----------------------------------------------------------------

    def _sync_index(self, db: sqlite3.Connection) -> Any:
        """The index matching the database's generation; call inside a transaction."""
        generation = self._generation(db)
        if self._index is not None and self._index_gen == generation:
            return self._index
        self._drop_index()
        if not self._load(db, generation):
            self._rebuild(db)
        return self._index

    def _drop_index(self) -> None:
        self._index = None
        self._index_gen = -1
        self._saved = False
        self._tombstones = set()
        self._tombstone_sel = None

    def _load(self, db: sqlite3.Connection, generation: int) -> bool:
        """Read the saved index for `generation` if there is a sound one."""
        path = self._index_file(generation)
        if not path.exists():
            return False
        faiss = self.faiss
        try:
            index = faiss.read_index(str(path))
        except (RuntimeError, MemoryError) as exc:  # damaged on disk: FAISS checks its sizes
            log.warning("%s is unreadable, rebuilding it from %s: %s", path, _DB_NAME, exc)
            return False
        live = np.fromiter((r[0] for r in db.execute("SELECT id FROM chunks")), dtype=np.int64)
        spec = self.collection_spec()
        assert spec is not None
        sound = index.d == spec.dimension and index.metric_type == faiss.METRIC_INNER_PRODUCT
        tombstones: set[int] = set()
        if sound and hasattr(index, "id_map"):
            labels = faiss.vector_to_array(index.id_map)
            extra = np.setdiff1d(labels, live)
            sound = np.setdiff1d(live, labels).size == 0
            if self.config.index == "hnsw":
                tombstones = {int(i) for i in extra}
            else:
                sound = sound and extra.size == 0
        elif sound:
            # IVF keeps its ids in the inverted lists; the generation in the file name
            # already ties it to this database, so the count is check enough.
            sound = index.ntotal == live.size
        if not sound:
            log.warning("%s does not match %s, rebuilding it", path, _DB_NAME)
            return False
        self._configure(index)
        self._index, self._index_gen, self._saved = index, generation, True
        self._tombstones = tombstones
        if self._needs_rebuild():
            self._rebuild(db)
        return True

    def _configure(self, index: Any) -> None:
        if self.config.index == "hnsw":
            self.faiss.downcast_index(index.index).hnsw.efConstruction = self.config.ef_construction

    def _train_size(self) -> int:
        return _MIN_POINTS_PER_CENTROID * self.config.nlist

    def _needs_rebuild(self) -> bool:
        """Whether the index should be rebuilt from SQLite to stay good (not to be right)."""
        index = self._index
        if self.config.index == "ivf":
            untrained = self.faiss.try_extract_index_ivf(index) is None
            return untrained and index.ntotal >= self._train_size()
        if self.config.index == "hnsw":
            return len(self._tombstones) > _TOMBSTONE_FRACTION * index.ntotal
        return False

    def _rebuild(self, db: sqlite3.Connection) -> None:
        """Build the index afresh from the stored vectors; call inside a transaction."""
        faiss = self.faiss
        spec = self.collection_spec()
        assert spec is not None
        generation = self._generation(db)
        count = int(db.execute("SELECT count(*) FROM chunks").fetchone()[0])
        train = self.config.index == "ivf" and count >= self._train_size()
        factory = {
            "flat": "IDMap,Flat",
            "hnsw": f"IDMap,HNSW{self.config.hnsw_m},Flat",
            # Untrained IVF would have no cells to put vectors in: until there are enough
            # to train on, keep them in a flat index, which searches them exactly.
            "ivf": f"IVF{self.config.nlist},Flat" if train else "IDMap,Flat",
        }[self.config.index]
        log.info(
            "building the FAISS index (%s) of %s from %d stored vectors",
            factory,
            self.location,
            count,
        )
        self._drop_index()
        index = faiss.index_factory(spec.dimension, factory, faiss.METRIC_INNER_PRODUCT)
        self._configure(index)
        if train:
            index.train(self._training_sample(db, count, spec.dimension))
        for ids, vectors in self._stream(db, "", [], spec.dimension):
            index.add_with_ids(vectors, ids)
        self._index, self._index_gen, self._saved = index, generation, False

    def _training_sample(
        self, db: sqlite3.Connection, count: int, dimension: int
    ) -> npt.NDArray[np.float32]:
        """Evenly spaced stored vectors (old and new alike), as many as k-means will use."""
        step = max(1, count // (_MAX_POINTS_PER_CENTROID * self.config.nlist))
        rows = db.execute(
            "SELECT vector FROM (SELECT vector, row_number() OVER (ORDER BY id) AS n "
            "FROM chunks) WHERE n % ? = 0",
            (step,),
        )
        return self._unit_vectors([r[0] for r in rows], dimension)

    def _unit_vectors(self, blobs: Sequence[bytes], dimension: int) -> npt.NDArray[np.float32]:
        """Normalized copies: inner product of unit vectors is the cosine."""
        x = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(-1, dimension)
        x = np.ascontiguousarray(x, dtype=np.float32).copy()
        self.faiss.normalize_L2(x)
        return x

    def _stream(
        self, db: sqlite3.Connection, where: str, params: Sequence[object], dimension: int
    ) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
        """(ids, unit vectors) of the matching rows, a bounded batch at a time."""
        cursor = db.execute(
            f"SELECT id, vector FROM chunks {'WHERE ' + where if where else ''} ORDER BY id",
            params,
        )
        while rows := cursor.fetchmany(_STREAM):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, self._unit_vectors([r[1] for r in rows], dimension)

    def _apply(self, removed: Sequence[int], added: Sequence[tuple[int, bytes]], gen: int) -> None:
        """Bring the in-memory index from gen - 1 to `gen` after a committed write."""
        spec = self.collection_spec()
        assert spec is not None and self._index is not None
        try:
            if removed:
                if self.config.index == "hnsw":
                    self._tombstones.update(removed)
                    self._tombstone_sel = None
                else:
                    self._index.remove_ids(np.asarray(removed, dtype=np.int64))
            if added:
                ids = np.fromiter((i for i, _ in added), dtype=np.int64, count=len(added))
                vectors = self._unit_vectors([b for _, b in added], spec.dimension)
                self._index.add_with_ids(vectors, ids)
            self._index_gen, self._saved = gen, False
        except BaseException:
            # SQLite has the write; a half-updated index must not be searched or saved.
            self._drop_index()
            raise
        if self._needs_rebuild():
            db = self._ready()
            assert db is not None
            with self._transaction(db, write=False):
                self._rebuild(db)

    def _save(self) -> None:
        """Write the index for its generation, whole or not at all."""
        db = self._ready()
        if self._index is None or self._saved or db is None or self._read_only:
            return
        with self._transaction(db, write=False):
            current = self._generation(db)
        if current != self._index_gen:
            return  # another process wrote since; its index (or a rebuild) supersedes ours
        target = self._index_file(self._index_gen)
        # A unique name per save: two processes may save the same generation at once.
        tmp = self.folder / f".index-{uuid.uuid4().hex}.tmp"
        try:
            self.faiss.write_index(self._index, str(tmp))
            fd = os.open(tmp, os.O_RDWR)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            _fsync_dir(self.folder)
        finally:
            tmp.unlink(missing_ok=True)
        self._saved = True
        self._remove_old_files(self._index_gen, keep=target)

    def _remove_old_files(self, generation: int, *, keep: Path) -> None:
        for path in self.folder.glob("index.*.faiss"):
            parts = path.name.split(".")
            older = len(parts) == 4 and parts[2].isdigit() and int(parts[2]) <= generation
            if path != keep and older:
                path.unlink(missing_ok=True)
        cutoff = time.time() - _STALE_TEMP_SECONDS
        for path in self.folder.glob(".index-*.tmp"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass

    # -- writes --------------------------------------------------------------------

    def _bump(self, db: sqlite3.Connection) -> int:
        db.execute("UPDATE info SET value = value + 1 WHERE key = 'generation'")
        return self._generation(db)

    @_locked
    def upsert(self, records: Sequence[VectorRecord]) -> int:
        if not records:
            return 0
        self.check_vectors(records)
        db = self._ready()
        assert db is not None
        latest: dict[str, _Row] = {r.id: _row(r) for r in records}  # the last repeat wins
        removed: list[int] = []
        added: list[tuple[int, bytes]] = []
        gen = -1
        with self._transaction(db, write=True):
            self._sync_index(db)
            held: dict[str, tuple[int, bytes]] = {}
            chunk_ids = list(latest)
            for start in range(0, len(chunk_ids), _BATCH):
                batch = _json(chunk_ids[start : start + _BATCH])
                for rid, cid, blob in db.execute(
                    "SELECT id, chunk_id, vector FROM chunks "
                    "WHERE chunk_id IN (SELECT value FROM json_each(?))",
                    (batch,),
                ):
                    held[cid] = (rid, blob)
            for cid, row in latest.items():
                old = held.get(cid)
                if old is not None and old[1] == row[8]:
                    # Same vector (the sync rewrites moved chunks with their stored one):
                    # only metadata changes, the index stays as it is.
                    db.execute(
                        "UPDATE chunks SET text = ?, source_id = ?, source = ?, path = ?, "
                        "file_type = ?, page = ?, meta = ? WHERE id = ?",
                        (*row[1:8], old[0]),
                    )
                    continue
                if old is not None:
                    # A new vector gets a new int64 id: HNSW cannot drop the old one.
                    db.execute("DELETE FROM chunks WHERE id = ?", (old[0],))
                    removed.append(old[0])
                cursor = db.execute(
                    "INSERT INTO chunks (chunk_id, text, source_id, source, path, file_type, "
                    "page, meta, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                assert cursor.lastrowid is not None
                added.append((cursor.lastrowid, row[8]))
            if removed or added:
                gen = self._bump(db)
        if removed or added:
            self._apply(removed, added, gen)
        return len(records)

    def _delete_where(self, where: str, params: Sequence[object]) -> int:
        db = self._ready()
        if db is None:
            return 0
        gen = -1
        with self._transaction(db, write=True):
            self._sync_index(db)
            ids = [r[0] for r in db.execute(f"SELECT id FROM chunks WHERE {where}", params)]
            if ids:
                db.execute(
                    "DELETE FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
                    (_json(ids),),
                )
                gen = self._bump(db)
        if ids:
            self._apply(ids, [], gen)
        return len(ids)

    @_locked
    def delete_ids(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        if not ids or self._ready() is None:
            return 0
        self._delete_where("chunk_id IN (SELECT value FROM json_each(?))", [_json(set(ids))])
        return len(ids)

    @_locked
    def delete_source(self, source_id: str) -> int:
        return self._delete_where("source_id = ?", [source_id])

    # -- reads ---------------------------------------------------------------------

    def _select_chunk_ids(self, sql: str, ids: Iterable[str]) -> Iterator[Sequence[Any]]:
        db = self._ready()
        if db is None:
            return
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _BATCH):
            yield from db.execute(sql, (_json(unique[start : start + _BATCH]),))

    @_locked
    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        sql = "SELECT chunk_id FROM chunks WHERE chunk_id IN (SELECT value FROM json_each(?))"
        return {r[0] for r in self._select_chunk_ids(sql, ids)}

    @_locked
    def source_ids(self, source_id: str) -> set[str]:
        db = self._ready()
        if db is None:
            return set()
        return {
            r[0]
            for r in db.execute("SELECT chunk_id FROM chunks WHERE source_id = ?", (source_id,))
        }

    @_locked
    def ids_by_source(self, source_ids: Iterable[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {sid: set() for sid in source_ids}
        sql = (
            "SELECT chunk_id, source_id FROM chunks "
            "WHERE source_id IN (SELECT value FROM json_each(?))"
        )
        for chunk_id, source_id in self._select_chunk_ids(sql, found):
            found[source_id].add(chunk_id)
        return found

    @_locked
    def flush(self) -> None:
        # A reader in another process then loads this index instead of rebuilding it.
        if self._db is not None:
            self._save_or_warn()

    def _save_or_warn(self) -> None:
        try:
            self._save()
        except (OSError, RuntimeError, sqlite3.Error) as exc:
            log.warning(
                "could not save the FAISS index of %s (it is rebuilt on next open): %s",
                self.location,
                exc,
            )

    @staticmethod
    def _record(row: Sequence[Any]) -> VectorRecord:
        return VectorRecord(_chunk(row), np.frombuffer(row[9], dtype="<f4").tolist())

    @_locked
    def fetch(self, ids: Iterable[str]) -> list[VectorRecord]:
        ids = list(ids)
        sql = (
            f"SELECT {_COLUMNS}, vector FROM chunks "
            "WHERE chunk_id IN (SELECT value FROM json_each(?))"
        )
        found = {r[1]: self._record(r) for r in self._select_chunk_ids(sql, ids)}
        return [found[i] for i in dict.fromkeys(ids) if i in found]

    @_locked
    def _scan_batch(self, after: str | None, size: int) -> list[VectorRecord]:
        db = self._ready()
        if db is None:
            return []
        # Two statements, not "? IS NULL OR chunk_id > ?": the OR would stop SQLite from
        # seeking in the chunk_id index, making every page a full scan.
        select = f"SELECT {_COLUMNS}, vector FROM chunks"
        if after is None:
            rows = db.execute(f"{select} ORDER BY chunk_id LIMIT ?", (size,))
        else:
            rows = db.execute(
                f"{select} WHERE chunk_id > ? ORDER BY chunk_id LIMIT ?", (after, size)
            )
        return [self._record(r) for r in rows]

    def scan(self, batch_size: int = _BATCH) -> Iterator[list[VectorRecord]]:
        # Keyset pages, each its own statement: no read transaction stays open between
        # batches, so a long migration never holds up the writer's checkpoints.
        after: str | None = None
        while batch := self._scan_batch(after, max(1, batch_size)):
            yield batch
            after = batch[-1].id

    @_locked
    def count(self, filters: QueryFilter | None = None) -> int:
        where, params = _where(filters)
        db = self._ready()
        if db is None:
            return 0
        sql = f"SELECT count(*) FROM chunks {'WHERE ' + where if where else ''}"
        return int(db.execute(sql, params).fetchone()[0])

    @_locked
    def query(
        self, vector: Sequence[float], k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        where, params = _where(filters)
        db = self._ready()
        if db is None or k <= 0:
            return []
        q = self._query_vector(vector)
        # One snapshot: the generation check, the filter and the rows of the hits agree.
        with self._transaction(db, write=False):
            return self._hits(db, self._dense(db, q, k, where, params))

    def _query_vector(self, vector: Sequence[float]) -> npt.NDArray[np.float32]:
        spec = self.collection_spec()
        assert spec is not None
        if len(vector) != spec.dimension:
            raise StoreError(
                f"query vector has {len(vector)} dimensions, collection {self.collection!r} "
                f"at {self.location} holds {spec.dimension}"
            )
        return self._unit_vectors([_blob(vector)], spec.dimension)

    def _dense(
        self,
        db: sqlite3.Connection,
        q: npt.NDArray[np.float32],
        k: int,
        where: str,
        params: Sequence[object],
    ) -> list[tuple[int, float]]:
        """(row id, similarity) of the `k` best matches; call in a read transaction."""
        index = self._sync_index(db)
        found: list[tuple[int, float]] = []
        if where:
            allowed = np.fromiter(
                (r[0] for r in db.execute(f"SELECT id FROM chunks WHERE {where}", params)),
                dtype=np.int64,
            )
            want = min(k, allowed.size)
            if 0 < allowed.size <= _EXACT_LIMIT:
                found = self._exact(db, q, want, where, params)
            elif want:
                found = self._search(index, q, want, self.faiss.IDSelectorBatch(allowed))
        else:
            want = min(k, index.ntotal - len(self._tombstones))
            if want:
                found = self._search(index, q, want, self._tombstone_selector())
        if len(found) < want:
            # An approximate index can come up short under a selective filter (or
            # many HNSW tombstones): the answer must still be the k best matches.
            found = self._exact(db, q, want, where, params)
        return found

    @staticmethod
    def _hits(db: sqlite3.Connection, found: Sequence[tuple[int, float]]) -> list[QueryHit]:
        """Hits for (row id, score) pairs, in their order; call in the search's snapshot."""
        rows = {
            r[0]: r
            for r in db.execute(
                f"SELECT {_COLUMNS} FROM chunks WHERE id IN (SELECT value FROM json_each(?))",
                (_json(i for i, _ in found),),
            )
        }
        hits = []
        for rid, score in found:
            chunk = _chunk(rows[rid])
            hits.append(QueryHit(chunk.id, score, chunk.text, chunk.metadata))
        return hits

    @_locked
    def lexical_query(
        self, text: str, k: int = 5, filters: QueryFilter | None = None
    ) -> list[QueryHit]:
        where, params = _where(filters)
        db = self._ready()
        match = fts_match(text)
        if db is None or k <= 0 or not match:
            return []
        self._check_fts(db)
        with self._transaction(db, write=False):
            return self._hits(db, self._lexical(db, match, k, where, params))

    @_locked
    def hybrid_query(
        self,
        vector: Sequence[float],
        text: str,
        k: int = 5,
        filters: QueryFilter | None = None,
        fusion: Fusion = Fusion(),
    ) -> list[QueryHit]:
        # Both rankings as row ids in one snapshot, fused before any row is read: only
        # the k hits are fetched, not both rankings' candidates.
        where, params = _where(filters)
        db = self._ready()
        if db is None or k <= 0:
            return []
        q = self._query_vector(vector)
        match = fts_match(text)
        if match:
            self._check_fts(db)
        depth = max(k, k * fusion.candidates)
        with self._transaction(db, write=False):
            dense = self._dense(db, q, depth, where, params)
            lexical = self._lexical(db, match, depth, where, params) if match else []
            return self._hits(db, fuse_ranked(dense, lexical, k, fusion))

    def _check_fts(self, db: sqlite3.Connection) -> None:
        has_fts = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'chunks_fts'"
        ).fetchone()
        if not has_fts:
            raise LexicalSearchUnsupportedError(
                f"the FAISS collection at {self.location} has no full-text index yet: it is "
                "added when the collection is next opened for writing (run `headwater sync`)"
            )

    @staticmethod
    def _lexical(
        db: sqlite3.Connection, match: str, k: int, where: str, params: Sequence[object]
    ) -> list[tuple[int, float]]:
        """(row id, BM25 relevance) of the `k` best matches; call in a read transaction."""
        # bm25() is lower for better matches; the filter's columns are the chunks table's.
        sql = (
            "SELECT chunks.id, bm25(chunks_fts) FROM chunks_fts "
            "JOIN chunks ON chunks.id = chunks_fts.rowid WHERE chunks_fts MATCH ? "
            f"{'AND ' + where if where else ''} ORDER BY bm25(chunks_fts) LIMIT ?"
        )
        return [(int(rid), -float(rank)) for rid, rank in db.execute(sql, [match, *params, k])]

    def _search(
        self, index: Any, q: npt.NDArray[np.float32], k: int, sel: Any
    ) -> list[tuple[int, float]]:
        faiss = self.faiss
        params: Any
        if self.config.index == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.config.ef_search, k))
        elif faiss.try_extract_index_ivf(index) is not None:
            params = faiss.SearchParametersIVF(nprobe=self.config.nprobe)
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel
        scores, labels = index.search(q, k, params=params)
        return [(int(i), float(s)) for i, s in zip(labels[0], scores[0], strict=True) if i >= 0]

    def _exact(
        self,
        db: sqlite3.Connection,
        q: npt.NDArray[np.float32],
        k: int,
        where: str,
        params: Sequence[object],
    ) -> list[tuple[int, float]]:
        """The exact top `k` among matching rows, from their stored vectors."""
        faiss = self.faiss
        heap = faiss.ResultHeap(nq=1, k=k, keep_max=True)
        for ids, vectors in self._stream(db, where, params, q.shape[1]):
            scores, positions = faiss.knn(
                q, vectors, min(k, len(ids)), metric=faiss.METRIC_INNER_PRODUCT
            )
            heap.add_result(scores, ids[positions])
        heap.finalize()
        return [(int(i), float(s)) for i, s in zip(heap.I[0], heap.D[0], strict=True) if i >= 0]

    def _tombstone_selector(self) -> Any:
        if not self._tombstones:
            return None
        if self._tombstone_sel is None:
            inner = self.faiss.IDSelectorBatch(np.fromiter(self._tombstones, dtype=np.int64))
            self._tombstone_sel = (self.faiss.IDSelectorNot(inner), inner)
        return self._tombstone_sel[0]

    # -- lifetime ------------------------------------------------------------------

    @_locked
    def close(self) -> None:
        # Saving only here and at the end of a sync (`flush`), not after each write: the
        # file is a cache that a crash costs one rebuild, never data, while rewriting it
        # per upsert would make every small sync batch write the whole index (gigabytes
        # for a large collection).
        if self._db is not None:
            self._save_or_warn()
            self._db.close()
        self._db = None
        self._spec = None
        self._drop_index()
