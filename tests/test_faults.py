"""Faults: a full disk at every kind of write, signals, stale temporary files, file handles."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from astropy.io import fits

from ccdred import io

from .conftest import ROOT

# A ccdred run whose writes fail as on a full disk: a file whose path holds FAULT_AT cannot be
# written (ENOSPC at write, as a full disk shows itself; ccdred does not fsync), and with
# FAULT_AT=sqlite the library can hold no page beyond its first (SQLite's own "database or
# disk is full").
FAULTY = """
import errno, os, re, sqlite3, sys
where = os.environ["FAULT_AT"]
if where == "sqlite-insert":  # the library exists; registering a master finds the disk full
    class Full(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql.lstrip().upper().startswith("INSERT"):
                raise sqlite3.OperationalError("database or disk is full")
            return super().execute(sql, *args)
    connect = sqlite3.connect
    sqlite3.connect = lambda *args, **kwargs: connect(*args, factory=Full, **kwargs)
elif where == "sqlite":
    connect = sqlite3.connect
    def full(*args, **kwargs):
        db = connect(*args, **kwargs)
        db.execute("PRAGMA max_page_count = 1")
        return db
    sqlite3.connect = full
else:
    import builtins, io

    class FullFile:  # a file on a full disk: writing it fails
        def __init__(self, handle):
            self._handle = handle
        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        def __getattr__(self, name):
            return getattr(self._handle, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self._handle.close()

    real_open = builtins.open
    def failing_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        path = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else (
            os.path.abspath(os.fspath(file)))
        if any(c in mode for c in "wax+") and where in path:
            return FullFile(handle)
        return handle
    builtins.open = io.open = failing_open
from ccdred.cli import main
sys.argv[0] = "ccdred"
sys.exit(main())
"""


def faulty_run(args: list[str], where: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FAULT_AT": where, "COLUMNS": "250",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", FAULTY, *args], capture_output=True,
                          text=True, timeout=600, env=env, cwd=tmp_path)


def temporary_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part")] if root.exists() else []


WRITES = [  # (what fails, a part of its temporary file's path, words naming it in the message)
    ("a master", "masters/.dark", "masters/dark"),
    ("a bad-pixel map", "masters/.badpix", "badpix"),
    ("a reduced frame", "reduced/.", "reduced/"),
    ("the manifest", "/.manifest.json", "manifest.json"),
    ("the library", "sqlite", "calibrations.sqlite"),
    ("the report page", "report/.index.html", "index.html"),
    ("a report figure", "figures/.", "figures/"),
    ("the report's numbers", "report/.qa.json", "qa.json"),
]


@pytest.mark.parametrize("what,where,words", WRITES, ids=[w[0] for w in WRITES])
def test_a_full_disk_at_any_write_fails_cleanly(sim_night, tmp_path, what, where, words):
    out = tmp_path / "out"
    args = ["reduce", str(sim_night.raw_dir), "-o", str(out), "--no-cosmics", "--workers", "1"]
    if "report" not in where and "figures" not in where:
        args.append("--no-report")  # the report takes most of the time: only where it fails
    result = faulty_run(args, where, tmp_path)
    assert result.returncode == 1, (what, result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    assert "cannot write" in result.stderr and words in result.stderr
    assert temporary_files(out) == []
    for path in out.rglob("*.fits"):  # every file left is whole
        with fits.open(path, checksum=True) as hdul:
            hdul.verify("exception")
    library = out / "calibrations.sqlite"
    if library.exists():  # never a library without its table
        with closing(sqlite3.connect(library)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        assert "masters" in tables
    # the same command, once the disk has room again, finishes the night
    again = subprocess.run([sys.executable, "-m", "ccdred", *args], capture_output=True,
                           text=True, timeout=600, env={**os.environ, "COLUMNS": "250"})
    assert again.returncode == 0, again.stderr
    assert (out / "manifest.json").exists() and len(list(out.glob("reduced/*.fits"))) == 3


def test_a_full_disk_in_combine_leaves_no_output(sim_night, tmp_path):
    out = tmp_path / "m.fits"
    result = faulty_run(["combine", *map(str, sim_night.files["bias"][:3]), "-o", str(out)],
                        "m.fits", tmp_path)
    assert result.returncode == 1 and "cannot write" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and temporary_files(tmp_path) == []


# --- more frames than the process may open --------------------------------------------------

LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
from ccdred.cli import main
sys.argv[0] = "ccdred"
sys.exit(main())
"""


@pytest.fixture(scope="module")
def crowded_night(tmp_path_factory):
    """100 biases: more than a process limited to 64 open files could hold open at once."""
    from ccdred.simulate import CameraModel, simulate_night

    model = CameraModel(size=64, n_stars=5, n_bias=100, n_dark=5, n_flat=5,
                        science_exptimes=(300.0, 120.0))
    return simulate_night(tmp_path_factory.mktemp("crowded"), model=model, seed=2)


def test_a_night_of_more_frames_than_ulimit_n_reduces(crowded_night, tmp_path):
    args = ["reduce", str(crowded_night.raw_dir), "--no-report", "--no-cosmics"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    limited = subprocess.run([sys.executable, "-c", LIMITED, *args, "-o", str(tmp_path / "a")],
                             capture_output=True, text=True, timeout=600, env=env)
    assert limited.returncode == 0, limited.stderr
    free = subprocess.run([sys.executable, "-m", "ccdred", *args, "-o", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert free.returncode == 0, free.stderr
    for name in ("masters/bias.fits", "masters/dark_300s.fits", "reduced"):
        for path in sorted((tmp_path / "a").glob(name if name.endswith("fits") else
                                                 f"{name}/*.fits")):
            twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
            assert io.sha256(path) == io.sha256(twin), path.name


def test_open_files_stay_within_the_budget(crowded_night, monkeypatch):
    from ccdred import combine
    from ccdred.io import rows

    biases = crowded_night.files["bias"]
    expected = combine(biases).frame.data
    monkeypatch.setattr(rows.Handles, "limit", staticmethod(lambda: 4))
    seen = []
    original = rows.Handles.use

    def counting(self, key):
        seen.append(self.count())
        return original(self, key)

    monkeypatch.setattr(rows.Handles, "use", counting)
    result = combine(biases).frame.data
    assert (result == expected).all()
    assert max(seen) <= 4 and rows.HANDLES.count() == 0


# --- products people can share ---------------------------------------------------------------

@pytest.mark.parametrize("mask,report", [(0o022, True), (0o027, False), (0o002, False)])
def test_products_get_the_users_umask_permissions(sim_night, tmp_path, mask, report):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "ccdred", "reduce", str(sim_night.raw_dir), "-o", str(out),
            "--no-cosmics", "--workers", "1"]
    result = subprocess.run(args + ([] if report else ["--no-report"]), capture_output=True,
                            text=True, timeout=600, preexec_fn=lambda: os.umask(mask))
    assert result.returncode == 0, result.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert (out / "manifest.json") in files and (out / "calibrations.sqlite") in files
    if report:
        assert (out / "report" / "index.html") in files
        assert any(p.suffix == ".png" for p in files)
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path
    for path in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        assert path.stat().st_mode & 0o777 == 0o777 & ~mask, path


def test_a_full_disk_when_registering_in_an_existing_library(sim_night, tmp_path):
    out = tmp_path / "out"
    args = ["reduce", str(sim_night.raw_dir), "-o", str(out), "--no-cosmics", "--workers", "1",
            "--no-report"]
    first = subprocess.run([sys.executable, "-m", "ccdred", *args], capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(out / "calibrations.sqlite") as db:
        before = db.execute("SELECT path, sha256 FROM masters ORDER BY path").fetchall()
    db.close()
    result = faulty_run([*args, "--force"], "sqlite-insert", tmp_path)
    assert result.returncode == 1, result.stderr
    assert "cannot write" in result.stderr and "calibrations.sqlite" in result.stderr
    assert "Traceback" not in result.stderr
    with sqlite3.connect(out / "calibrations.sqlite") as db:  # untouched, still whole
        after = db.execute("SELECT path, sha256 FROM masters ORDER BY path").fetchall()
    db.close()
    assert after == before and temporary_files(out) == []
