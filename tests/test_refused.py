"""Refused before anything is written, with the file named: header values, odd entries, -o."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import ccdred
from ccdred.errors import BadInputError
from ccdred.pipeline import ReduceOptions

from .conftest import ccdred_command
from .test_hostile import FAST, checksums, copy_night  # noqa: E402 - shared helpers


def _card(key, value):
    def change(path: Path) -> None:
        with fits.open(path, mode="update") as hdul:
            hdul[0].header[key] = value
    return change


def _empty_axis(path: Path) -> None:
    header = fits.getheader(path)
    cards = [c for c in header.cards if c.keyword not in ("BZERO", "BSCALE")]
    head = fits.Header(cards)
    head["NAXIS1"] = 0
    path.write_bytes(head.tostring().encode("ascii"))


HEADER_FAULTS = [  # (folder, damage, words of the message)
    ("data", _card("EXPTIME", -300.0), "EXPTIME=-300.0 is negative"),
    ("data", _card("EXPTIME", "nan"), "EXPTIME='nan' is not a finite number"),
    ("data", _card("EXPTIME", "inf"), "EXPTIME='inf' is not a finite number"),
    ("data", _card("DARKTIME", -1.0), "DARKTIME=-1.0 is negative"),
    ("darks", _card("DARKTIME", "NaN"), "DARKTIME='NaN' is not a finite number"),
    ("darks", _card("EXPTIME", 0.0), "dark frame of 0 s exposure"),
    ("darks", _card("EXPTIME", -5.0), "EXPTIME=-5.0 is negative"),
    ("flats", _card("EXPTIME", -2.0), "EXPTIME=-2.0 is negative"),
    ("flats", _empty_axis, "empty image (NAXIS1=0"),
    ("flats", _card("XBINNING", 0), "XBINNING=0 is not a whole number >= 1"),
    ("bias", _card("YBINNING", -2), "YBINNING=-2 is not a whole number >= 1"),
    ("data", _card("XBINNING", 1.5), "XBINNING=1.5 is not a whole number >= 1"),
]


@pytest.mark.parametrize("folder,damage,words", HEADER_FAULTS)
def test_bad_header_values_are_refused_at_planning(sim_night, tmp_path, folder, damage, words):
    raw = copy_night(sim_night, tmp_path)
    victim = sorted((raw / folder).iterdir())[0]
    damage(victim)
    before = checksums(raw)
    plan = ccdred.plan_night(raw)  # planning alone finds it
    assert [i.path for i in plan.skipped] == [victim]
    assert words in plan.skipped[0].error
    out = tmp_path / "out"
    with pytest.raises(BadInputError) as info:
        ccdred.reduce_night(raw, out, options=FAST)
    assert victim.name in str(info.value) and words in str(info.value)
    assert "nothing was written" in str(info.value)
    assert not out.exists()
    assert checksums(raw) == before
    result = ccdred.reduce_night(raw, out, options=ReduceOptions(cosmics=False, skip_bad=True))
    assert victim not in {p for m in result.plan.masters for p in m.inputs}
    assert victim not in {s.input.path for s in result.plan.science}
    for sci in result.plan.science:
        assert sci.dark is None or sci.dark.scale > 0


def test_a_zero_dark_time_is_taken_as_not_recorded(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)  # as CAFOS writes it on every frame
    for path in raw.rglob("*.fits"):
        _card("DARKTIME", 0.0)(path)
    plan = ccdred.plan_night(raw)
    assert not plan.skipped and all(s.dark and s.dark.scale > 0 for s in plan.science)
    assert any("DARKTIME = 0" in w for w in plan.warnings)


def test_every_dark_scale_in_a_plan_is_positive(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    for i, path in enumerate(sorted((raw / "data").iterdir())):
        _card("DARKTIME", 100.0 * (i + 1))(path)
    plan = ccdred.plan_night(raw)
    scales = [s.dark.scale for s in plan.science if s.dark] + [
        d.scale for m in plan.masters for d in m.darks if d]
    assert scales and all(np.isfinite(s) and s > 0 for s in scales)


def test_a_bad_night_among_several_writes_nothing(sim_night, tmp_path):
    archive = tmp_path / "archive"
    good = copy_night(sim_night, archive)
    good.rename(archive / "a_good")
    bad = copy_night(sim_night, archive)
    bad.rename(archive / "b_bad")
    _card("EXPTIME", -1.0)(sorted((archive / "b_bad" / "data").iterdir())[0])
    result = subprocess.run([*ccdred_command(), "reduce", str(archive), "--nights", "-o",
                             str(tmp_path / "out"), "--no-cosmics", "--no-report"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 2, result.stderr
    assert "nothing was written" in result.stderr and "is negative" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.fits"))


# --- the raw tree: links, loops, pipes, unreadable entries --------------------------------

def _odd_entries(raw: Path) -> dict[str, str]:
    (raw / "loop").symlink_to("..")
    (raw / "bias" / "self").symlink_to(raw)
    (raw / "dangling.fits").symlink_to("nowhere.fits")
    (raw / "circle.fits").symlink_to("circle.fits")
    os.mkfifo(raw / "pipe.fits")
    return {"loop": "a loop", "self": "a loop", "dangling.fits": "broken symbolic link",
            "circle.fits": "symbolic link loop", "pipe.fits": "not a regular file"}


def test_links_loops_and_pipes_are_bad_input_lines(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    odd = _odd_entries(raw)
    result = subprocess.run([*ccdred_command(), "reduce", str(raw), "-o", str(tmp_path / "o"),
                             "--no-cosmics"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "250"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    for name, words in odd.items():
        assert sum(f"/{name}:" in line and words in line for line in lines) == 1, name
    assert not (tmp_path / "o").exists()


def test_skip_bad_goes_on_past_links_and_loops(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    _odd_entries(raw)
    result = ccdred.reduce_night(raw, tmp_path / "out",
                                 options=ReduceOptions(cosmics=False, skip_bad=True))
    assert len(result.reduced) == 3 and len(result.plan.skipped) == 5


def test_a_linked_calibration_folder_is_followed(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    shared = tmp_path / "shared_flats"
    (raw / "flats").rename(shared)
    (raw / "flats").symlink_to(shared)
    plan = ccdred.plan_night(raw)
    assert all(s.flat for s in plan.science) and not plan.skipped


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_unreadable_file_and_folder_are_bad_input_lines(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    victim = sorted((raw / "bias").iterdir())[0]
    victim.chmod(0)
    (raw / "locked").mkdir()
    (raw / "locked").chmod(0)
    try:
        plan = ccdred.plan_night(raw)
        reasons = {i.path.name: i.error for i in plan.skipped}
        assert "permission denied" in reasons[victim.name]
        assert "cannot be read" in reasons["locked"]
    finally:
        victim.chmod(0o644)
        (raw / "locked").chmod(0o755)


# --- where the output goes ---------------------------------------------------------------

@pytest.mark.parametrize("where", ["inside", "above", "inside-twice"])
def test_output_inside_or_above_the_raw_folder(sim_night, tmp_path, where):
    raw = copy_night(sim_night, tmp_path / "night")
    before = checksums(raw)
    out = {"inside": raw / "reduced", "above": tmp_path / "night",
           "inside-twice": raw / "first"}[where]
    result = ccdred.reduce_night(raw, out, options=FAST)
    assert len(result.reduced) == 3
    if where == "inside-twice":  # a second output inside raw: the first's products are not raw
        second = ccdred.reduce_night(raw, raw / "second", options=FAST)
        assert len(second.reduced) == 3
        assert any("written by ccdred" in w for w in second.plan.warnings)
        inputs = {p for m in second.plan.masters for p in m.inputs} | {
            s.input.path for s in second.plan.science}
        assert not any("first" in p.parts for p in inputs)
        result = second
    again = ccdred.reduce_night(raw, out, options=FAST)  # a re-run sees the same night
    assert len(again.reduced) == 3
    assert [len(m.inputs) for m in again.plan.masters] == [
        len(m.inputs) for m in result.plan.masters]
    after = {p: s for p, s in checksums(raw).items() if p in before}
    assert after == before


def test_nights_under_an_output_folder_are_not_nights(sim_night, tmp_path):
    archive = tmp_path / "archive"
    copy_night(sim_night, archive).rename(archive / "n1")
    first = ccdred.pipeline.nights.find_nights([archive], archive / "out", subfolders=True)
    ccdred.reduce_night(first[0].raw_dir, archive / "out", options=FAST)
    again = ccdred.pipeline.nights.find_nights([archive], archive / "out", subfolders=True)
    assert [n.raw_dir.name for n in again] == ["n1"]


# --- option values ------------------------------------------------------------------------

@pytest.mark.parametrize("args,words", [
    (["--memory-limit", "infG"], "memory size 'infG'"),
    (["--memory-limit", "0"], "memory_limit must be a positive"),
    (["--memory-limit", "-5G"], "memory_limit must be a positive"),
    (["--memory-limit", "1e30G"], "memory_limit must be at most"),
    (["--read-noise", "inf"], "read_noise must be a positive number"),
    (["--saturation", "nan"], "saturation must be a positive number"),
    (["--hot-sigma", "0"], "hot_sigma must be a positive number"),
    (["--workers", "0"], "workers must be at least 1"),
    (["--dask-local", "-1"], "dask_local must be at least 1"),
    (["--temperature-tolerance", "nan"], "temperature_tolerance must be a number >= 0"),
    (["--validity-days", "-1"], "validity_days must be a number >= 0"),
    (["--scheduler", "tcp://a b"], "scheduler must be an address"),
])
def test_bad_option_values_exit_2_before_any_work(sim_night, tmp_path, args, words):
    out = tmp_path / "out"
    result = subprocess.run([*ccdred_command(), "reduce", str(sim_night.raw_dir), "-o",
                             str(out), *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "250"})
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


# --- calibration libraries this ccdred cannot use -----------------------------------------

def _text_file(path: Path) -> None:
    path.write_text("not a database")


def _sqlite(*statements):
    def make(path: Path) -> None:
        import sqlite3

        with sqlite3.connect(path) as db:
            for statement in statements:
                db.execute(statement)
        db.close()
    return make


@pytest.mark.parametrize("make,words", [
    (_text_file, "file is not a database"),
    (lambda path: path.mkdir(), "is a directory"),
    (_sqlite("CREATE TABLE masters (id INTEGER)", "PRAGMA user_version = 9"),
     "made by a newer ccdred (schema 9"),
    (_sqlite("CREATE TABLE notes (id INTEGER)"), "other tables (notes)"),
    (_sqlite("CREATE TABLE masters (id INTEGER)", "PRAGMA user_version = 2"),
     "lacks the column(s) kind"),
], ids=["text", "directory", "newer", "other", "wrong-columns"])
def test_an_unusable_library_is_refused_before_any_work(sim_night, tmp_path, make, words):
    library = tmp_path / "lib.sqlite"
    make(library)
    out = tmp_path / "out"
    with pytest.raises(BadInputError, match=re.escape(words)) as info:
        ccdred.reduce_night(sim_night.raw_dir, out, options=FAST, library=library)
    assert "lib.sqlite" in str(info.value)
    assert not out.exists()


def test_a_re_run_removes_every_stale_temporary_file(sim_night, tmp_path):
    out = tmp_path / "out"
    stale = [out / ".manifest.json.abc123.part", out / "masters" / ".bias.fits.x1.part",
             out / "reduced" / ".frame.fits.x2.part", out / "report" / ".index.html.x3.part",
             out / "report" / "figures" / ".frame_full.png.x4.part"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    keep = out / "notes.part"  # not a name ccdred gives its temporary files
    keep.write_text("mine")
    ccdred.reduce_night(sim_night.raw_dir, out, options=FAST)
    assert not any(p.exists() for p in stale)
    assert keep.read_text() == "mine"


def test_a_changed_library_master_is_refused_before_any_work(sim_night, tmp_path):
    library = tmp_path / "lib.sqlite"
    first = ccdred.reduce_night(sim_night.raw_dir, tmp_path / "a", options=FAST,
                                library=library)
    raw = copy_night(sim_night, tmp_path)
    shutil.rmtree(raw / "flats")  # the night borrows its flat
    flat = first.masters["flat_R"]
    plan = ccdred.plan_night(raw, tmp_path / "b", library=library)
    assert any(m.library is not None for m in plan.masters)
    with fits.open(flat, mode="update") as hdul:
        hdul[0].header["HISTORY"] = "touched after it was registered"
    with pytest.raises(BadInputError, match="changed since it was registered"):
        ccdred.reduce_night(raw, tmp_path / "b", options=FAST, library=library, plan=plan)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("x,y", [(99999, 5), (5, 128), (128, 0)])
def test_a_cutout_outside_the_image_is_refused(x, y):
    from ccdred.plots import Cutout

    with pytest.raises(ValueError, match="outside the 128x128 image"):
        Cutout(x, y, 10).bounds((128, 128))
    assert Cutout(127, 127, 10).bounds((128, 128)) == (122, 128, 122, 128)
