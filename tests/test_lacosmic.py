"""ccdred's L.A.Cosmic against astroscrappy, the reference implementation it reproduces."""

from __future__ import annotations

import astroscrappy
import astroscrappy.utils
import numpy as np
import pytest
from scipy import ndimage

from ccdred import io
from ccdred.kernels import lacosmic_stages
from ccdred.kernels.lacosmic import detect_cosmics


def sky_with_stars_and_hits(shape, *, seed, hits_per_pixel=3e-4, sky=1000.0):
    """Sky noise, Gaussian stars of all brightnesses, and cosmic-ray tracks (edges included)."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    image = rng.normal(sky, np.sqrt(sky), shape).astype(np.float32)
    yy, xx = np.mgrid[0:rows, 0:cols]
    for _ in range(max(3, rows * cols // 4000)):
        y, x = rng.uniform(0, rows), rng.uniform(0, cols)
        image += (rng.uniform(100, 30000) * np.exp(
            -((yy - y) ** 2 + (xx - x) ** 2) / (2 * rng.uniform(1.0, 2.0) ** 2))
        ).astype(np.float32)
    starts = rng.integers(0, (rows, cols), (max(5, int(rows * cols * hits_per_pixel)), 2))
    starts[:4] = [(0, 0), (rows - 1, cols - 1), (0, cols // 2), (rows // 2, cols - 1)]
    for y, x in starts:
        for step in range(rng.integers(1, 6)):
            image[min(rows - 1, y + step), min(cols - 1, x + step // 2)] += rng.uniform(200, 8000)
    return image


def reference(image, **kw):
    return astroscrappy.detect_cosmics(image, satlevel=np.inf, sepmed=True,
                                       cleantype="meanmask", fsmode="median", verbose=False, **kw)


def assert_same_as_astroscrappy(image, **kw):
    expected_mask, expected_clean = reference(image, **kw)
    mask, clean = detect_cosmics(image, **kw)
    assert mask.sum() > 0
    np.testing.assert_array_equal(mask, expected_mask)
    np.testing.assert_array_equal(clean, expected_clean)


@pytest.mark.parametrize("shape", [(256, 256), (97, 131), (40, 23)])
@pytest.mark.parametrize("seed", [1, 2])
def test_same_pixels_and_cleaned_values_as_astroscrappy(shape, seed):
    image = sky_with_stars_and_hits(shape, seed=seed)
    assert_same_as_astroscrappy(image, gain=1.5, readnoise=5.0)


def test_same_as_astroscrappy_with_variance_and_mask():
    image = sky_with_stars_and_hits((200, 180), seed=3)
    variance = (image / 1.5 + 25.0).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    mask[50:60, 70:90] = True
    mask[0, :] = True
    assert_same_as_astroscrappy(image, inmask=mask, invar=variance, gain=1.5, readnoise=5.0)


@pytest.mark.parametrize(("sigclip", "sigfrac", "objlim", "niter"),
                         [(3.0, 0.5, 2.0, 4), (6.0, 0.3, 8.0, 2), (4.5, 0.3, 5.0, 1)])
def test_same_as_astroscrappy_for_other_limits(sigclip, sigfrac, objlim, niter):
    image = sky_with_stars_and_hits((160, 160), seed=4)
    assert_same_as_astroscrappy(image, gain=2.0, readnoise=8.0, sigclip=sigclip,
                                sigfrac=sigfrac, objlim=objlim, niter=niter)


def test_wide_hits_take_several_iterations():
    """A 7x7 hit is cleaned from the outside in: later iterations find more of it."""
    rng = np.random.default_rng(5)
    image = rng.normal(500, 22, (120, 120)).astype(np.float32)
    image[30:37, 40:47] += rng.uniform(2000, 9000, (7, 7)).astype(np.float32)
    one_pass, _ = detect_cosmics(image, gain=1.0, readnoise=6.0, niter=1)
    mask, _ = detect_cosmics(image, gain=1.0, readnoise=6.0)
    assert mask[30:37, 40:47].sum() > one_pass[30:37, 40:47].sum()
    assert_same_as_astroscrappy(image, gain=1.0, readnoise=6.0)


def test_a_hit_with_no_good_neighbour_gets_the_background_level():
    """Inside a masked region with a one-pixel hole, the hit's 5x5 box has nothing good."""
    rng = np.random.default_rng(5)
    image = rng.normal(500, 22, (120, 120)).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    mask[60:71, 60:71] = True
    mask[64:67, 64:67] = False  # astroscrappy grows the mask: one good pixel is left
    image[65, 65] += 3000
    found, cleaned = detect_cosmics(image, inmask=mask, gain=1.0, readnoise=6.0)
    assert found[65, 65]
    assert cleaned[65, 65] == pytest.approx(500, abs=1)
    assert_same_as_astroscrappy(image, inmask=mask, gain=1.0, readnoise=6.0)


