"""The CMOS simulator: reproducible, ADC steps, pedestal, glow, colour, programs' conventions."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from astropy.io import fits

from ccdred.simulate_cmos import PROGRAMS, CmosModel, simulate_cmos_night

from .conftest import ccdred_command

SMALL = dict(size=64, n_stars=5, n_dark=2, n_flat=2, n_darkflat=2, light_exptimes=(30.0, 30.0))
"""A night small enough for a test that only looks at headers and layout."""


def _data(path):
    return fits.getdata(path).astype(np.float64)


def _cards(path):
    """Header cards without the checksum ones (their comment holds the writing time)."""
    header = fits.getheader(path)
    return [(c.keyword, c.value, c.comment) for c in header.cards
            if c.keyword not in ("CHECKSUM", "DATASUM")]


def _planes(image):
    """The four sub-lattices of a 2x2 mosaic: [0,0], [0,1], [1,0], [1,1]."""
    return [image[dy::2, dx::2] for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1))]


def test_same_seed_same_night(tmp_path):
    model = CmosModel(colour=True, program="sharpcap", **SMALL)
    first = simulate_cmos_night(tmp_path / "a", model=model, seed=3)
    second = simulate_cmos_night(tmp_path / "b", model=model, seed=3)
    other = simulate_cmos_night(tmp_path / "c", model=model, seed=4)
    for kind, paths in first.files.items():
        assert [p.relative_to(first.raw_dir) for p in paths] == [
            p.relative_to(second.raw_dir) for p in second.files[kind]]
        for a, b in zip(paths, second.files[kind], strict=True):
            np.testing.assert_array_equal(_data(a), _data(b))
            assert _cards(a) == _cards(b)
    for name, image in first.truth.science.items():
        np.testing.assert_array_equal(image, second.truth.science[name])
    assert not np.array_equal(_data(first.files["light"][0]), _data(other.files["light"][0]))


@pytest.mark.parametrize("bits", [12, 14, 16])
def test_values_are_adc_codes_shifted_to_16_bits(tmp_path, bits):
    model = CmosModel(adc_bits=bits, pedestal_codes=64.0, **SMALL)
    night = simulate_cmos_night(tmp_path, model=model, seed=1)
    step = 2 ** (16 - bits)
    assert model.gain_file == pytest.approx(model.egain_native / step)
    assert night.truth.pedestal_adu == 64.0 * step
    for path in night.files["light"] + night.files["flat"] + night.files["dark"]:
        raw = fits.getdata(path)
        assert raw.dtype.kind == "u" and raw.dtype.itemsize == 2
        assert np.all(raw.astype(np.int64) % step == 0)
    light = night.files["light"][0]
    saturated = night.truth.saturated[light.name]
    assert saturated.any()  # the brightest stars saturate in 30 s
    values = _data(light)[saturated]
    if bits < 16:  # the ADC's full scale comes first (egain 1: 4095 or 16383 e-)
        assert np.all(values == (2**bits - 1) * step)
    else:  # the full well (50000 e-) comes first, then read noise
        codes = model.full_well / model.egain_native + model.pedestal_codes
        assert np.all(np.abs(values - codes) <= 6 * model.read_noise / model.egain_native)


def test_pedestal_of_a_darkflat(tmp_path):
    model = CmosModel(**SMALL)
    night = simulate_cmos_night(tmp_path, model=model, seed=2)
    for path in night.files["darkflat"]:
        # Within one ADC code: the codes are rounded, and a 2 s dark-flat adds less than one
        # electron (one code at egain 1) of glow and dark current to the median pixel.
        assert abs(np.median(_data(path)) - night.truth.pedestal_adu) <= model.adu_per_code
    assert night.truth.pedestal_adu == 400.0  # 100 codes of a 14-bit ADC


def test_glow_is_brightest_at_its_corner_and_does_not_scale_with_exposure(tmp_path):
    model = CmosModel(size=64, n_stars=5, n_dark=10, n_flat=0, n_darkflat=0,
                      light_exptimes=(10.0, 100.0), hot_fraction=0.0)
    night = simulate_cmos_night(tmp_path, model=model, seed=5)
    truth = night.truth
    assert np.unravel_index(np.argmax(truth.glow), truth.glow.shape) == (0, 63)
    assert np.unravel_index(np.argmax(truth.glow_per_frame), truth.glow.shape) == (0, 63)
    corner = (slice(0, 3), slice(61, 64))
    measured, expected = {}, {}
    for exptime in (10.0, 100.0):
        darks = [_data(p) for p in night.files["dark"]
                 if fits.getheader(p)["EXPTIME"] == exptime]
        master = np.median(darks, axis=0)
        blocks = [master[:8, :8], master[:8, -8:], master[-8:, :8], master[-8:, -8:]]
        assert np.argmax([b.mean() for b in blocks]) == 1  # the [0, size-1] corner
        electrons = (np.mean(darks, axis=0) - truth.pedestal_adu) * truth.gain_file
        measured[exptime] = electrons[corner].mean()
        expected[exptime] = ((truth.dark_current + truth.glow)[corner] * exptime
                             + truth.glow_per_frame[corner]).mean()
        # Poisson + read noise of 10 frames x 9 pixels; 5 sigma.
        sigma = np.sqrt((expected[exptime] + model.read_noise**2) / 90)
        assert measured[exptime] == pytest.approx(expected[exptime], abs=5 * sigma)
    # Ten times the exposure gives far less than ten times the glow: per-frame glow dominates.
    assert measured[100.0] / measured[10.0] < 4.0
    intercept = (10 * measured[10.0] - measured[100.0]) / 9
    assert intercept == pytest.approx(truth.glow_per_frame[corner].mean(), abs=5.0)


def test_colour_flat_planes_follow_the_colour_response(tmp_path):
    model = CmosModel(size=128, colour=True, bayer="RGGB", n_dark=1, n_flat=2, n_darkflat=1,
                      light_exptimes=(10.0,), n_stars=5)
    night = simulate_cmos_night(tmp_path, model=model, seed=6)
    truth = night.truth
    flat = _data(night.files["flat"][0]) - truth.pedestal_adu
    red, green1, green2, blue = (np.median(p) for p in _planes(flat))
    # Every plane sees the same vignetting and dust, so the medians' ratios are the responses'.
    assert red / green1 == pytest.approx(0.55, rel=0.02)
    assert blue / green1 == pytest.approx(0.70, rel=0.02)
    assert green1 == pytest.approx(green2, rel=0.01)
    good = ~truth.dead
    assert truth.flat[good].mean() == pytest.approx(1.0)
    red, green1, green2, blue = _planes(truth.flat_per_plane)
    ok_red, ok_green1, ok_green2, ok_blue = _planes(good)
    assert red[ok_red].mean() == pytest.approx(1.0) and blue[ok_blue].mean() == pytest.approx(1.0)
    assert np.concatenate([green1[ok_green1], green2[ok_green2]]).mean() == pytest.approx(1.0)
    np.testing.assert_allclose(truth.flat, truth.flat_per_plane * truth.colour_response)
    # The planes' levels differ only by the responses, up to the 1 % pixel-to-pixel structure
    # averaged over 4096 pixels per plane.
    levels = [p[0, 0] for p in _planes(truth.colour_response)]
    assert levels[0] / levels[1] == pytest.approx(0.55, rel=1e-3)
    assert levels[3] / levels[1] == pytest.approx(0.70, rel=1e-3)
    header = fits.getheader(night.files["light"][0])
    assert (header["BAYERPAT"], header["XBAYROFF"], header["YBAYROFF"]) == ("RGGB", 0, 0)
    assert header["ROWORDER"] == "TOP-DOWN" and header["FILTER"] == "UV/IR"


@pytest.mark.parametrize("colour", [False, True])
def test_science_truth_is_the_dark_subtracted_light_over_the_per_plane_flat(tmp_path, colour):
    model = CmosModel(size=128, colour=colour, n_dark=1, n_flat=1, n_darkflat=1,
                      light_exptimes=(60.0,))
    night = simulate_cmos_night(tmp_path, model=model, seed=8)
    truth, path = night.truth, night.files["light"][0]
    dark = (truth.dark_current + truth.glow) * 60.0 + truth.glow_per_frame
    good = ~(truth.dead | truth.cosmics[path.name] | truth.saturated[path.name])
    reduced = ((_data(path) - truth.pedestal_adu - dark / truth.gain_file)[good]
               / truth.flat_per_plane[good])
    residual = reduced - truth.science[path.name][good]
    # Noise-limited: the mean residual within 5 standard errors of zero.
    assert abs(residual.mean()) < 5 * residual.std() / np.sqrt(residual.size)
    # The stars cover few pixels: the median is the sky's level.
    assert np.median(truth.science[path.name] / truth.colour_response) == pytest.approx(
        model.sky_rate * 60.0 / model.gain_file, rel=0.01)


def test_mono_lights_are_split_over_the_filters(tmp_path):
    model = CmosModel(filters=("L", "Ha"), **{**SMALL, "light_exptimes": (30.0,) * 4})
    night = simulate_cmos_night(tmp_path, model=model, seed=1)
    assert [fits.getheader(p)["FILTER"] for p in night.files["light"]] == ["L", "L", "Ha", "Ha"]
    assert sorted(fits.getheader(p)["FILTER"] for p in night.files["flat"]) == [
        "Ha", "Ha", "L", "L"]
    assert "BAYERPAT" not in fits.getheader(night.files["light"][0])
    assert np.all(night.truth.flat_per_plane == night.truth.flat)
    assert np.all(night.truth.colour_response == 1.0)


EXPECTED = {
    "nina": {"folder": "darkflats", "cards": {
        "IMAGETYP": "DARKFLAT", "SWCREATE": "N.I.N.A. 3.1.2.9001", "EGAIN": 1.0, "GAIN": 100,
        "OFFSET": 50, "SET-TEMP": -10.0, "READOUTM": "Normal", "EXPOSURE": 2.0,
        "EXPTIME": 2.0}, "absent": ["CREATOR", "FRAME"]},
    "sharpcap": {"folder": "DarkFlat", "cards": {
        "SWCREATE": "SharpCap v4.1.12946.0, 64 bit", "EGAIN": 1.0, "EGAINSAV": 0.25,
        "ADCBITS": 14, "GAIN": 100, "OFFSET": 50, "BLKLEVEL": 50, "RDNOISE": 1.8,
        "ROWORDER": "TOP-DOWN"}, "absent": ["IMAGETYP", "FRAME"]},
    "asiair": {"folder": "DarkFlat", "cards": {
        "CREATOR": "ZWO ASIAIR Plus", "IMAGETYP": "Dark", "GAIN": 100, "OFFSET": 50},
        "absent": ["EGAIN", "SWCREATE"]},
    "ekos": {"folder": "DarkFlat", "cards": {
        "FRAME": "Dark", "INSTRUME": "ZWO CCD ASI2600MM Pro", "GAIN": 100.0, "OFFSET": 50.0},
        "absent": ["EGAIN", "SWCREATE", "CREATOR", "IMAGETYP"]},
    "apt": {"folder": "darkflats", "cards": {
        "SWCREATE": "Astro Photography Tool - APT v.3.54.1", "IMAGETYP": "Dark Frame",
        "EGAIN": 1.0, "GAIN": 100, "SET-TEMP": -10.0}, "absent": ["CREATOR", "OFFSET"]},
}


def test_every_program_is_tested():
    assert set(EXPECTED) == set(PROGRAMS)


@pytest.mark.parametrize("program", sorted(EXPECTED))
def test_each_program_writes_its_conventions(tmp_path, program):
    model = CmosModel(program=program, **SMALL)
    night = simulate_cmos_night(tmp_path, model=model, seed=2)
    expected = EXPECTED[program]
    darkflat = night.files["darkflat"][0]
    header = fits.getheader(darkflat)
    assert darkflat.parent.relative_to(night.raw_dir).as_posix() == expected["folder"]
    for key, value in expected["cards"].items():
        assert header[key] == value, key
        assert type(header[key]) is type(value), key  # a setting is an integer, e-/ADU a float
    for key in expected["absent"]:
        assert key not in header, key
    assert abs(header["CCD-TEMP"] - model.set_temp) <= 0.1
    light = fits.getheader(night.files["light"][0])
    assert light["EXPTIME"] == 30.0 and light["FILTER"] == "L" and "DATE-OBS" in light
    names = [p.name for paths in night.files.values() for p in paths]
    assert len(set(names)) == len(names)  # no frame overwrote another


def test_sharpcap_names_frames_by_type(tmp_path):
    night = simulate_cmos_night(tmp_path, model=CmosModel(program="sharpcap", **SMALL), seed=2)
    relative = {k: [p.relative_to(night.raw_dir).as_posix() for p in v]
                for k, v in night.files.items()}
    assert relative["light"] == ["Light/Light_00001.fits", "Light/Light_00002.fits"]
    assert relative["darkflat"][0] == "DarkFlat/DarkFlat_00001.fits"
    assert relative["bias"] == []


def test_nina_names_and_bias_frames(tmp_path):
    model = CmosModel(n_bias=2, **SMALL)
    night = simulate_cmos_night(tmp_path, model=model, seed=2)
    light = night.files["light"][0]
    assert light.parent.name == "lights"
    assert light.name.startswith("2024-03-01_22-10-05_L_") and light.name.endswith(
        "_30.00s_0001.fits")
    assert [fits.getheader(p)["IMAGETYP"] for p in night.files["bias"]] == ["BIAS", "BIAS"]
    assert fits.getheader(night.files["bias"][0])["EXPTIME"] == 0.0


def test_truth_files_are_written(tmp_path):
    night = simulate_cmos_night(tmp_path, model=CmosModel(colour=True, **SMALL), seed=2)
    for name in ("dark_current", "hot_pixels", "glow", "glow_per_frame", "flat",
                 "flat_per_plane", "colour_response", "dead_pixels"):
        assert (night.truth_dir / f"{name}.fits").exists(), name
    light = night.files["light"][0]
    stem = light.name.removesuffix(".fits")
    for suffix in ("sky", "cosmics", "saturated"):
        assert (night.truth_dir / f"{stem}_{suffix}.fits").exists(), suffix
    with fits.open(night.truth_dir / f"{stem}_sky.fits") as hdul:
        np.testing.assert_allclose(hdul[0].data, night.truth.science[light.name], rtol=1e-6)
        assert hdul[0].header["GAIN"] == night.truth.gain_file
        assert hdul[0].header["PEDESTAL"] == night.truth.pedestal_adu
    with pytest.raises(ValueError, match="already holds files"):
        simulate_cmos_night(tmp_path, model=CmosModel(**SMALL), seed=2)


@pytest.mark.parametrize("change, parameter", [
    ({"size": 63}, "size"), ({"size": 32}, "size"), ({"adc_bits": 10}, "adc_bits"),
    ({"program": "maxim"}, "program"), ({"bayer": "RGBG"}, "bayer"),
    ({"light_exptimes": ()}, "light_exptimes"), ({"pedestal_codes": 5000.0, "adc_bits": 12},
                                                 "pedestal_codes"),
    ({"n_flat": -1}, "n_flat"),
])
def test_impossible_models_are_refused_by_name(change, parameter):
    with pytest.raises(ValueError, match=f"CmosModel.{parameter} must be"):
        CmosModel(**change)


def test_simulate_command_writes_a_cmos_colour_night(tmp_path):
    out = tmp_path / "night"
    result = subprocess.run([*ccdred_command(), "simulate", str(out), "--camera", "cmos-colour",
                             "--size", "128"], capture_output=True, text=True, timeout=300,
                            env={"COLUMNS": "200", "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    assert "4 light, 8 dark, 10 flat, 10 darkflat" in result.stdout
    assert "N.I.N.A." in result.stdout
    lights = sorted((out / "raw" / "lights").glob("*.fits"))
    assert len(lights) == 4
    header = fits.getheader(lights[0])
    assert header["BAYERPAT"] == "RGGB" and header["IMAGETYP"] == "LIGHT"
    assert header["NAXIS1"] == 128
    assert (out / "truth" / "flat_per_plane.fits").exists()
    bad = subprocess.run([*ccdred_command(), "simulate", str(tmp_path / "x"), "--program",
                          "sharpcap"], capture_output=True, text=True, timeout=300,
                         env={"COLUMNS": "200", "PATH": "/usr/bin"})
    assert bad.returncode == 2 and "--program applies to the CMOS cameras" in bad.stderr
