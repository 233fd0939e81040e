"""Hostile input: broken, odd and compressed files; nothing lost, nothing half-written."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import ccdred
from ccdred import io
from ccdred.errors import BadInputError
from ccdred.flags import Flag
from ccdred.inventory import describe_file
from ccdred.pipeline import ReduceOptions

from .conftest import ccdred_command

FAST = ReduceOptions(cosmics=False)


def copy_night(sim_night, dest: Path) -> Path:
    raw = dest / "raw"
    shutil.copytree(sim_night.raw_dir, raw)
    return raw


def checksums(root: Path) -> dict[Path, str]:
    return {p: io.sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(out: Path) -> list[Path]:
    """Temporary files a failed write could leave behind."""
    return [p for p in out.rglob("*") if p.name.endswith(".part")] if out.exists() else []


# --- one bad file: refused before any work, named with its problem -----------------------

def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _text(path: Path) -> None:
    path.write_text("RA DEC MAG\n10.1 20.2 13.5\n")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _cube(path: Path) -> None:
    header = fits.getheader(path)
    fits.PrimaryHDU(np.zeros((3, 16, 16), np.uint16), header=header).writeto(path, overwrite=True)


def _no_exptime(path: Path) -> None:
    with fits.open(path, mode="update") as hdul:
        del hdul[0].header["EXPTIME"]


@pytest.mark.parametrize("damage,problem", [
    (_truncated, "truncated"),
    (_text, "not a readable FITS file"),
    (_empty, "empty"),
    (_directory, "is a directory"),
    (_cube, "3-D cube"),
    (_no_exptime, "without an exposure time"),
])
def test_a_bad_file_refuses_the_run_and_names_itself(sim_night, tmp_path, damage, problem):
    raw = copy_night(sim_night, tmp_path)
    victim = sorted((raw / "data").iterdir())[0]
    damage(victim)
    before = checksums(raw)
    out = tmp_path / "out"
    with pytest.raises(BadInputError) as info:
        ccdred.reduce_night(raw, out, options=FAST)
    message = str(info.value)
    assert victim.name in message and problem in message
    assert not out.exists()
    assert checksums(raw) == before


def test_skip_bad_goes_on_and_lists_the_file(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    victim = sorted((raw / "data").iterdir())[0]
    _truncated(victim)
    out = tmp_path / "out"
    result = ccdred.reduce_night(raw, out, options=ReduceOptions(cosmics=False, skip_bad=True))
    assert len(result.reduced) == 2
    skipped = json.loads((out / "manifest.json").read_text())["plan"]["skipped"]
    assert [Path(s["path"]).name for s in skipped] == [victim.name]
    assert "truncated" in skipped[0]["reason"]


def test_cli_lists_every_bad_file_on_its_own_line(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    victims = sorted((raw / "data").iterdir())[:2]
    _truncated(victims[0])
    _text(victims[1])
    result = subprocess.run([*ccdred_command(), "reduce", str(raw), "-o", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    for victim in victims:
        assert sum(victim.name in line for line in lines) == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


# --- files that must work -----------------------------------------------------------------

def _gzip_all(raw: Path) -> None:
    for path in list(raw.rglob("*.fits")):
        with open(path, "rb") as src, gzip.open(path.with_name(path.name + ".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
        path.unlink()


def _tile_compress_all(raw: Path) -> None:
    for path in list(raw.rglob("*.fits")):
        with fits.open(path) as hdul:
            comp = fits.CompImageHDU(hdul[0].data, header=hdul[0].header,
                                     compression_type="RICE_1")
        fits.HDUList([fits.PrimaryHDU(), comp]).writeto(path.with_suffix(".fits.fz"))
        path.unlink()


def _image_in_extension(raw: Path) -> None:
    for path in list(raw.rglob("*.fits")):
        with fits.open(path) as hdul:
            header = hdul[0].header.copy()
            data = hdul[0].data
        primary = fits.PrimaryHDU(header=fits.Header({"ORIGIN": "test"}))
        fits.HDUList([primary, fits.ImageHDU(data, header=header, name="SCI")]).writeto(
            path, overwrite=True)


@pytest.fixture(scope="module")
def plain_reduction(sim_night, tmp_path_factory):
    out = tmp_path_factory.mktemp("plain")
    result = ccdred.reduce_night(sim_night.raw_dir, out, options=FAST)
    return {p.name: io.read(p) for p in result.reduced}


@pytest.mark.parametrize("convert", [_gzip_all, _tile_compress_all, _image_in_extension])
def test_compressed_and_extension_files_reduce_like_plain_ones(sim_night, tmp_path, convert,
                                                               plain_reduction):
    raw = copy_night(sim_night, tmp_path)
    convert(raw)
    result = ccdred.reduce_night(raw, tmp_path / "out", options=FAST)
    assert sorted(p.name for p in result.reduced) == sorted(plain_reduction)
    for path in result.reduced:
        frame, expected = io.read(path), plain_reduction[path.name]
        np.testing.assert_array_equal(frame.dq, expected.dq)
        np.testing.assert_allclose(frame.data, expected.data, rtol=1e-6, atol=1e-4,
                                   equal_nan=True)


def test_odd_names_work_and_duplicates_do_not_overwrite(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    science = sorted((raw / "data").iterdir())
    (raw / "nuit étoilée" / "a b").mkdir(parents=True)
    (raw / "second").mkdir()
    science[0].rename(raw / "nuit étoilée" / "a b" / "M31 Andromède (1).fits")
    shutil.copy(science[1], raw / "second" / science[1].name)
    with fits.open(raw / "second" / science[1].name, mode="update") as hdul:
        hdul[0].header["OBJECT"] = "another frame"  # the same name, not the same data
    result = ccdred.reduce_night(raw, tmp_path / "out", options=FAST)
    names = sorted(p.name for p in result.reduced)
    assert len(names) == len(set(names)) == 4
    assert "M31 Andromède (1).fits" in names
    assert sum(science[1].stem in name for name in names) == 2


# --- pixels and calibrations that would poison the arithmetic -----------------------------

def _rewrite(path: Path, change) -> None:
    with fits.open(path) as hdul:
        header = hdul[0].header.copy()
        data = change(hdul[0].data.astype(np.float32))
    for key in ("BZERO", "BSCALE"):
        header.remove(key, ignore_missing=True)
    fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)


def test_nan_and_inf_pixels_are_flagged_no_data(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    victim = sorted((raw / "data").iterdir())[0]

    def poison(data):
        data[10:12, 20:30] = np.nan
        data[40, 40:45] = np.inf
        data[50, 50] = -np.inf
        return data

    _rewrite(victim, poison)
    result = ccdred.reduce_night(raw, tmp_path / "out", options=ReduceOptions())
    frame = io.read(next(p for p in result.reduced if p.stem == victim.stem))
    no_data = (frame.dq & Flag.NO_DATA) != 0
    assert no_data[10:12, 20:30].all() and no_data[40, 40:45].all() and no_data[50, 50]
    assert no_data.sum() == 26
    assert not np.isinf(frame.data).any()


@pytest.mark.parametrize("value", [0.0, -500.0])
def test_zero_or_negative_flat_region_is_low_flat_never_inf(sim_night, tmp_path, value):
    raw = copy_night(sim_night, tmp_path)

    def blank(data):
        data[:16, :16] = value
        return data

    for flat in (raw / "flats").iterdir():
        _rewrite(flat, blank)
    result = ccdred.reduce_night(raw, tmp_path / "out", options=FAST)
    flat = io.read(result.masters["flat_R"])
    assert ((flat.dq[:16, :16] & Flag.LOW_FLAT) != 0).all()
    for path in result.reduced:
        frame = io.read(path)
        assert not np.isinf(frame.data).any()
        assert ((frame.dq[:16, :16] & Flag.LOW_FLAT) != 0).all()
        assert np.isfinite(frame.data[16:, 16:]).all()
        with fits.open(path) as hdul:
            assert not np.isinf(hdul["UNCERT"].data).any()


def test_shape_mismatch_names_both_shapes(sim_night):
    science = io.read(sim_night.files["science"][0])
    bias = io.read(sim_night.files["bias"][0])
    small = bias.replace(data=bias.data[:128, :200], variance=None, dq=None)
    with pytest.raises(ValueError, match=r"256x256.*200x128"):
        ccdred.steps.subtract_bias(science, small)


def test_binning_mismatch_gets_its_own_masters(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    for path in (raw / "flats").iterdir():
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["XBINNING"] = 2
            hdul[0].header["YBINNING"] = 2
    plan = ccdred.plan_night(raw)
    flat = next(m for m in plan.masters if m.kind == "flat")
    assert flat.setup[1] == (2, 2) and flat.bias is None
    assert all(s.flat is None for s in plan.science)
    assert any("no flat frames" in w for w in plan.warnings)


def test_wrong_filter_flat_is_never_used_silently(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    for path in (raw / "flats").iterdir():
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["FILTER"] = "V"
    result = ccdred.reduce_night(raw, tmp_path / "out", options=FAST)
    assert all(s.flat is None for s in result.plan.science)
    assert sum("no flat for filter 'R'" in w for w in result.plan.warnings) == 3
    header = fits.getheader(result.reduced[0])
    assert "FLATFILE" not in header
    assert any("flat: none applied" in str(h) for h in header["HISTORY"])


@pytest.mark.parametrize("kind,folder", [("bias", "bias"), ("dark", "darks"),
                                         ("flat", "flats")])
def test_a_single_calibration_frame_works_with_a_warning(sim_night, tmp_path, kind, folder):
    raw = copy_night(sim_night, tmp_path)
    for extra in sorted((raw / folder).iterdir())[1:]:
        extra.unlink()
    result = ccdred.reduce_night(raw, tmp_path / "out")
    assert any(f"a single {kind}" in w for w in result.plan.warnings)
    assert len(result.reduced) == 3
    # One frame has no scatter to measure noise from: the noise model gives it, so the
    # reduced frames keep a finite uncertainty, and L.A.Cosmic is not fed a zero noise.
    for path in result.reduced:
        frame = io.read(path)
        assert np.isfinite(frame.variance[~frame.bad]).all()
        assert ((frame.dq & Flag.COSMIC_RAY) != 0).mean() < 0.01


def test_no_calibrations_says_what_is_missing(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    for folder in ("bias", "darks", "flats"):
        shutil.rmtree(raw / folder)
    plan = ccdred.plan_night(raw)
    text = " ".join(plan.warnings)
    assert "no bias" in text and "no dark" in text and "no flat" in text
    result = subprocess.run([*ccdred_command(), "reduce", str(raw), "-o", str(tmp_path / "o"),
                             "--no-cosmics"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "no bias" in result.stdout + result.stderr


# --- outputs: never half-written, never mistaken for input --------------------------------

def test_output_directory_that_cannot_be_written_is_refused_before_work(sim_night, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    result = subprocess.run([*ccdred_command(), "reduce", str(sim_night.raw_dir), "-o",
                             str(blocker / "out"), "--no-cosmics"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "cannot write" in result.stderr and str(blocker) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only directory")
def test_read_only_output_directory_is_refused(sim_night, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(BadInputError, match="cannot write"):
            ccdred.reduce_night(sim_night.raw_dir, out, options=FAST)
    finally:
        out.chmod(0o700)


def test_disk_full_leaves_no_partial_file(sim_night, tmp_path):
    """The file-size limit makes every write past 600 kB fail like a full disk (EFBIG)."""
    out = tmp_path / "out"
    code = ("import resource, sys; from ccdred.cli import main; "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000)); sys.exit(main())")
    result = subprocess.run([sys.executable, "-c", code, "reduce", str(sim_night.raw_dir),
                             "-o", str(out), "--no-cosmics"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr
    assert leftovers(out) == []
    assert not (out / "manifest.json").exists()
    for path in out.rglob("*.fits"):
        with fits.open(path, checksum=True) as hdul:  # every file left is whole
            hdul.verify("exception")
            assert all(h.data is not None for h in hdul[1:])


def test_the_raw_folder_is_never_written(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    before = checksums(raw)
    ccdred.reduce_night(raw, raw / "reduced", options=FAST)
    ccdred.reduce_night(raw, raw / "reduced", options=FAST)
    after = {p: s for p, s in checksums(raw).items() if "reduced" not in p.parts}
    assert after == before


# --- header readers on random and malformed headers ----------------------------------------

def test_describe_file_reports_instead_of_raising_on_odd_keywords(tmp_path):
    path = tmp_path / "odd.fits"
    header = fits.Header()
    header["IMAGETYP"] = "LIGHT"
    header["EXPTIME"] = "forever"
    header["XBINNING"] = "two"
    header["CCD-TEMP"] = "cold"
    fits.PrimaryHDU(np.zeros((4, 4), np.int16), header=header).writeto(path)
    info = describe_file(path)
    assert info.kind == "science" and not info.ok and "exposure time" in info.error
    assert info.binning == (1, 1) and info.temperature is None


def test_image_header_with_broken_cards_is_explained(tmp_path):
    path = tmp_path / "broken_cards.fits"
    cards = ["SIMPLE  =                    T", "BITPIX  =                   16",
             "NAXIS   =                    2", "NAXIS1  =                    4",
             "NAXIS2  =                    4", "EXPTIME = 'unterminated", "IMAGETYP= 12.3.4",
             "END"]
    block = "".join(card.ljust(80) for card in cards).ljust(2880).encode("ascii")
    path.write_bytes(block + bytes(2880))
    info = describe_file(path)
    assert info.path == path and (info.ok or info.error)


def test_unreadable_file_never_leaks_a_traceback_from_info(tmp_path):
    path = tmp_path / "x.fits"
    path.write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    result = subprocess.run([*ccdred_command(), "info", str(path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "x.fits" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(BadInputError, match="x.fits"):
        io.read(path)


def test_a_saturated_flat_pixel_never_becomes_a_good_flat_value(sim_night, tmp_path):
    raw = copy_night(sim_night, tmp_path)
    flats = sorted((raw / "flats").iterdir())
    for i, path in enumerate(flats):  # raw uint16 kept: 65535 is the ADC's limit
        with fits.open(path, mode="update") as hdul:
            data = hdul[0].data
            data[100:104, 100:104] = 65535  # saturated in every flat: no value left
            if i < 3:
                data[150:152, 60:62] = 65535  # in three: the others still measure it
    result = ccdred.reduce_night(raw, tmp_path / "out", options=FAST)
    flat = io.read(result.masters["flat_R"])
    assert ((flat.dq[100:104, 100:104] & (Flag.NO_DATA | Flag.LOW_FLAT)) != 0).all()
    truth = sim_night.truth.flat[150:152, 60:62]
    np.testing.assert_allclose(flat.data[150:152, 60:62], truth, rtol=0.03)
    assert not flat.bad[150:152, 60:62].any()