def wide_range_values(shape, seed):
    """Values whose float32 sums round differently in single and double precision."""
    rng = np.random.default_rng(seed)
    return (rng.lognormal(6, 3, shape) * rng.choice([-1, 1], shape)).astype(np.float32)


def detection_of(shape, seed):
    """Extreme float32 values, their variance, a few bad pixels and the stages of a detection."""
    clean = wide_range_values(shape, seed=seed)
    variance = np.abs(wide_range_values(shape, seed=seed + 1))
    good = np.random.default_rng(seed).random(shape) > 0.02
    return clean, variance, good, lacosmic_stages.detect(clean, variance, good, *STAGE_LIMITS)


@pytest.mark.parametrize("shape", [(61, 47), (9, 9), (5, 30), (30, 5)])
def test_median_stages_are_astroscrappys_separable_medians(shape):
    """The noise, the fine structure and the sharpness are astroscrappy's sepmedfilt7/5/7 of
    the variance, the image and the Laplacian-to-noise, and the candidates' fine-structure
    contrast its sepmedfilt9 of the fine structure, to the bit, borders included."""
    clean, variance, good, st = detection_of(shape, seed=sum(shape))
    utils = astroscrappy.utils
    noise = np.sqrt(np.maximum(utils.sepmedfilt7(variance), np.float32(0.00001)))
    np.testing.assert_array_equal(st.noise, noise)
    np.testing.assert_array_equal(st.fine, utils.sepmedfilt5(clean))
    np.testing.assert_array_equal(st.sharp, st.s - utils.sepmedfilt7(st.s))
    sigclip, _, objlim = STAGE_LIMITS
    structure = np.maximum((st.fine - utils.sepmedfilt9(st.fine)) / st.noise, np.float32(0.01))
    bright = (st.sharp > sigclip) & good
    np.testing.assert_array_equal(st.cand, bright & (st.sharp / structure > objlim))


def test_laplacian_stage_matches_astroscrappy_to_the_last_bit():
    """Subsample, Laplacian, clip, rebin, over 2 * noise, borders included. astroscrappy is
    built with -ffast-math, so its float32 rounding may differ by a unit in the last place."""
    image, _, _, st = detection_of((50, 64), seed=9)
    laplacian = astroscrappy.utils.laplaceconvolve(astroscrappy.utils.subsample(image))
    laplacian[laplacian < 0] = 0
    expected = astroscrappy.utils.rebin(laplacian) / (2.0 * st.noise)
    # Rounding a Laplacian of values up to m moves it by a few ulp of m, at most.
    local_max = ndimage.maximum_filter(np.abs(image), size=3)
    tolerance = 8 * np.finfo(np.float32).eps * local_max / (2 * st.noise)
    assert np.all(np.abs(st.s - expected) <= tolerance)
    # Only the rounding order differs, so most values (76% on these extreme ones) agree exactly.
    assert (st.s == expected).mean() > 0.7
    assert (st.s > 0).sum() == (expected > 0).sum()


def test_incremental_iterations_equal_full_recomputation():
    image = sky_with_stars_and_hits((300, 260), seed=6, hits_per_pixel=2e-3)
    fast = detect_cosmics(image, gain=1.2, readnoise=4.0)
    full = detect_cosmics(image, gain=1.2, readnoise=4.0, incremental=False)
    np.testing.assert_array_equal(fast[0], full[0])
    np.testing.assert_array_equal(fast[1], full[1])


STAGE_LIMITS = (np.float32(4.5), np.float32(np.float32(0.3) * np.float32(4.5)), np.float32(5.0))


