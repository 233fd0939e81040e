"""Overscan and trim: section parsing, per-row models, and a night read out with an overscan."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

import ccdred
from ccdred.frame import Frame
from ccdred.pipeline import ReduceOptions
from ccdred.simulate import CameraModel, simulate_night
from ccdred.steps.overscan import (
    Section,
    overscan_levels,
    parse_section,
    readout_geometry,
    subtract_overscan,
    trim,
)


@pytest.mark.parametrize("text,expected", [
    ("[1:100,1:50]", Section(0, 50, 0, 100)),
    ("[ 101:110 , 1:50 ]", Section(0, 50, 100, 110)),
    ("[100:1,50:1]", Section(0, 50, 0, 100)),  # IRAF's flipped ranges: same pixels
])
def test_sections_are_fits_one_based_inclusive(text, expected):
    assert parse_section(text, (50, 110)) == expected
    assert parse_section(expected.fits(), (50, 110)) == expected


@pytest.mark.parametrize("text,why", [
    ("[0,513:0,1536]", "not a FITS section"),   # CAFOS
    ("[513:1536,513:1536]", "does not fit"),     # chip coordinates, not image ones
    ("[0:10,1:50]", "does not fit"),
    ("garbage", "not a FITS section"),
    ("", "not a FITS section"),
])
def test_nonsensical_sections_are_refused_with_a_reason(text, why):
    with pytest.raises(ValueError, match=why):
        parse_section(text, (50, 110))


def test_geometry_ignores_what_does_not_fit_with_a_note():
    cafos = fits.Header({"BIASSEC": "[0,513:0,1536]", "DATASEC": "[513,513:1536,1536]"})
    geometry = readout_geometry(cafos, (1024, 1024))
    assert geometry.biassec is None and geometry.trimsec is None
    assert len(geometry.notes) == 2 and "BIASSEC ignored" in geometry.notes[0]
    partial = fits.Header({"BIASSEC": "[101:110,1:20]", "TRIMSEC": "[1:100,1:50]"})
    geometry = readout_geometry(partial, (50, 110))
    assert geometry.biassec is None and "every data row" in geometry.notes[0]
    good = fits.Header({"BIASSEC": "[101:110,1:50]", "DATASEC": "[1:100,1:50]"})
    geometry = readout_geometry(good, (50, 110))
    assert geometry.biassec == Section(0, 50, 100, 110) and geometry.notes == ()
    assert geometry.data_shape((50, 110)) == (50, 100)


@pytest.mark.parametrize("model", ["median", "mean", "poly"])
def test_overscan_models_recover_a_row_dependent_level(model):
    rng = np.random.default_rng(1)
    rows = np.arange(400)
    level = 1000 + 0.01 * rows + 3e-5 * (rows - 200) ** 2
    overscan = level[:, None] + rng.normal(0, 5, (400, 40))
    overscan[10, 3] = 60000  # a hot overscan pixel must not pull its row
    got = overscan_levels(overscan, model=model)
    tolerance = {"median": 5 * 1.25 / np.sqrt(40) * 4, "mean": 5 / np.sqrt(40) * 4,
                 "poly": 1.0}[model]
    assert np.abs(got - level).max() < tolerance
    assert abs(got[10] - level[10]) < tolerance


def test_subtract_and_trim_a_frame_without_touching_the_input():
    data = np.tile(np.arange(6, dtype=np.float32)[:, None] * 10, (1, 12))
    data[:, :10] += 5.0
    header = fits.Header({"CRPIX1": 50.0, "CRPIX2": 20.0, "TRIMSEC": "[2:9,2:5]"})
    frame = Frame(data, header=header)
    out = trim(subtract_overscan(frame, Section(0, 6, 10, 12)), Section(1, 5, 1, 9))
    assert out.shape == (4, 8)
    np.testing.assert_allclose(out.data, 5.0)
    assert out.header["CRPIX1"] == 49.0 and out.header["CRPIX2"] == 19.0
    assert "TRIMSEC" not in out.header and frame.data[0, 0] == 5.0


@pytest.fixture(scope="module")
def overscan_night(tmp_path_factory):
    model = CameraModel(size=192, n_stars=30, overscan=24)
    return simulate_night(tmp_path_factory.mktemp("overscan"), model=model, seed=5)


def test_a_night_with_an_overscan_is_subtracted_and_trimmed(overscan_night, tmp_path):
    raw = overscan_night.files["science"][0]
    assert fits.getdata(raw).shape == (192, 216)
    plan = ccdred.plan_night(overscan_night.raw_dir)
    assert plan.science[0].input.overscan == "[193:216,1:192]"
    result = ccdred.reduce_night(overscan_night.raw_dir, tmp_path / "out",
                                 options=ReduceOptions(cosmics=False, repair=False))
    for path in result.masters.values():
        assert fits.getdata(path).shape == (192, 192)
        assert "BIASSEC" not in fits.getheader(path)
    master_history = str(fits.getheader(result.masters["bias"])["HISTORY"])
    assert "overscan [193:216,1:192] subtracted (median per row)" in master_history
    pulls = []
    for path in result.reduced:
        frame = ccdred.read(path)
        assert frame.shape == (192, 192) and "BIASSEC" not in frame.header
        assert "trimmed from 216x192 to 192x192" in str(frame.header["HISTORY"])
        truth = overscan_night.truth.science[path.name]
        hits = ndimage.binary_dilation(overscan_night.truth.cosmics[path.name], iterations=2)
        good = ~frame.bad & ~overscan_night.truth.hot & ~hits
        pulls.append(((frame.data - truth) / np.sqrt(frame.variance))[good])
    pulls = np.concatenate(pulls)
    # Each frame's bias drifts by ~5 ADU (~1.5 sigma of the sky noise would show as a bias in
    # the mean pull); the overscan takes it out.
    assert abs(np.median(pulls)) < 0.1
    assert 0.9 < np.std(pulls) < 1.1


def test_without_overscan_correction_the_drift_stays(overscan_night, tmp_path):
    result = ccdred.reduce_night(overscan_night.raw_dir, tmp_path / "out",
                                 options=ReduceOptions(cosmics=False, repair=False,
                                                       overscan=None))
    frame = ccdred.read(result.reduced[0])
    assert frame.shape == (192, 216)  # nothing trimmed either
    truth = overscan_night.truth.science[result.reduced[0].name]
    offsets = [np.nanmedian(ccdred.read(p).data[:, :192] - overscan_night.truth.science[p.name])
               for p in result.reduced]
    assert max(abs(o) for o in offsets) > 1.0
    assert truth.shape == (192, 192)
