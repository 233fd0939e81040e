"""``--units electrons``: science products x the gain used, BUNIT on every product."""

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData

import ccdred
from ccdred import qa
from ccdred.frame import Frame
from ccdred.pipeline import ReduceOptions

from .test_cli import run


@pytest.fixture(scope="module")
def electron_night(sim_night, tmp_path_factory):
    """The simulated night reduced through the command line in electrons."""
    out = tmp_path_factory.mktemp("electrons")
    run("reduce", sim_night.raw_dir, "-o", out, "--units", "electrons", "--workers", "1")
    return out


def test_units_option_is_validated():
    assert ReduceOptions(units="electron").units == "electron"
    with pytest.raises(ValueError, match="units must be one of adu, electron"):
        ReduceOptions(units="electrons")


def test_frame_times_gain_scales_values_and_variance_exactly():
    rng = np.random.default_rng(3)
    frame = Frame(rng.normal(100, 5, (8, 9)).astype(np.float32),
                  variance=rng.uniform(1, 50, (8, 9)).astype(np.float32))
    gain = 1.37
    scaled = frame * gain
    k = np.float32(gain)
    np.testing.assert_array_equal(scaled.data, frame.data * k)
    np.testing.assert_array_equal(scaled.variance, frame.variance * k * k)
    np.testing.assert_array_equal(frame.data, (frame * 1.0).data)  # input unchanged


def test_electron_products_are_the_adu_products_times_the_gain(reduced_night, electron_night):
    adu_paths = sorted(reduced_night.reduced)
    e_paths = sorted((electron_night / "reduced").glob("*.fits"))
    assert [p.name for p in adu_paths] == [p.name for p in e_paths]
    for adu_path, e_path in zip(adu_paths, e_paths, strict=True):
        header = fits.getheader(e_path)
        gain = header["GAIN"]
        assert header["BUNIT"] == "electron" and fits.getheader(adu_path)["BUNIT"] == "adu"
        assert header["GAINSRC"] and gain == fits.getheader(adu_path)["GAIN"]
        adu, electrons = CCDData.read(adu_path), CCDData.read(e_path)
        assert adu.unit == u.adu and electrons.unit == u.electron
        # The conversion is the last step: the same float32 ADU image times float32(gain).
        np.testing.assert_array_equal(electrons.data, adu.data * np.float32(gain))
        np.testing.assert_array_equal(electrons.mask, adu.mask)
        # UNCERT holds sqrt(variance): sqrt(v k^2) and sqrt(v) k differ by float32 rounding
        # (a few parts in 1e7), nothing more.
        np.testing.assert_allclose(electrons.uncertainty.array,
                                   adu.uncertainty.array * gain, rtol=5e-7, atol=0)
        assert fits.getheader(e_path, "UNCERT")["BUNIT"] == "electron"


def test_masters_stay_in_adu_and_say_so(electron_night):
    masters = sorted((electron_night / "masters").glob("*.fits"))
    assert masters
    for path in masters:
        if path.name != "badpix.fits":
            assert fits.getheader(path)["BUNIT"] == "adu", path.name


def test_qa_reads_the_unit(sim_night, tmp_path):
    # Unrepaired hot pixels, so that the dark residual has pixels to measure.
    outs = {units: ccdred.reduce_night(sim_night.raw_dir, tmp_path / units, options=ReduceOptions(
        units=units, repair=False, cosmics=False)).out_dir for units in ("adu", "electron")}
    name = sorted((outs["adu"] / "reduced").glob("*.fits"))[0].name
    adu = ccdred.read(outs["adu"] / "reduced" / name)
    electrons = ccdred.read(outs["electron"] / "reduced" / name)
    assert qa.adu_to_frame_units(adu) == 1.0
    assert qa.adu_to_frame_units(electrons) == electrons.header["GAIN"] != 1.0
    dark = ccdred.read(outs["adu"] / "masters" / "dark_300s.fits")
    scale = adu.header["DARKSCL"]
    by_name = [{m.name: m for m in qa.science_checks(f, dark=dark, dark_scale=scale)}
               for f in (adu, electrons)]
    residual = by_name[0]["dark residual"].value
    assert np.isfinite(residual) and abs(residual) < 0.1
    # The same fraction of the dark is left whatever the unit (float32 rounding only).
    assert by_name[1]["dark residual"].value == pytest.approx(residual, rel=1e-3, abs=1e-5)
    # A frame left with its whole dark (added in electrons) shows 1 of the dark left; read as
    # if it were ADU, it would show the gain instead: the unit is what makes the answer right.
    gain = electrons.header["GAIN"]
    undarkened = electrons.replace(data=electrons.data + dark.data * np.float32(scale * gain))
    left = {m.name: m for m in qa.science_checks(undarkened, dark=dark, dark_scale=scale)}
    assert left["dark residual"].value == pytest.approx(1.0, abs=0.02)
    as_adu = undarkened.with_header({"BUNIT": "adu"})
    wrong = {m.name: m for m in qa.science_checks(as_adu, dark=dark, dark_scale=scale)}
    assert wrong["dark residual"].value == pytest.approx(gain, rel=0.02)
    unknown = electrons.with_header({"BUNIT": "Jy"})
    metric = {m.name: m for m in qa.science_checks(unknown, dark=dark)}["dark residual"]
    assert metric.verdict == "info" and "BUNIT='Jy'" in metric.detail


def test_report_states_the_unit(electron_night):
    page = (electron_night / "report" / "index.html").read_text()
    assert "science frames in electrons" in page and "units: electron (ADU x GAIN=" in page