def stage_inputs(shape, seed):
    rng = np.random.default_rng(seed)
    clean = sky_with_stars_and_hits(shape, seed=seed, hits_per_pixel=1e-3) * np.float32(1.5)
    return clean, clean + np.float32(25.0), rng.random(shape) > 0.02


def assert_stages_are_a_new_detection(detection, clean, variance, good):
    """Every stage of ``detection`` equals that of a new detection; return the new one."""
    fresh = lacosmic_stages.detect(clean, variance, good, *STAGE_LIMITS)
    for name in lacosmic_stages.Stages._fields:
        np.testing.assert_array_equal(getattr(detection, name), getattr(fresh, name),
                                      err_msg=name)
    return fresh


@pytest.mark.parametrize("shape", [(256, 256), (40, 23), (9, 300), (300, 7)])
def test_updating_the_stages_near_changes_equals_a_new_detection(shape):
    """Every stage, recomputed only within its reach of the changed pixels (corners and edges
    included), equals the same stage of a whole new detection."""
    clean, variance, good = stage_inputs(shape, seed=12)
    detection = lacosmic_stages.detect(clean, variance, good, *STAGE_LIMITS)
    rng = np.random.default_rng(13)
    rows, cols = shape
    changed = {(0, 0), (rows - 1, cols - 1), (0, cols - 1), (rows - 1, 0), (rows // 2, 0),
               (0, cols // 2), *map(tuple, rng.integers(0, shape, (12, 2)))}
    rr, cc = np.array(sorted(changed)).T
    # New hits, and old pixels replaced by the sky: the detection must change.
    clean[rr, cc] = np.where(rng.random(rr.size) < 0.5, np.float32(9000.0), np.float32(1500.0))
    variance[rr, cc] = clean[rr, cc] + np.float32(25.0)
    before = detection.s.copy(), detection.found.copy()
    assert lacosmic_stages.update(detection, clean, variance, good, rr, cc, *STAGE_LIMITS,
                                  max_fraction=1.0)
    fresh = assert_stages_are_a_new_detection(detection, clean, variance, good)
    assert not np.array_equal(before[0], fresh.s)
    assert min(shape) < 20 or not np.array_equal(before[1], fresh.found)


def test_changes_listed_in_any_order_update_the_same_pixels():
    clean, variance, good = stage_inputs((40, 40), seed=15)
    detection = lacosmic_stages.detect(clean, variance, good, *STAGE_LIMITS)
    rr, cc = np.array([30, 5, 17]), np.array([20, 8, 39])
    clean[rr, cc] = np.float32(9000.0)
    variance[rr, cc] = clean[rr, cc] + np.float32(25.0)
    assert lacosmic_stages.update(detection, clean, variance, good, rr, cc, *STAGE_LIMITS,
                                  max_fraction=1.0)
    assert_stages_are_a_new_detection(detection, clean, variance, good)


def test_an_update_covering_most_of_the_image_is_declined():
    clean, variance, good = stage_inputs((64, 64), seed=14)
    detection = lacosmic_stages.detect(clean, variance, good, *STAGE_LIMITS)
    before = [stage.copy() for stage in detection]
    rr, cc = np.divmod(np.arange(0, 64 * 64, 97), 64)
    clean[rr, cc] += np.float32(5000.0)
    assert not lacosmic_stages.update(detection, clean, variance, good, rr, cc, *STAGE_LIMITS)
    for old, stage in zip(before, detection, strict=True):
        np.testing.assert_array_equal(old, stage)


def test_input_is_not_modified():
    image = sky_with_stars_and_hits((64, 64), seed=8)
    variance = image / 2
    before = image.copy(), variance.copy()
    detect_cosmics(image, invar=variance, gain=2.0, readnoise=3.0)
    np.testing.assert_array_equal(image, before[0])
    np.testing.assert_array_equal(variance, before[1])


def test_niter_must_be_positive():
    with pytest.raises(ValueError, match="niter"):
        detect_cosmics(np.zeros((16, 16), np.float32), niter=0)


def test_same_as_astroscrappy_on_a_real_frame(shared_data):
    path = shared_data / "caha-cafos-ngc2420" / "science" / "NGC2420" / "V" / "uamA_0029.fits"
    frame = io.read(path)
    image = frame.data[:600, :700] - np.float32(np.median(frame.data))
    image += np.float32(200.0)
    assert_same_as_astroscrappy(image, gain=1.4, readnoise=7.4)
