"""The library's SQLite schema, its version, and the migrations from older versions.

The version is SQLite's ``user_version``. A library made by an older ccdred is migrated when
it is opened (in one transaction); one made by a newer ccdred is refused with a clear error.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

__all__ = ["SCHEMA_VERSION", "ensure_schema", "SchemaError", "retry_while_locked"]

SCHEMA_VERSION = 2
"""Version 0: the first library (kinds bias, dark, flat only). Version 1: any kind of master.
Version 2: the camera settings a master was taken with (gain setting, offset, readout mode,
Bayer pattern), which a night's frames must share to use it."""

_COLUMNS = """
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    instrument TEXT,
    rows INTEGER NOT NULL,
    cols INTEGER NOT NULL,
    xbin INTEGER NOT NULL,
    ybin INTEGER NOT NULL,
    filter TEXT,
    exptime REAL,
    darktime REAL,
    scalable INTEGER NOT NULL DEFAULT 0,
    temperature REAL,
    date_start TEXT,
    date_end TEXT,
    ncombine INTEGER,
    verdict TEXT NOT NULL DEFAULT 'ok' CHECK (verdict IN ('ok', 'warn', 'bad')),
    note TEXT NOT NULL DEFAULT '',
    night TEXT,
    added TEXT NOT NULL
"""
_SETTINGS = ("gain_setting REAL", "offset REAL", "readout_mode TEXT", "cfa TEXT")
_INDEX = "CREATE INDEX IF NOT EXISTS masters_lookup ON masters (kind, instrument, rows, cols, " \
         "xbin, ybin)"
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 0 -> 1: the kind is no longer restricted to bias, dark and flat (SQLite cannot drop a
    # CHECK constraint: the table is copied).
    0: (f"CREATE TABLE masters_v1 ({_COLUMNS})",
        "INSERT INTO masters_v1 SELECT * FROM masters",
        "DROP TABLE masters",
        "ALTER TABLE masters_v1 RENAME TO masters",
        _INDEX),
    # 1 -> 2: camera settings.
    1: tuple(f"ALTER TABLE masters ADD COLUMN {column}" for column in _SETTINGS),
}


class SchemaError(Exception):
    """The file is a library of a schema this ccdred cannot read."""


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the schema in an empty library, or migrate an older one to `SCHEMA_VERSION`.

    Raises
    ------
    SchemaError
        The library was made by a newer ccdred, or is some other SQLite file.
    """
    retry_while_locked(lambda: db.execute("BEGIN IMMEDIATE"))
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE "
                                               "type = 'table'")}
        if "masters" not in tables:
            if tables - {"sqlite_sequence"}:
                raise SchemaError(f"an SQLite file with other tables ({', '.join(sorted(tables))})"
                                  f", not a calibration library")
            db.execute(f"CREATE TABLE masters ({_COLUMNS}, {', '.join(_SETTINGS)})")
            db.execute(_INDEX)
        elif version > SCHEMA_VERSION:
            raise SchemaError(f"made by a newer ccdred (schema {version}; this one reads up to "
                              f"{SCHEMA_VERSION}): upgrade ccdred")
        else:
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    db.execute(statement)
        _check_columns(db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _check_columns(db: sqlite3.Connection) -> None:
    """Refuse a ``masters`` table that lacks a column this version reads (not ccdred's)."""
    wanted = [line.split()[0] for line in _COLUMNS.strip().splitlines()]
    wanted += [column.split()[0] for column in _SETTINGS]
    have = {row[1] for row in db.execute("PRAGMA table_info(masters)")}
    missing = [name for name in wanted if name not in have]
    if missing:
        raise SchemaError(f"its masters table lacks the column(s) {', '.join(missing)}: not a "
                          f"calibration library of schema {SCHEMA_VERSION}")


def retry_while_locked(action: Callable[[], object], timeout: float = 60.0) -> None:
    """Run ``action``, retrying while another process holds the file.

    Switching to WAL and creating the schema can fail at once with "database is locked" while
    a second process does the same: SQLite does not wait on its busy timeout for those.
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
