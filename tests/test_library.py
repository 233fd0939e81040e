"""The calibration library: registering masters, choosing one by rules, sharing the file."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import ccdred
from ccdred import io
from ccdred.errors import BadInputError
from ccdred.library import CalibrationLibrary, Rules
from ccdred.pipeline import ReduceOptions

from .conftest import ccdred_command

FAST = ReduceOptions(cosmics=False)


@pytest.fixture(scope="module")
def first_night(sim_night, tmp_path_factory):
    """The simulated night reduced, its masters registered in its library."""
    out = tmp_path_factory.mktemp("night1")
    return ccdred.reduce_night(sim_night.raw_dir, out, options=FAST)


def _master(path: Path, kind: str, **cards) -> Path:
    header = fits.Header({"IMAGETYP": f"MASTER {kind.upper()}", "INSTRUME": "CAM",
                          "DATE-OBS": "2024-01-10T00:00:00", **cards})
    io.write(ccdred.Frame(np.zeros((16, 16), np.float32), header=header), path)
    return path


def test_a_run_registers_its_masters_with_what_rules_need(first_night):
    library = first_night.out_dir / "calibrations.sqlite"
    with CalibrationLibrary(library) as calibrations:
        entries = {e.kind: e for e in calibrations.entries()}
    assert set(entries) == {"bias", "dark", "flat"}
    dark, flat = entries["dark"], entries["flat"]
    assert dark.exptime == 300 and dark.scalable and dark.temperature == -30.0
    assert flat.filter == "R" and (flat.rows, flat.cols) == (256, 256)
    assert flat.instrument == "SIMCAM" and (flat.xbin, flat.ybin) == (1, 1)
    assert flat.date_start < flat.date_end and flat.ncombine == 7
    assert flat.sha256 == io.sha256(flat.path) and flat.verdict == "ok"


def test_best_follows_the_rules(tmp_path):
    with CalibrationLibrary(tmp_path / "lib.sqlite") as lib:
        near = lib.add(_master(tmp_path / "f_near.fits", "flat", FILTER="V",
                               **{"DATE-OBS": "2024-01-08T00:00:00"}))
        lib.add(_master(tmp_path / "f_far.fits", "flat", FILTER="V",
                        **{"DATE-OBS": "2023-11-01T00:00:00"}))
        lib.add(_master(tmp_path / "f_b.fits", "flat", FILTER="B"))
        night = {"instrument": "CAM", "shape": (16, 16), "binning": (1, 1),
                 "date": "2024-01-10T03:00:00"}
        match, _ = lib.best("flat", filter="V", **night)
        assert match.id == near.id and "2.1 days earlier" in match.reason
        lib.mark_bad(near.id, "dust donut moved")
        match, why = lib.best("flat", filter="V", **night)
        assert match is None and "marked bad (dust donut moved)" in why
        assert "days away (window 30)" in why
        match, _ = lib.best("flat", filter="V", rules=Rules(validity_days=100), **night)
        assert Path(match.path).name == "f_far.fits"
        assert lib.best("flat", filter="R", **night)[0] is None
        assert lib.best("flat", filter="B", **{**night, "shape": (32, 16)})[0] is None
        assert lib.best("flat", filter="B", **{**night, "instrument": "OTHER"})[0] is None

        cold = lib.add(_master(tmp_path / "d_cold.fits", "dark", EXPTIME=300.0, DARKSCAL=True,
                               **{"CCD-TEMP": -20.0}))
        match, _ = lib.best("dark", exptime=600.0, temperature=-20.5, **night)
        assert match.id == cold.id and "scaled from 300s" in match.reason
        match, why = lib.best("dark", exptime=600.0, temperature=-10.0, **night)
        assert match is None and "tolerance 2" in why
        assert lib.best("dark", exptime=600.0, temperature=-20.0, scalable_ok=False,
                        **night)[0] is None
        (tmp_path / "d_cold.fits").unlink()
        assert "no longer exists" in lib.best("dark", exptime=300.0, **night)[1]
        lib.remove(cold.id)
        with pytest.raises(KeyError):
            lib.get(cold.id)


def test_a_night_without_calibrations_borrows_them(sim_night, first_night, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(sim_night.raw_dir / "data", raw / "data")
    library = first_night.out_dir / "calibrations.sqlite"
    plan = ccdred.plan_night(raw, tmp_path / "out", library=library)
    assert {m.kind for m in plan.masters if m.library} == {"bias", "dark", "flat"}
    assert any("no flat R frames in this night: using" in w and "library #" in w
               for w in plan.warnings)
    result = ccdred.reduce_night(raw, tmp_path / "out", options=FAST, library=library)
    for borrowed, own in zip(result.reduced, first_night.reduced, strict=True):
        frame, reference = ccdred.read(borrowed), ccdred.read(own)
        assert frame.header["FLATFILE"].endswith("flat_R.fits")
        assert frame.header["FLATSHA"] == reference.header["FLATSHA"]
        assert np.array_equal(frame.data, reference.data, equal_nan=True)
    manifest = json.loads(result.manifest.read_text())
    assert any("library" in p["parameters"] for p in manifest["products"])
    from ccdred.report import write_report

    page = write_report(result.out_dir, workers=1).read_text()
    assert page.count("calibration library: library #") == 3
    assert "from the calibration library (library #" in page
    with CalibrationLibrary(library) as lib:  # nothing new registered: nothing was built
        assert len(lib.entries()) == 3


def test_a_changed_library_master_is_refused(sim_night, tmp_path):
    first = ccdred.reduce_night(sim_night.raw_dir, tmp_path / "one", options=FAST)
    raw = tmp_path / "raw"
    shutil.copytree(sim_night.raw_dir / "data", raw / "data")
    library = first.out_dir / "calibrations.sqlite"
    plan = ccdred.plan_night(raw, tmp_path / "two", library=library)
    flat = first.masters["flat_R"]
    frame = ccdred.read(flat)
    io.write(frame.replace(data=frame.data * 1.01), flat)
    with pytest.raises(BadInputError, match="library master changed"):
        ccdred.reduce_night(raw, tmp_path / "two", options=FAST, plan=plan, library=library)
    assert not (tmp_path / "two" / "reduced").exists()


def _register_many(library: str, paths: list[str], start) -> None:
    start.wait()
    with CalibrationLibrary(library) as lib:
        for path in paths:
            lib.add(path)


def test_two_processes_writing_at_once_do_not_corrupt_it(tmp_path):
    paths = [str(_master(tmp_path / f"bias{i:02d}.fits", "bias")) for i in range(40)]
    library = str(tmp_path / "shared.sqlite")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    # Each writes its own half and both write the shared middle (updates of one entry).
    halves = [paths[:25], paths[15:]]
    workers = [context.Process(target=_register_many, args=(library, half, start))
               for half in halves]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with closing(sqlite3.connect(library)) as db, db:  # closed: Python 3.13 warns otherwise
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM masters").fetchone() == (
            40, 40)


def test_library_commands(first_night, tmp_path):
    library = tmp_path / "lib.sqlite"
    shutil.copy(first_night.out_dir / "calibrations.sqlite", library)
    run = [*ccdred_command(), "library"]
    listed = subprocess.run([*run, "list", "-l", str(library), "--json"], capture_output=True,
                            text=True, check=True)
    entries = json.loads(listed.stdout)
    assert [e["kind"] for e in entries] == ["bias", "dark", "flat"]
    bad = subprocess.run([*run, "mark-bad", "-l", str(library), str(entries[2]["id"]),
                          "--reason", "saturated"], capture_output=True, text=True)
    assert bad.returncode == 0 and "marked bad" in bad.stdout
    table = subprocess.run([*run, "list", "-l", str(library)], capture_output=True, text=True,
                           check=True).stdout
    assert "bad: saturated" in table
    gone = subprocess.run([*run, "remove", "-l", str(library), "999"], capture_output=True,
                          text=True)
    assert gone.returncode == 2 and "999: not in the calibration library" in gone.stderr
    missing = subprocess.run([*run, "list", "-l", str(tmp_path / "none.sqlite")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "no calibration library here" in missing.stderr
    raw_frame = next(iter(first_night.plan.science)).input.path
    refused = subprocess.run([*run, "add", "-l", str(library), str(raw_frame)],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "not a master bias, dark or flat" in refused.stderr


@pytest.mark.realdata
def test_cafos_science_night_borrows_the_calibrations_from_ten_days_before(shared_data,
                                                                           tmp_path):
    cafos = shared_data / "caha-cafos-ngc2420"
    out = tmp_path / "out"
    done = subprocess.run([*ccdred_command(), "reduce", str(cafos / "calib"),
                           str(cafos / "science"), "-o", str(out), "--no-report",
                           "--no-cosmics", "--workers", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "calibration library" in done.stdout
    manifest = json.loads((out / "science" / "manifest.json").read_text())
    borrowed = [m for m in manifest["plan"]["masters"] if m["library"]]
    assert sorted(m["kind"] for m in borrowed) == ["bias", "flat", "flat"]
    assert all("days earlier" in m["library"] for m in borrowed)
    # No biases in the science night: the read noise its library bias measured serves.
    noise = manifest["noise"]["default"]
    assert noise["read_noise"] > 12 and "library bias" in noise["read_noise_source"]
    frame = ccdred.read(next((out / "science" / "reduced").glob("*.fits")))
    assert all(Path(m["file"]).parent == out / "calib" / "masters" for m in borrowed)
    assert frame.header["FLATFILE"].endswith(".fits")
    assert frame.header["FLATSHA"] == io.sha256(out / "calib" / "masters" / Path(
        frame.header["FLATFILE"]).name)


def test_nights_in_one_command_share_the_library(sim_night, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(sim_night.raw_dir, archive / "2015-11-28")
    shutil.copytree(sim_night.raw_dir / "data", archive / "2015-11-29" / "data")
    out = tmp_path / "out"
    done = subprocess.run([*ccdred_command(), "reduce", str(archive), "--nights", "-o", str(out),
                           "--no-report", "--no-cosmics", "--workers", "1"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "2015-11-29: flat_R from the library" in done.stdout
    for night in ("2015-11-28", "2015-11-29"):
        assert len(list((out / night / "reduced").glob("*.fits"))) == 3
    with CalibrationLibrary(out / "calibrations.sqlite") as lib:
        assert {Path(e.path).parent.parent.name for e in lib.entries()} == {"2015-11-28"}
    again = subprocess.run([*ccdred_command(), "reduce", str(archive), "--nights", "-o",
                            str(out), "--no-report", "--no-cosmics", "--workers", "1"],
                           capture_output=True, text=True, check=True)
    assert again.stdout.count("(0 made,") == 2


def test_two_library_darks_of_one_exposure_get_distinct_names(tmp_path):
    from ccdred.inventory import FrameInfo
    from ccdred.pipeline import build_plan

    with CalibrationLibrary(tmp_path / "lib.sqlite") as lib:
        lib.add(_master(tmp_path / "plain.fits", "dark", EXPTIME=300.0,
                        **{"DATE-OBS": "2024-01-10T01:00:00"}))
        lib.add(_master(tmp_path / "scalable.fits", "dark", EXPTIME=300.0, DARKSCAL=True))
        lib.add(_master(tmp_path / "bias.fits", "bias"))
        science = [FrameInfo(tmp_path / f"s{t}.fits", kind="science", exptime=t, shape=(16, 16),
                             instrument="CAM", date="2024-01-10T01:00:00") for t in (300.0, 600.0)]
        plan = build_plan(science, tmp_path, lib)
    darks = {m.name: Path(m.library.path).name for m in plan.masters if m.kind == "dark"}
    assert darks == {"dark_300s": "plain.fits", "dark_300s_lib2": "scalable.fits"}
    assert [s.dark.master for s in plan.science] == ["dark_300s", "dark_300s_lib2"]
