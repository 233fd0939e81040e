"""Calibration library: an SQLite index of master frames, so other nights can reuse them.

Every master a run builds is registered with what decides whether it can serve another night:
type, instrument, shape, binning, filter, exposure and dark time, temperature, date range,
quality verdict, path and checksum. `CalibrationLibrary.best` picks a master for a night that
lacks one, by explicit rules (`Rules`), and says which it took and why, or why none qualified.

Several runs may share one library file: writes are short ``BEGIN IMMEDIATE`` transactions
in WAL mode with a generous busy timeout, so concurrent writers wait for each other instead
of failing or corrupting the file.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from .errors import BadInputError
from .inventory import describe_file
from .io import read_header, sha256

__all__ = ["CalibrationLibrary", "LibraryEntry", "Rules", "Match", "VERDICTS"]

VERDICTS = ("ok", "warn", "bad")
KINDS = ("bias", "dark", "flat")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS masters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('bias', 'dark', 'flat')),
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
);
CREATE INDEX IF NOT EXISTS masters_lookup ON masters (kind, instrument, rows, cols, xbin, ybin);
"""


@dataclass(frozen=True)
class LibraryEntry:
    """One registered master."""

    id: int
    kind: str
    path: str
    sha256: str
    instrument: str | None
    rows: int
    cols: int
    xbin: int
    ybin: int
    filter: str | None
    exptime: float | None
    darktime: float | None
    scalable: bool
    temperature: float | None
    date_start: str | None
    date_end: str | None
    ncombine: int | None
    verdict: str
    note: str
    night: str | None
    added: str

    @property
    def date_mid(self) -> datetime | None:
        """Middle of the date range the master's inputs were taken in."""
        start, end = _parse_date(self.date_start), _parse_date(self.date_end)
        if start is None or end is None:
            return start or end
        return start + (end - start) / 2


@dataclass(frozen=True)
class Rules:
    """When a library master may serve a night that lacks its own.

    Always: same kind, instrument, shape and binning, never one marked bad, nearest in time.
    """

    validity_days: float = 30.0
    """Largest time between the master's inputs and the night."""
    temperature_tolerance: float = 2.0
    """Largest difference (deg C) between a dark's and the night's sensor temperature."""


@dataclass(frozen=True)
class Match:
    """A library master chosen for a night, and why (what is recorded in the plan)."""

    id: int
    path: str
    sha256: str
    reason: str
    exptime: float | None = None
    darktime: float | None = None
    scalable: bool = False


def _retry_while_locked(action: Callable[[], object], timeout: float = 60.0) -> None:
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


