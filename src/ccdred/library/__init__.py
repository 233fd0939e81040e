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

import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from ..atomic import file_mode
from ..errors import BadInputError, OutputError
from ..inventory import describe_file
from ..io import read_header, sha256
from .rules import (
    ANY,
    Criteria,
    Match,
    Rules,
    days_apart,
    exposure_rank,
    parse_date,
    reason,
    refusal,
)
from .schema import SchemaError, ensure_schema, retry_while_locked

__all__ = ["CalibrationLibrary", "LibraryEntry", "Rules", "Match", "VERDICTS", "ANY"]

VERDICTS = ("ok", "warn", "bad")
_KIND = re.compile(r"^[a-z][a-z0-9_-]*$")

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
    gain_setting: float | None = None
    offset: float | None = None
    readout_mode: str | None = None
    cfa: str | None = None

    @property
    def date_mid(self) -> datetime | None:
        """Middle of the date range the master's inputs were taken in."""
        start, end = parse_date(self.date_start), parse_date(self.date_end)
        if start is None or end is None:
            return start or end
        return start + (end - start) / 2


def _write_failure(err: BaseException) -> bool:
    """Tell whether an SQLite error means the file could not be written (full, read-only)."""
    if isinstance(err, OSError):
        return True
    text = str(err).lower()
    return any(words in text for words in ("full", "disk i/o", "readonly", "unable to open"))


def _why(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return f"{text} (is the disk full?)" if "full" in text.lower() else text


class CalibrationLibrary:
    """An SQLite calibration library (created when missing).

    Parameters
    ----------
    path : path
        The library file, e.g. ``OUT/calibrations.sqlite``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise BadInputError(self.path, "is a directory, not a calibration library file")
        new = not self.path.exists()
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            if new:  # SQLite makes it 0644 whatever the umask: share as any new file
                self._db.execute("PRAGMA user_version").fetchone()  # the file exists now
                os.chmod(self.path, file_mode())
            self._db.row_factory = sqlite3.Row
            retry_while_locked(lambda: self._db.execute("PRAGMA journal_mode = WAL"))
            ensure_schema(self._db)
        except SchemaError as err:
            self._abandon(new)
            raise BadInputError(self.path, f"not a usable calibration library: {err}") from None
        except (sqlite3.DatabaseError, OSError) as err:
            self._abandon(new)  # never a library without its table left behind
            if _write_failure(err):
                raise OutputError(self.path, _why(err)) from err
            raise BadInputError(self.path, f"not a usable calibration library ({err})") from err

    def _abandon(self, new: bool) -> None:
        """Close, and remove the files of a library this call was creating."""
        if self._db is not None:
            self._db.close()
        if new:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> CalibrationLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One transaction; a write the disk refuses is an `OutputError` naming the library."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as err:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if _write_failure(err):
                raise OutputError(self.path, _why(err)) from err
            raise

    def add(self, path: str | Path, *, kind: str | None = None, night: str | None = None,
            verdict: str = "ok", note: str = "") -> LibraryEntry:
        """Register a master file (or update its entry when the path is known).

        Parameters
        ----------
        path : path
            A master bias, dark or flat (ccdred's, or another tool's with ``kind`` given).
        kind : str, optional
            The master's kind (``bias``, ``dark``, ``flat``...), when its header
            (``IMAGETYP = 'MASTER <KIND>'``) does not say.
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
             binning: tuple[int, int], date: str | None, filter: object = ANY,
             exptime: float | None = None, temperature: float | None = None,
             scalable_ok: bool = True, settings: tuple[object, ...] = (None,) * 4,
             rules: Rules = Rules()) -> tuple[Match | None, str]:
        """Choose the master of ``kind`` that serves a night best, by `Rules`.

        Parameters
        ----------
        kind : str
            The kind of master (``bias``, ``dark``, ``flat``...).
        instrument, shape, binning
            The night's camera, (rows, cols) after trimming, and (x, y) binning: must match.
        date : str
            The night's time (ISO); the master nearest in time within ``validity_days`` wins.
        filter : str or None, optional
            Must match when given (None or '' ask for a master without a filter).
        exptime : float, optional
            When given: a master of the same exposure, else a scalable one (``scalable_ok``).
        temperature : float, optional
            When given: within ``temperature_tolerance`` of a master's known temperature.
        settings : (gain setting, offset, readout mode, Bayer pattern)
            The night's camera settings: must be the master's (None matches None only).

        Returns
        -------
        match : Match or None
        reason : str
            Why this master, or why none qualified.
        """
        wanted = Criteria(parse_date(date), filter, exptime, temperature, scalable_ok)
        rows = self._db.execute(
            "SELECT * FROM masters WHERE kind = ? AND rows = ? AND cols = ? AND xbin = ? "
            "AND ybin = ? AND instrument IS ? AND gain_setting IS ? AND offset IS ? "
            "AND readout_mode IS ? AND cfa IS ?",
            (kind, shape[0], shape[1], binning[0], binning[1], instrument, *settings)
        ).fetchall()
        if not rows:
            return None, (f"no {kind} in the library for {instrument or 'this camera'} "
                          f"{shape[1]}x{shape[0]} bin {binning[0]}x{binning[1]}"
                          f"{_settings_text(settings)}")
        candidates, refused = [], []
        for entry in map(_entry, rows):
            problem = refusal(entry, wanted, rules)
            if problem:
                refused.append(f"#{entry.id} {Path(entry.path).name}: {problem}")
            else:
                candidates.append(entry)
        if not candidates:
            return None, f"no usable {kind} in the library ({'; '.join(refused[:3])})"
        entry = min(candidates, key=lambda e: (days_apart(e.date_mid, wanted.night),
                                               exposure_rank(e.exptime, exptime), -e.id))
        return Match(entry.id, entry.path, entry.sha256, reason(entry, wanted),
                     entry.exptime, entry.darktime, entry.scalable), ""


def _settings_text(settings: tuple[object, ...]) -> str:
    names = ("gain", "offset", "readout mode", "")
    parts = [f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}".strip()
             for name, value in zip(names, settings, strict=False) if value is not None]
    return f" at {', '.join(parts)}" if parts else ""


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
    if kind is None or not _KIND.match(kind):
        raise BadInputError(path, f"not a master bias, dark or flat (IMAGETYP={imagetyp!r}); "
                                  f"give its kind with --kind")
    if info.shape is None:
        raise BadInputError(path, "no image size in the header")
    date = info.date
    return {"kind": kind, "path": str(path), "sha256": sha256(path),
            "instrument": info.instrument, "rows": info.shape[0], "cols": info.shape[1],
            "xbin": info.binning[0], "ybin": info.binning[1], "filter": info.filter,
            "exptime": info.exptime, "darktime": info.darktime,
            "scalable": int(bool(header.get("DARKSCAL", False))),
            "temperature": info.temperature,
            "date_start": str(header.get("DATE-BEG", date) or "") or None,
            "date_end": str(header.get("DATE-END", date) or "") or None,
            "ncombine": int(header["NCOMBINE"]) if "NCOMBINE" in header else None,
            "gain_setting": info.gain_setting, "offset": info.offset,
            "readout_mode": info.readout_mode, "cfa": info.cfa}


def as_rows(entries: Sequence[LibraryEntry]) -> list[dict[str, object]]:
    """Entries as plain dicts (for JSON output)."""
    return [{f.name: getattr(e, f.name) for f in fields(LibraryEntry)} for e in entries]
