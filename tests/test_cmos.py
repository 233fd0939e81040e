"""CMOS cameras, mono and one-shot colour, as capture programs write them: scored on truth."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import ccdred
from ccdred.flags import Flag
from ccdred.pipeline import ReduceOptions
from ccdred.simulate_cmos import CmosModel, simulate_cmos_night

SIZE = 256
LIGHTS = (120.0,) * 3


def _night(tmp_path_factory, name: str, **settings):
    model = CmosModel(size=SIZE, n_stars=40, light_exptimes=LIGHTS, n_dark=6, n_flat=8,
                      n_darkflat=8, **settings)
    return simulate_cmos_night(tmp_path_factory.mktemp(name), model=model, seed=3)


@pytest.fixture(scope="module")
def mono(tmp_path_factory):
    """A N.I.N.A. night of a mono CMOS camera: gain setting 100, EGAIN per 14-bit code,
    offset 50 (a 400 ADU pedestal), dark-flats and no bias, amp glow in the darks."""
    night = _night(tmp_path_factory, "mono")
    return night, ccdred.reduce_night(night.raw_dir, night.raw_dir.parent / "out")


@pytest.fixture(scope="module")
def colour(tmp_path_factory):
    """The same with a one-shot-colour (RGGB) sensor."""
    night = _night(tmp_path_factory, "colour", colour=True)
    return night, ccdred.reduce_night(night.raw_dir, night.raw_dir.parent / "out")


def _scores(night, result):
    truth = night.truth
    dark = ccdred.read(result.masters["dark_120s"])
    flat = ccdred.read(next(p for n, p in result.masters.items() if n.startswith("flat_")))
    hot = dark.has(Flag.HOT)
    good = ~truth.dead & ~flat.bad
    frames = [ccdred.read(p) for p in result.reduced]
    cosmic_free = [~f.has(Flag.COSMIC_RAY) | truth.cosmics[Path(night.files["light"][i]).stem
                                                        + ".fits"] for i, f in enumerate(frames)]
    return {
        "hot_precision": (hot & truth.hot).sum() / hot.sum(),
        "hot_recall": (hot & truth.hot).sum() / truth.hot.sum(),
        "glow_flagged": (hot & ~truth.hot & (truth.glow > np.percentile(truth.glow, 95))).sum(),
        "flat_error": float(np.std(flat.data[good] / truth.flat_per_plane[good])),
        "false_cosmics": max(float(np.mean(~c)) for c in cosmic_free),
        "gain": result.noise[""].gain,
    }


@pytest.mark.parametrize("which", ["mono", "colour"])
def test_a_cmos_night_reduces_to_its_truth(which, request):
    night, result = request.getfixturevalue(which)
    scores = _scores(night, result)
    truth = night.truth
    # The gain used is the camera's e-/ADU in file units (EGAIN=1.0 per 14-bit code / 4),
    # never the GAIN=100 setting: within 10%.
    assert scores["gain"] == pytest.approx(truth.gain_file, rel=0.10), scores
    # Hot pixels from the darks, against their local level: the glow is never flagged.
    assert scores["hot_precision"] > 0.95 and scores["hot_recall"] > 0.9, scores
    assert scores["glow_flagged"] == 0, scores
    # Flats at the photon limit: 8 flats of ~20000 ADU at 0.25 e-/ADU (5000 e-) give
    # 1/sqrt(8 * 5000) = 0.5% per pixel; the dark-flats take the pedestal out.
    assert scores["flat_error"] < 0.006, scores
    # At most 0.2% of the sky taken for cosmic rays where none hit.
    assert scores["false_cosmics"] < 0.002, scores


@pytest.mark.parametrize("which", ["mono", "colour"])
def test_the_sky_noise_is_the_ideal_one(which, request):
    night, result = request.getfixturevalue(which)
    truth = night.truth
    for path in result.reduced:
        frame = ccdred.read(path)
        expected = truth.science[path.name]
        sky = ~frame.bad & (expected <= np.median(expected)) & ~truth.hot
        residual = (frame.data - expected)[sky]
        # The reduced sky scatters as the noise model says (read, photon, quantisation, and
        # the masters' own noise), within 5%.
        assert np.std(residual / frame.uncertainty[sky]) == pytest.approx(1.0, abs=0.05)


def test_the_glow_is_subtracted(mono):
    night, result = mono
    truth = night.truth
    corner = truth.glow > np.percentile(truth.glow, 99)
    for path in result.reduced:
        frame = ccdred.read(path)
        excess = (frame.data - truth.science[path.name])[corner & ~frame.bad]
        # The glow's ~60 e- (240 ADU) in 120 s at the corner is gone, to the noise.
        assert abs(np.median(excess)) < 5.0


def test_colour_frames_stay_mosaics_with_their_bayer_keywords(colour):
    night, result = colour
    header = fits.getheader(result.reduced[0])
    assert header["BAYERPAT"] == "RGGB" and header["ROWORDER"] == "TOP-DOWN"
    assert fits.getdata(result.reduced[0]).shape == (SIZE, SIZE)
    flat = fits.getheader(result.masters["flat_UV-IR"])
    assert flat["CFASCALE"] == "separate"
    data = fits.getdata(result.masters["flat_UV-IR"])
    for rows, cols in ((slice(0, None, 2), slice(0, None, 2)), (slice(1, None, 2),
                                                                slice(1, None, 2))):
        assert np.nanmean(data[rows, cols]) == pytest.approx(1.0, abs=0.01)


def test_a_global_cfa_flat_keeps_the_colour_response(colour, tmp_path):
    night, _ = colour
    result = ccdred.reduce_night(night.raw_dir, tmp_path, options=ReduceOptions(
        cosmics=False, cfa_flat_scaling="global"))
    data = fits.getdata(result.masters["flat_UV-IR"])
    red, blue = np.nanmean(data[0::2, 0::2]), np.nanmean(data[1::2, 1::2])
    assert red / blue == pytest.approx(0.55 / 0.7, rel=0.05)


def test_the_plan_and_the_headers_say_what_the_camera_means(mono):
    night, result = mono
    noise = result.noise[""]
    assert "GAIN=100 is the gain setting" in noise.gain_source
    assert "photon transfer agrees" in noise.gain_source
    assert noise.quantisation == pytest.approx(4**2 / 12)
    flat = result.plan.master("flat_L")
    assert {d.master for d in flat.darks} == {"darkflat_2s"}


def test_a_contradicted_header_gain_is_overruled_and_said(mono, tmp_path):
    night, _ = mono
    raw = tmp_path / "raw"
    shutil.copytree(night.raw_dir, raw)
    for path in raw.rglob("*.fits"):
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["EGAIN"] = 4.0  # four times the truth, per 14-bit code
    result = ccdred.reduce_night(raw, tmp_path / "out", options=ReduceOptions(cosmics=False))
    noise = result.noise[""]
    assert noise.gain == pytest.approx(night.truth.gain_file, rel=0.1)
    assert "4.00x off" in noise.gain_source or "x off" in noise.gain_source


def test_other_camera_settings_are_never_applied(mono, tmp_path):
    night, _ = mono
    raw = tmp_path / "raw"
    shutil.copytree(night.raw_dir, raw)
    for path in (raw / "lights").rglob("*.fits"):
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["GAIN"] = 200
    plan = ccdred.plan_night(raw)
    assert all(s.dark is None and s.flat is None for s in plan.science)
    assert any("the lights at gain 200, offset 50" in w and "gain 100, offset 50" in w
               for w in plan.warnings)


def test_darks_of_another_temperature_are_not_applied(mono, tmp_path):
    night, _ = mono
    raw = tmp_path / "raw"
    shutil.copytree(night.raw_dir, raw)
    for path in (raw / "darks").rglob("*.fits"):
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["CCD-TEMP"] = -20.0
            hdul[0].header["SET-TEMP"] = -20.0
    plan = ccdred.plan_night(raw)
    assert all(s.dark is None or s.dark.level_only for s in plan.science)
    assert any("within 2 C" in w for w in plan.warnings)


@pytest.mark.parametrize("egain", [True, False])
def test_colour_lights_alone_keep_their_pixels(colour, tmp_path, egain):
    """Lights without any calibration: their own sky says where photon noise starts (the
    pedestal) and, without an e-/ADU keyword, the gain (from the colour planes' levels)."""
    night, _ = colour
    raw = tmp_path / "raw"
    shutil.copytree(night.raw_dir / "lights", raw)
    if not egain:
        for path in raw.rglob("*.fits"):
            with fits.open(path, mode="update") as hdul:
                del hdul[0].header["EGAIN"]
    result = ccdred.reduce_night(raw, tmp_path / "out")
    noise = result.noise[""]
    assert ("sky noise" in noise.gain_source) != egain
    assert "sky noise" in noise.read_noise_source
    assert noise.gain == pytest.approx(night.truth.gain_file, rel=0.3)
    assert noise.zero_level == pytest.approx(night.truth.pedestal_adu, rel=0.2)
    for path in result.reduced:
        frame = ccdred.read(path)
        assert frame.has(Flag.COSMIC_RAY).mean() < 0.002


def test_the_colour_preview_is_drawn_in_colour(colour, tmp_path):
    from ccdred import plots

    _, result = colour
    frame = ccdred.read(result.reduced[0])
    rgb = plots.colour_preview(frame.data, "RGGB")
    assert rgb.shape == (*frame.shape, 3) and 0 <= rgb.min() and rgb.max() <= 1
    figure = plots.frame_figure(frame)
    assert "colour preview, RGGB" in figure.axes[0].get_title(loc="left")
    assert plots.save(figure, tmp_path / "c.png").stat().st_size > 10_000
    # A master flat is shown as its mosaic, in grey.
    master = plots.frame_figure(ccdred.read(result.masters["flat_UV-IR"]))
    title = master.axes[0].get_title(loc="left")  # the frame figure's titles sit on the left
    assert title and "colour preview" not in title


def test_bayer_option_for_headers_that_do_not_say(mono, tmp_path):
    night, _ = mono
    plan = ccdred.plan_night(night.raw_dir, bayer="GRBG")
    assert {s.input.cfa for s in plan.science} == {"GRBG"}
    with pytest.raises(ValueError, match="bayer must be one of"):
        ReduceOptions(bayer="RGBG")


def test_a_twelve_bit_camera_saturates_at_its_real_full_scale(tmp_path):
    from ccdred.inventory import scan
    from ccdred.pipeline.sensor import analyse_sensor

    model = CmosModel(size=128, n_stars=5, adc_bits=12, light_exptimes=(10.0,), n_dark=0,
                      n_flat=0, n_darkflat=0)
    night = simulate_cmos_night(tmp_path / "n", model=model, seed=1)
    sensor = analyse_sensor(scan(night.raw_dir), None)
    assert sensor.step == 16
    assert sensor.saturation == (2**12 - 1) * 16
    assert sensor.quantisation_variance == pytest.approx(16**2 / 12)
    assert replace(sensor, step=1).quantisation_variance == 0.0


def test_a_scaled_dark_with_glow_is_warned_about(tmp_path):
    model = CmosModel(size=128, n_stars=10, light_exptimes=(120.0, 60.0), n_dark=4, n_flat=4,
                      n_darkflat=4, n_bias=5)
    night = simulate_cmos_night(tmp_path / "n", model=model, seed=2)
    for path in night.files["dark"]:
        if fits.getheader(path)["EXPTIME"] == 60.0:
            path.unlink()
    result = ccdred.reduce_night(night.raw_dir, tmp_path / "out",
                                 options=ReduceOptions(cosmics=False))
    assert fits.getheader(result.masters["dark_120s"])["DARKGLOW"]
    (warning,) = [w for w in result.warnings if "amp glow" in w]
    assert "dark_120s" in warning and "scaled for 1 frame" in warning
    manifest = (tmp_path / "out" / "manifest.json").read_text()
    assert "amp glow" in manifest
