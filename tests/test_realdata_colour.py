"""The real colour CMOS lights in ../shared/data (a ZWO ASI224MC via INDI/Ekos): no calibration
frames, GAIN=180 a gain setting, a 12-bit ADC scaled into 16 bits, RGGB. Skipped without data."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from astropy.io import fits

import ccdred
from ccdred.flags import Flag

from .conftest import ccdred_command


@pytest.fixture(scope="module")
def lights(shared_data, tmp_path_factory):
    raw = shared_data / "asi224mc-als-lights"
    out = tmp_path_factory.mktemp("asi224mc")
    before = {p: ccdred.io.sha256(p) for p in raw.glob("*.fits")}
    result = subprocess.run([*ccdred_command(), "reduce", str(raw), "-o", str(out),
                             "--no-report"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert before == {p: ccdred.io.sha256(p) for p in raw.glob("*.fits")}
    return out, result.stdout


def test_colour_lights_keep_their_pixels(lights):
    out, _ = lights
    reduced = sorted((out / "reduced").glob("*.fits"))
    assert len(reduced) == 6
    for path in reduced:
        frame = ccdred.read(path)
        assert frame.has(Flag.COSMIC_RAY).mean() <= 0.002, path.name
        assert frame.bad.mean() <= 0.003, path.name


def test_the_gain_setting_is_not_taken_for_electrons_per_adu(lights):
    out, stdout = lights
    assert "GAIN=180 is KStars/Ekos (INDI)'s gain setting" in stdout
    header = fits.getheader(next((out / "reduced").glob("*.fits")))
    # The gain comes from the lights' own sky: ZWO gives ~0.38 e- per 12-bit code at gain 180,
    # 0.024 per saved ADU; the sky noise of the colour planes says 0.02-0.05.
    assert 0.01 < header["GAIN"] < 0.1
    assert "sky noise" in header["GAINSRC"]


def test_the_real_full_scale_and_the_mosaic_are_kept(lights):
    out, _ = lights
    path = next((out / "reduced").glob("*.fits"))
    frame = ccdred.read(path)
    raw = _raw_of(path)
    saturated = frame.has(Flag.SATURATED)
    # The 12-bit ADC piles up at 65504 (one code below its 65520 full scale): every such value
    # is saturated, none below.
    assert saturated.sum() == (raw >= 65504).sum() > 0
    assert frame.header["BAYERPAT"] == "RGGB" and frame.shape == raw.shape
    assert np.isfinite(frame.data[~frame.bad]).all()


def _raw_of(path):
    from .conftest import SHARED_DATA

    return fits.getdata(SHARED_DATA / "asi224mc-als-lights" / path.name).astype(np.float64)
