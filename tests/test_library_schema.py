"""Library files of older and newer schemas: migrated, or refused with a clear message."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import numpy as np
import pytest
from astropy.io import fits

from ccdred.errors import BadInputError
from ccdred.library import CalibrationLibrary
from ccdred.library.schema import SCHEMA_VERSION

V0_SCHEMA = """
CREATE TABLE masters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('bias', 'dark', 'flat')),
    path TEXT NOT NULL UNIQUE, sha256 TEXT NOT NULL, instrument TEXT,
    rows INTEGER NOT NULL, cols INTEGER NOT NULL, xbin INTEGER NOT NULL, ybin INTEGER NOT NULL,
    filter TEXT, exptime REAL, darktime REAL, scalable INTEGER NOT NULL DEFAULT 0,
    temperature REAL, date_start TEXT, date_end TEXT, ncombine INTEGER,
    verdict TEXT NOT NULL DEFAULT 'ok' CHECK (verdict IN ('ok', 'warn', 'bad')),
    note TEXT NOT NULL DEFAULT '', night TEXT, added TEXT NOT NULL);
INSERT INTO masters (kind, path, sha256, rows, cols, xbin, ybin, added)
    VALUES ('bias', '/old/bias.fits', 'abc', 16, 16, 1, 1, '2024-01-01');
"""


def _master(path, kind, **cards):
    header = fits.Header({"IMAGETYP": f"MASTER {kind.upper()}", "INSTRUME": "CAM",
                          "DATE-OBS": "2024-01-09T00:00:00", **cards})
    fits.PrimaryHDU(np.zeros((16, 16), np.float32), header=header).writeto(path)
    return path


def test_a_first_version_library_is_migrated_and_keeps_its_entries(tmp_path):
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as db, db:  # closed: Python 3.13 warns otherwise
        db.executescript(V0_SCHEMA)
    with CalibrationLibrary(path) as lib:
        assert [e.path for e in lib.entries()] == ["/old/bias.fits"]
        entry = lib.add(_master(tmp_path / "df.fits", "darkflat", EXPTIME=3.0, GAIN=100,
                                OFFSET=50, INSTRUME="ZWO ASI294MM Pro"))
        assert (entry.kind, entry.gain_setting, entry.offset) == ("darkflat", 100.0, 50.0)
    with closing(sqlite3.connect(path)) as db, db:  # closed: Python 3.13 warns otherwise
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_library_of_a_newer_ccdred_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    with CalibrationLibrary(path):
        pass
    with closing(sqlite3.connect(path)) as db, db:  # closed: Python 3.13 warns otherwise
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(BadInputError, match="newer ccdred"):
        CalibrationLibrary(path)


def test_another_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(path)) as db, db:  # closed: Python 3.13 warns otherwise
        db.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(BadInputError, match="not a calibration library"):
        CalibrationLibrary(path)


def test_masters_serve_only_nights_of_the_same_camera_settings(tmp_path):
    night = {"instrument": "ZWO ASI294MM Pro", "shape": (16, 16), "binning": (1, 1),
             "date": "2024-01-10T03:00:00"}
    with CalibrationLibrary(tmp_path / "lib.sqlite") as lib:
        lib.add(_master(tmp_path / "d.fits", "dark", EXPTIME=300.0, GAIN=100, OFFSET=50,
                        INSTRUME="ZWO ASI294MM Pro"))
        match, _ = lib.best("dark", exptime=300.0, settings=(100.0, 50.0, None, None), **night)
        assert match is not None
        match, why = lib.best("dark", exptime=300.0, settings=(200.0, 50.0, None, None), **night)
        assert match is None and "gain 200" in why
