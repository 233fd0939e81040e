"""Every integer image type saturates at its real full scale; float data say they cannot."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import ccdred
from ccdred import io
from ccdred.flags import Flag
from ccdred.inventory import describe_file
from ccdred.pipeline import ReduceOptions
from ccdred.pipeline.sensor import analyse_sensor


def _frame(path: Path, hdu: fits.PrimaryHDU) -> Path:
    hdu.header["IMAGETYP"] = "LIGHT"
    hdu.header["EXPTIME"] = 10.0
    hdu.writeto(path)
    return path


def _values(top: float, bottom: float, rng) -> np.ndarray:
    """Sky at 10% of the range, a pile of 40 saturated pixels at ``top``, one pixel at 90%."""
    data = bottom + (top - bottom) * (0.1 + 0.01 * rng.standard_normal((64, 64)))
    data[:4, :10] = top
    data[30, 30] = bottom + 0.9 * (top - bottom)
    return data


CASES = [  # (numpy type written, BSCALE, BZERO, the largest value the file can hold)
    (np.uint8, None, None, 255.0),                 # BITPIX 8 is unsigned in FITS
    (np.int8, None, None, 127.0),                  # BITPIX 8 with BZERO -128
    (np.int16, None, None, 32767.0),
    (np.uint16, None, None, 65535.0),              # BITPIX 16 with BZERO 32768
    (np.int32, None, None, 2147483647.0),
    (np.uint32, None, None, 4294967295.0),         # BITPIX 32 with BZERO 2**31
    (np.int16, 2.0, 0.0, 65534.0),                 # BSCALE 2
    (np.int16, 0.5, 16384.0, 32767 * 0.5 + 16384),  # BSCALE 0.5, BZERO 16384
]


@pytest.mark.parametrize("dtype,bscale,bzero,top", CASES)
def test_integer_files_saturate_at_their_full_scale(tmp_path, dtype, bscale, bzero, top):
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    if bscale is None:
        bottom = 0.0 if info.min < 0 else float(info.min)
        data = np.round(_values(float(info.max), bottom, rng)).astype(dtype)
        hdu = fits.PrimaryHDU(data)
    else:
        lowest = info.min * bscale + bzero
        data = _values(top, lowest, rng)
        hdu = fits.PrimaryHDU(data)
        hdu.scale(np.dtype(dtype).name, bscale=bscale, bzero=bzero)
    path = _frame(tmp_path / "frame.fits", hdu)
    frame = describe_file(path)
    assert frame.ok, frame.error
    sensor = analyse_sensor([frame], None)
    assert sensor.saturation == pytest.approx(top, rel=1e-9)
    values = io.read(path).data
    assert values[30, 30] < sensor.saturation <= values[0, 0] + abs(top) * 1e-6


def test_the_option_sets_saturation_for_any_type(tmp_path):
    hdu = fits.PrimaryHDU(np.full((16, 16), 100, np.uint8))
    frame = describe_file(_frame(tmp_path / "f.fits", hdu))
    assert analyse_sensor([frame], 200.0).saturation == 200.0


def _float_science(sim_night, tmp_path: Path, saturate: bool) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(sim_night.raw_dir, raw)
    for path in (raw / "data").iterdir():
        with fits.open(path) as hdul:
            header = hdul[0].header.copy()
            data = hdul[0].data.astype(np.float32)
        for key in ("BZERO", "BSCALE"):
            header.remove(key, ignore_missing=True)
        data[5:8, 5:8] = 60000.0  # a star core at the level the camera saturates
        if saturate:
            header["SATURATE"] = 60000.0
        fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)
    return raw


def test_float_frames_without_saturation_keyword_get_a_plan_warning(sim_night, tmp_path):
    raw = _float_science(sim_night, tmp_path, saturate=False)
    plan = ccdred.plan_night(raw)
    notes = [w for w in plan.warnings if "cannot be flagged" in w]
    assert len(notes) == 1 and "3 floating-point frame(s)" in notes[0]
    assert "--saturation" in notes[0]
    assert not [w for w in ccdred.plan_night(raw, saturation=60000.0).warnings
                if "cannot be flagged" in w]


@pytest.mark.parametrize("how", ["keyword", "option"])
def test_float_frames_are_flagged_with_a_keyword_or_the_option(sim_night, tmp_path, how):
    raw = _float_science(sim_night, tmp_path, saturate=how == "keyword")
    plan = ccdred.plan_night(raw)
    assert any("cannot be flagged" in w for w in plan.warnings) == (how == "option")
    options = ReduceOptions(cosmics=False, saturation=60000.0 if how == "option" else None)
    result = ccdred.reduce_night(raw, tmp_path / "out", options=options)
    assert not any("cannot be flagged" in w for w in result.plan.warnings)
    for sci, path in zip(result.plan.science, result.reduced, strict=True):
        frame = io.read(path)
        saturated = (frame.dq & Flag.SATURATED) != 0
        assert saturated[5:8, 5:8].all()
        raw_saturated = io.read(sci.input.path).data >= 60000.0
        assert saturated[raw_saturated].all()
        assert (saturated & ~raw_saturated).sum() <= 20  # a master's saturated pixels
