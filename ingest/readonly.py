"""Reading SQLite files in a folder this process cannot write (a read-only state folder).

`headwater query` and `status` only read; they must work on a state folder restored to
read-only media or shared read-only with another user.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def open_read_only(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """`path` opened for reading only, in autocommit mode (isolation_level None).

    A WAL database needs its ``-shm`` file, which a read-only folder cannot hold when the
    last writer removed it; then the file is opened as immutable, which is true as long
    as nobody can write the folder.
    """
    uri = path.resolve().as_uri()

    def connect(mode: str) -> sqlite3.Connection:
        return sqlite3.connect(
            f"{uri}?{mode}",
            uri=True,
            timeout=30.0,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )

    db = connect("mode=ro")
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
    return connect("immutable=1")


def cannot_write(folder: Path) -> bool:
    """Whether this process cannot create files in `folder` (read-only mount, permissions).

    SQLite reports a WAL file it cannot create as "unable to open database file"; this
    tells that case from a damaged file.
    """
    return folder.is_dir() and not os.access(folder, os.W_OK)
