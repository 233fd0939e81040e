"""Figures and quality checks: each metric passes on a correct reduction, fails on a wrong one."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

import ccdred
from ccdred import qa
from ccdred.flags import Flag
from ccdred.pipeline import ReduceOptions
from ccdred.plots import (
    Cutout,
    compare_figure,
    frame_figure,
    histogram_figure,
    save,
)


@pytest.fixture(scope="module")
def unrepaired(sim_night, tmp_path_factory):
    out = tmp_path_factory.mktemp("unrepaired")
    return ccdred.reduce_night(sim_night.raw_dir, out,
                               options=ReduceOptions(repair=False, cosmics=False))


def masters(result):
    return {name: ccdred.read(path) for name, path in result.masters.items()}


def frames(result, sim_night):
    for sci, path in zip(result.plan.science, result.reduced, strict=True):
        yield ccdred.read(path), ccdred.read(sci.input.path), sci


# --- figures ------------------------------------------------------------------------------

def _png(path):
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500
    assert image[..., :3].std() > 0.05  # not blank
    return image


def test_frame_figure_draws_the_cutout_where_asked(reduced_night, tmp_path):
    frame = ccdred.read(reduced_night.reduced[0])
    fig = frame_figure(frame, cutout=Cutout(x=200, y=60, size=40))
    full, zoom = fig.axes[:2]
    (rectangle,) = full.patches
    assert rectangle.get_xy() == (179.5, 39.5)
    assert (rectangle.get_width(), rectangle.get_height()) == (40, 40)
    assert zoom.get_xlim() == (179.5, 219.5) and zoom.get_ylim() == (39.5, 79.5)
    # a colour bar with units beside each panel, the full frame's of its binned values
    full_bar, zoom_bar = (ax.child_axes[0] for ax in (full, zoom))
    assert zoom_bar.get_ylabel() == "adu" and full_bar.get_ylabel().startswith("adu")
    assert full_bar.get_ylim() == zoom_bar.get_ylim()
    image = _png(save(fig, tmp_path / "frame.png"))
    # The red outline is drawn on the full frame.
    red = (image[..., 0] > 0.7) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)
    assert red.sum() > 100


def test_histogram_shows_hot_pixels_in_their_own_colour(reduced_night, tmp_path):
    dark = ccdred.read(reduced_night.masters["dark_300s"])
    fig = histogram_figure(dark)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("hot (") for label in labels)
    assert fig.axes[0].get_yscale() == "log"
    _png(save(fig, tmp_path / "hist.png"))


def test_compare_figure_has_four_panels(sim_night, reduced_night, tmp_path):
    raw = ccdred.read(sim_night.files["science"][0])
    reduced = ccdred.read(reduced_night.reduced[0])
    fig = compare_figure(raw, reduced)
    assert len([ax for ax in fig.axes if ax.images]) == 4
    _png(save(fig, tmp_path / "compare.png"))


def test_quicklook_shows_each_frame_binned_with_its_cutout_and_colour_bars(
        sim_night, reduced_night, tmp_path):
    from ccdred import quicklook
    from ccdred.plots import binned, colour_limits

    raw = ccdred.read(sim_night.files["science"][0])
    reduced = ccdred.read(reduced_night.reduced[0])
    path = quicklook.write_quicklook([(raw, "raw"), (reduced, "reduced")], tmp_path / "q.png",
                                     cutout=Cutout(x=200, y=60, size=40))
    image = imread(path)  # RGBA floats 0-1 of the palette image
    assert image.shape[0] > 2 * quicklook.PANEL and image.shape[1] > 2 * quicklook.PANEL
    red = (image[..., 0] > 0.7) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)
    rows, cols = np.nonzero(red)
    assert red.sum() > 100 and len({r // 400 for r in rows}) == 2  # one outline per frame
    # The full-frame panel holds the frame block-averaged to at most PANEL pixels, on the
    # grey scale of its colour limits (top row of the panel = top of the frame).
    grey, scale = quicklook.panel_pixels(reduced.data, colour_limits(reduced.data))
    expected = binned(reduced.data, quicklook.PANEL)
    assert grey.shape == expected.shape and scale == 1 / np.ceil(max(reduced.shape) / 360)
    low, high = colour_limits(reduced.data)
    inside = (expected > low + 0.05 * (high - low)) & (expected < high - 0.05 * (high - low))
    level = (expected - low) / (high - low) * 255
    assert np.abs(grey[::-1][inside] - level[inside]).max() <= 1
    # The outline sits where the cutout is: columns 180-220 of the frame, in panel pixels.
    left = quicklook._LEFT
    assert abs(cols.min() - (left + 180 * scale)) <= 2
    with pytest.raises(ValueError, match="outside"):
        quicklook.write_quicklook([(reduced, "r")], tmp_path / "no.png",
                                  cutout=Cutout(x=5000, y=5, size=10))
    assert not (tmp_path / "no.png").exists()


def test_frame_displays_itself_in_jupyter(reduced_night):
    png = ccdred.read(reduced_night.reduced[0])._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_cutout_parsing():
    assert Cutout.parse("10,20,30") == Cutout(10, 20, 30)
    with pytest.raises(ValueError, match="X,Y,SIZE"):
        Cutout.parse("10,20")


# --- metrics: pass on a correct reduction -----------------------------------------------

def test_every_check_passes_on_a_correct_reduction(sim_night, reduced_night):
    calibration = masters(reduced_night)
    for reduced, _, sci in frames(reduced_night, sim_night):
        metrics = qa.science_checks(reduced, dark=calibration["dark_300s"],
                                    dark_scale=sci.dark.scale, flat=calibration["flat_R"])
        assert {m.name for m in metrics} == {"flatness", "defects", "negative outliers",
                                             "dark residual", "flat imprint"}
        for metric in metrics:
            assert metric.verdict == "pass", metric


def test_unrepaired_but_calibrated_defects_pass(sim_night, unrepaired):
    calibration = masters(unrepaired)
    for reduced, _, sci in frames(unrepaired, sim_night):
        assert qa.defect_residuals(reduced).verdict == "pass"
        assert qa.negative_outliers(reduced).verdict == "pass"
        metric = qa.dark_residual(reduced, calibration["dark_300s"], scale=sci.dark.scale,
                                  flat=calibration["flat_R"])
        assert metric.verdict == "pass" and abs(metric.value) < 0.05, metric


def test_master_checks(reduced_night):
    calibration = masters(reduced_night)
    expected = 7.0 / 1.5 / np.sqrt(9)  # read noise (ADU) over sqrt(9 biases)
    assert qa.master_noise(calibration["bias"], expected).verdict == "pass"
    assert qa.master_noise(calibration["bias"], expected / 3).verdict == "fail"
    assert qa.defect_count(calibration["dark_300s"], Flag.HOT).value > 50
    metric, donuts = qa.donut_metric(calibration["flat_R"])
    truth_flat = reduced_night_truth_flat(reduced_night)
    dead = np.where(truth_flat < 0.8 * np.median(truth_flat), np.uint16(Flag.DEAD), 0)
    truth_donuts = qa.find_donuts(ccdred.Frame(truth_flat, dq=dead.astype(np.uint16)))
    assert len(donuts) == len(truth_donuts) >= 2
    for donut in donuts:
        nearest = min(truth_donuts, key=lambda d: np.hypot(d.x - donut.x, d.y - donut.y))
        assert np.hypot(nearest.x - donut.x, nearest.y - donut.y) < 3
        assert 5 < donut.diameter < 40 and 0.02 < donut.depth < 0.3
    assert metric.verdict == "info" and f"{len(donuts)} dust donuts" in metric.detail


def reduced_night_truth_flat(result):
    from astropy.io import fits

    truth_dir = result.plan.raw_dir.parent / "truth"
    return fits.getdata(truth_dir / "flat.fits").astype(np.float32)


# --- metrics: fail on a wrong reduction ----------------------------------------------------

def test_flatness_fails_with_the_flat_of_another_filter(sim_night, reduced_night):
    flat = ccdred.read(reduced_night.masters["flat_R"])
    columns = np.arange(flat.shape[1], dtype=np.float32)
    other_filter = flat.data * (1 + 0.25 * columns / columns[-1])  # another illumination
    reduced, _, _ = next(frames(reduced_night, sim_night))
    wrong = reduced.replace(data=reduced.data * flat.data / other_filter)
    assert qa.flatness(reduced, flat=flat).verdict == "pass"
    assert qa.flatness(wrong, flat=flat.replace(data=other_filter)).verdict == "fail"
    # Without the flat's image the gradient cannot be told from the sky's: it still fails.
    assert qa.flatness(wrong).verdict == "fail"
    # No flat at all: the vignetting (30% at the corners) is left in the frame.
    assert qa.flatness(reduced.replace(data=reduced.data * flat.data)).verdict == "fail"


def test_flatness_is_judged_against_noise_and_a_raw_sky_gradient_is_no_flat_error(
        sim_night, reduced_night):
    """The ARCSAT case: a faint sky (2-28 ADU) with a 45 ADU gradient already in the raw sky."""
    flat = ccdred.read(reduced_night.masters["flat_R"])
    reduced, _, _ = next(frames(reduced_night, sim_night))
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[0:reduced.shape[0], 0:reduced.shape[1]].astype(np.float32)
    # Sky of 2 ADU at one edge, rising 45 ADU across; read noise 10 ADU.
    faint = 2 + 45 * cols / cols.max() + rng.normal(0, 10, reduced.shape).astype(np.float32)
    frame = reduced.replace(data=faint.astype(np.float32), variance=None)
    metric = qa.flatness(frame, flat=flat)
    assert metric.verdict == "pass", metric
    assert "a sky gradient in the raw frame, not a flat-field error" in metric.detail
    # The same sky without a gradient, but the flat's vignetting left in: judged in noise
    # units, 30% of a 2 ADU sky is under the noise and does not matter ...
    flat_sky = (2 + rng.normal(0, 10, reduced.shape)).astype(np.float32)
    assert qa.flatness(frame.replace(data=flat_sky * flat.data), flat=flat).verdict == "pass"
    # ... while on a bright sky it is many sigma and fails.
    bright = (3000 + rng.normal(0, 45, reduced.shape)).astype(np.float32)
    assert qa.flatness(frame.replace(data=bright * flat.data), flat=flat).verdict == "fail"


def test_dark_checks_fail_without_or_with_double_dark_subtraction(sim_night, unrepaired):
    calibration = masters(unrepaired)
    dark, flat = calibration["dark_300s"], calibration["flat_R"]
    reduced, _, sci = next(frames(unrepaired, sim_night))
    pattern = dark.data * np.float32(sci.dark.scale) / flat.data
    no_dark = reduced.replace(data=reduced.data + pattern)
    metric = qa.dark_residual(no_dark, dark, scale=sci.dark.scale, flat=flat)
    assert metric.verdict == "fail" and metric.value == pytest.approx(1.0, abs=0.1)
    twice = reduced.replace(data=reduced.data - pattern)
    assert qa.dark_residual(twice, dark, scale=sci.dark.scale, flat=flat).verdict == "fail"
    assert qa.negative_outliers(twice).verdict == "fail"


def test_defects_fail_when_hot_pixels_are_neither_calibrated_nor_repaired(sim_night,
                                                                          unrepaired):
    calibration = masters(unrepaired)
    dark, flat = calibration["dark_300s"], calibration["flat_R"]
    reduced, _, sci = next(frames(unrepaired, sim_night))
    hot = (reduced.dq & Flag.HOT) != 0
    raw_hot = np.where(hot, reduced.data + dark.data * np.float32(sci.dark.scale) / flat.data,
                       reduced.data)
    assert qa.defect_residuals(reduced.replace(data=raw_hot)).verdict == "fail"


def test_flat_imprint_fails_when_the_flat_has_a_donut_the_frame_lacks(sim_night, reduced_night):
    flat = ccdred.read(reduced_night.masters["flat_R"])
    rows, cols = np.mgrid[0:flat.shape[0], 0:flat.shape[1]]
    ring = np.exp(-0.5 * ((np.hypot(cols - 60, rows - 190) - 8) / 2) ** 2)
    dusty = flat.replace(data=(flat.data * (1 - 0.08 * ring)).astype(np.float32))
    reduced, _, _ = next(frames(reduced_night, sim_night))
    printed = reduced.replace(data=reduced.data * flat.data / dusty.data)
    assert qa.flat_imprint(reduced, flat).verdict == "pass"
    metric = qa.flat_imprint(printed, dusty)
    assert metric.verdict == "fail" and "(60, 190)" in metric.detail