def _parse_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class CalibrationLibrary:
    """An SQLite calibration library (created when missing).

    Parameters
    ----------
    path : path
        The library file, e.g. ``OUT/calibrations.sqlite``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            _retry_while_locked(lambda: self._db.execute("PRAGMA journal_mode = WAL"))
            _retry_while_locked(lambda: self._db.executescript(_SCHEMA))
        except sqlite3.DatabaseError as err:
            raise BadInputError(self.path, f"not a usable calibration library ({err})") from err

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> CalibrationLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def add(self, path: str | Path, *, kind: str | None = None, night: str | None = None,
            verdict: str = "ok", note: str = "") -> LibraryEntry:
        """Register a master file (or update its entry when the path is known).

        Parameters
        ----------
        path : path
            A master bias, dark or flat (ccdred's, or another tool's with ``kind`` given).
        kind : {'bias', 'dark', 'flat'}, optional
            The master's type, when its header (``IMAGETYP = 'MASTER <KIND>'``) does not say.
        night : str, optional
            Which night built it (its raw folder).
        verdict : {'ok', 'warn', 'bad'}
            Quality verdict; 'bad' masters are never chosen.
        note : str
            Why the verdict.

        Raises
        ------
        BadInputError
            The file is unreadable, or its type cannot be told.
        """
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
        path = Path(path).resolve()
        record = _describe_master(path, kind)
        record.update(night=night, verdict=verdict, note=note,
                      added=datetime.now(UTC).isoformat(timespec="seconds"))
        columns = ", ".join(record)
        updates = ", ".join(f"{c} = excluded.{c}" for c in record if c != "path")
        with self._write():
            self._db.execute(f"INSERT INTO masters ({columns}) VALUES "
                             f"({', '.join('?' * len(record))}) "
                             f"ON CONFLICT(path) DO UPDATE SET {updates}",
                             tuple(record.values()))
        return self.get(str(path))

    def get(self, ref: int | str) -> LibraryEntry:
        """Return the entry with id ``ref`` (an int or digits) or path ``ref``.

        Raises
        ------
        KeyError
            No such entry.
        """
        if isinstance(ref, int) or str(ref).isdigit():
            row = self._db.execute("SELECT * FROM masters WHERE id = ?", (int(ref),)).fetchone()
        else:
            row = self._db.execute("SELECT * FROM masters WHERE path = ?",
                                   (str(Path(ref).resolve()),)).fetchone()
        if row is None:
            raise KeyError(f"{ref}: not in the calibration library {self.path}")
        return _entry(row)

    def entries(self, kind: str | None = None) -> list[LibraryEntry]:
        """Every entry (of one kind), oldest first."""
        if kind is None:
            rows = self._db.execute("SELECT * FROM masters ORDER BY date_start, id")
        else:
            rows = self._db.execute("SELECT * FROM masters WHERE kind = ? "
                                    "ORDER BY date_start, id", (kind,))
        return [_entry(row) for row in rows]

    def mark_bad(self, ref: int | str, reason: str) -> LibraryEntry:
        """Mark a master bad (it will never be chosen again) and record why."""
        entry = self.get(ref)
        with self._write():
            self._db.execute("UPDATE masters SET verdict = 'bad', note = ? WHERE id = ?",
                             (reason, entry.id))
        return self.get(entry.id)

    def remove(self, ref: int | str) -> LibraryEntry:
        """Forget a master (the file itself is left alone)."""
        entry = self.get(ref)
        with self._write():
            self._db.execute("DELETE FROM masters WHERE id = ?", (entry.id,))
        return entry

    def best(self, kind: str, *, instrument: str | None, shape: tuple[int, int],
             binning: tuple[int, int], date: str | None, filter: str | None = None,
             exptime: float | None = None, temperature: float | None = None,
             scalable_ok: bool = True, rules: Rules = Rules()) -> tuple[Match | None, str]:
        """Choose the master of ``kind`` that serves a night best, by `Rules`.

        Parameters
        ----------
        kind : {'bias', 'dark', 'flat'}
        instrument, shape, binning
            The night's camera, (rows, cols) after trimming, and (x, y) binning: must match.
        date : str
            The night's time (ISO); the master nearest in time within ``validity_days`` wins.
        filter : str, optional
            For flats: must match.
        exptime : float, optional
            For darks: a dark of the same exposure, else a scalable one (``scalable_ok``).
        temperature : float, optional
            For darks: within ``temperature_tolerance`` when both are known.

        Returns
        -------
        match : Match or None
        reason : str
            Why this master, or why none qualified.
        """
        night = _parse_date(date)
        rows = self._db.execute(
            "SELECT * FROM masters WHERE kind = ? AND rows = ? AND cols = ? AND xbin = ? "
            "AND ybin = ? AND instrument IS ?",
            (kind, shape[0], shape[1], binning[0], binning[1], instrument)).fetchall()
        if not rows:
            return None, (f"no {kind} in the library for {instrument or 'this camera'} "
                          f"{shape[1]}x{shape[0]} bin {binning[0]}x{binning[1]}")
        candidates, refused = [], []
        for entry in map(_entry, rows):
            problem = _refusal(entry, night, filter, exptime, temperature, scalable_ok, rules)
            if problem:
                refused.append(f"#{entry.id} {Path(entry.path).name}: {problem}")
            else:
                candidates.append(entry)
        if not candidates:
            return None, f"no usable {kind} in the library ({'; '.join(refused[:3])})"
        entry = min(candidates, key=lambda e: (_days_apart(e, night), _exposure_rank(e, exptime),
                                               -e.id))
        return Match(entry.id, entry.path, entry.sha256, _why(entry, night, exptime),
                     entry.exptime, entry.darktime, entry.scalable), ""


def _days_apart(entry: LibraryEntry, night: datetime | None) -> float:
    mid = entry.date_mid
    if mid is None or night is None:
        return math.inf
    return abs((mid - night).total_seconds()) / 86400.0


def _exposure_rank(entry: LibraryEntry, exptime: float | None) -> float:
    if exptime is None or not entry.exptime:
        return 0.0
    return abs(math.log(max(exptime, 1e-3) / entry.exptime))


def _same_exposure(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= 0.01 * max(abs(a), abs(b), 1e-3)


def _refusal(entry: LibraryEntry, night: datetime | None, filter: str | None,
             exptime: float | None, temperature: float | None, scalable_ok: bool,
             rules: Rules) -> str:
    """Why ``entry`` cannot serve, or '' when it can."""
    if entry.verdict == "bad":
        return f"marked bad ({entry.note})" if entry.note else "marked bad"
    if not Path(entry.path).is_file():
        return "file no longer exists"
    days = _days_apart(entry, night)
    if not days <= rules.validity_days:
        return ("no date to check the validity window" if math.isinf(days)
                else f"{days:.1f} days away (window {rules.validity_days:g})")
    if entry.kind == "flat" and (entry.filter or "") != (filter or ""):
        return f"filter {entry.filter!r}, not {filter!r}"
    if entry.kind == "dark":
        if not _same_exposure(entry.exptime, exptime) and not (entry.scalable and scalable_ok):
            return f"{entry.exptime:g}s, not {exptime:g}s, and cannot be scaled"
        if entry.temperature is not None and temperature is not None and (
                abs(entry.temperature - temperature) > rules.temperature_tolerance):
            return (f"{entry.temperature:+.1f} C, night {temperature:+.1f} C "
                    f"(tolerance {rules.temperature_tolerance:g})")
    return ""


def _why(entry: LibraryEntry, night: datetime | None, exptime: float | None) -> str:
    days = _days_apart(entry, night)
    mid = entry.date_mid
    when = "earlier" if mid is not None and night is not None and mid < night else "later"
    parts = [f"library #{entry.id}", f"{days:.1f} days {when}"]
    if entry.kind == "dark":
        parts.append("same exposure" if _same_exposure(entry.exptime, exptime)
                     else f"scaled from {entry.exptime:g}s")
        if entry.temperature is not None:
            parts.append(f"{entry.temperature:+.1f} C")
    if entry.kind == "flat":
        parts.append(f"filter {entry.filter}")
    if entry.verdict != "ok":
        parts.append(f"verdict {entry.verdict}: {entry.note}")
    return ", ".join(parts)


def _entry(row: sqlite3.Row) -> LibraryEntry:
    values = {f.name: row[f.name] for f in fields(LibraryEntry)}
    values["scalable"] = bool(values["scalable"])
    return LibraryEntry(**values)


def _describe_master(path: Path, kind: str | None) -> dict[str, object]:
    """Return the library columns of a master file, from its header."""
    header = read_header(path)
    info = describe_file(path)
    imagetyp = str(header.get("IMAGETYP", "")).strip().lower()
    if kind is None and imagetyp.startswith("master "):
        kind = imagetyp.removeprefix("master ").strip()
    if kind not in KINDS:
        raise BadInputError(path, f"not a master bias, dark or flat (IMAGETYP={imagetyp!r}); "
                                  f"give its type with --kind")
    if info.shape is None:
        raise BadInputError(path, "no image size in the header")
    date = info.date
    return {"kind": kind, "path": str(path), "sha256": sha256(path),
            "instrument": info.instrument, "rows": info.shape[0], "cols": info.shape[1],
            "xbin": info.binning[0], "ybin": info.binning[1],
            "filter": info.filter if kind == "flat" else None,
            "exptime": info.exptime if kind == "dark" else None,
            "darktime": info.darktime if kind == "dark" else None,
            "scalable": int(bool(header.get("DARKSCAL", False))) if kind == "dark" else 0,
            "temperature": info.temperature,
            "date_start": str(header.get("DATE-BEG", date) or "") or None,
            "date_end": str(header.get("DATE-END", date) or "") or None,
            "ncombine": int(header["NCOMBINE"]) if "NCOMBINE" in header else None}


def as_rows(entries: Sequence[LibraryEntry]) -> list[dict[str, object]]:
    """Entries as plain dicts (for JSON output)."""
    return [{f.name: getattr(e, f.name) for f in fields(LibraryEntry)} for e in entries]
