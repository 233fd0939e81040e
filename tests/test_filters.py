"""The compiled box median against scipy, and its network proven on every 0-1 input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ccdred.kernels import filters


def test_median_network_selects_the_median_of_every_zero_one_input():
    """A comparator network selects the k-th value of every input if and only if it does so
    for every input of zeros and ones (the 0-1 principle): 2**25 cases, as bit planes."""
    cases = np.arange(2 ** 25, dtype=np.uint32)
    planes = [np.packbits(((cases >> k) & 1).astype(np.uint8)) for k in range(25)]
    for a, b in filters._MEDIAN_25:
        planes[a], planes[b] = planes[a] & planes[b], planes[a] | planes[b]
    ones = np.zeros(cases.size, np.uint8)
    for k in range(25):
        ones += ((cases >> k) & 1).astype(np.uint8)
    np.testing.assert_array_equal(planes[12], np.packbits(ones >= 13))


def test_median_of_nine_network_selects_the_median_of_every_zero_one_input():
    cases = np.arange(2 ** 9, dtype=np.uint32)
    planes = [((cases >> k) & 1).astype(bool) for k in range(9)]
    for a, b in filters._MEDIAN_9:
        planes[a], planes[b] = planes[a] & planes[b], planes[a] | planes[b]
    ones = sum(((cases >> k) & 1).astype(int) for k in range(9))
    np.testing.assert_array_equal(planes[4], ones >= 5)


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("shape", [(5, 5), (7, 9), (64, 33), (300, 257)])
def test_median_filter_equals_scipy(shape, size):
    rng = np.random.default_rng(shape[0])
    image = rng.normal(1, 0.02, shape).astype(np.float32)
    image[::3, ::5] = 1.0  # ties
    np.testing.assert_array_equal(filters.median_filter(image, size),
                                  ndimage.median_filter(image, size=size, mode="reflect"))
    if size == 3:  # one pixel mirrored is the nearest pixel: the checks' mode
        np.testing.assert_array_equal(filters.median_filter(image, 3),
                                      ndimage.median_filter(image, size=3, mode="nearest"))


def test_other_box_sizes_fall_back_to_scipy():
    image = np.random.default_rng(1).normal(size=(40, 40)).astype(np.float32)
    np.testing.assert_array_equal(filters.median_filter(image, 7),
                                  ndimage.median_filter(image, size=7, mode="reflect"))


@pytest.mark.parametrize("radius", [1, 4])
def test_grow_mask_equals_binary_dilation(radius):
    rng = np.random.default_rng(radius)
    mask = rng.random((120, 90)) < 0.002
    mask[0, 0] = mask[-1, 40] = mask[60, -1] = True
    square = np.ones((2 * radius + 1, 2 * radius + 1), bool)
    np.testing.assert_array_equal(filters.grow_mask(mask, radius),
                                  ndimage.binary_dilation(mask, structure=square))
    assert not filters.grow_mask(np.zeros((5, 5), bool), 2).any()


def test_block_clipped_std_is_robust_stats_of_each_block():
    from ccdred.kernels.stats import block_clipped_std, robust_stats

    rng = np.random.default_rng(3)
    image = rng.normal(0, 5, (70, 100)).astype(np.float32)
    image[rng.random(image.shape) < 0.02] += 400  # outliers the clip must remove
    image[:16, 32:64] *= 4  # a noisier block
    bad = rng.random(image.shape) < 0.1
    bad[32:64, :32] = True  # a block with no good pixel
    image[5, 40], image[6, 41], image[40, 70] = np.inf, -np.inf, np.nan  # not good either
    std, count = block_clipped_std(image, bad, 32)
    assert std.shape == count.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            cell = (slice(32 * i, 32 * i + 32), slice(32 * j, 32 * j + 32))
            values = image[cell][~bad[cell] & np.isfinite(image[cell])]
            assert count[i, j] == values.size
            if values.size == 0:
                assert np.isnan(std[i, j])
            else:
                expected = robust_stats(values, max_values=values.size).std
                assert std[i, j] == pytest.approx(expected, rel=1e-12)


def test_clipped_std_of_sorted_refuses_counts_that_do_not_fit_its_rows():
    from ccdred.kernels.clipping import clipped_std_of_sorted

    rows = np.sort(np.random.default_rng(0).normal(0, 1, (3, 50)).astype(np.float32), axis=1)
    assert np.isfinite(clipped_std_of_sorted(rows, [50, 10, 2])).all()
    assert np.isnan(clipped_std_of_sorted(rows, [0, 0, 0])).all()
    for counts in ([50, 10], [51, 10, 2], [-1, 10, 2]):
        with pytest.raises(ValueError, match="counts"):
            clipped_std_of_sorted(rows, counts)
    with pytest.raises(ValueError, match="2-D"):
        clipped_std_of_sorted(rows[0], [50])


@pytest.mark.parametrize("seed", range(6))
def test_robust_stats_equals_astropy_sigma_clipped_stats(seed):
    """The sorted-run clip against astropy's own, on outliers, ties, NaN and exclusions."""
    from astropy.stats import sigma_clipped_stats

    from ccdred.kernels.stats import robust_stats, subsample

    rng = np.random.default_rng(seed)
    size = int(rng.integers(20, 300_000))
    values = rng.normal(100, rng.uniform(0.1, 50), size).astype(np.float32)
    values[rng.random(size) < rng.uniform(0, 0.2)] += np.float32(rng.uniform(-1000, 5000))
    if seed % 2:
        values = np.round(values)  # ties at the clipping bounds
    values[rng.random(size) < 0.01] = np.nan
    exclude = rng.random(size) < 0.05
    ours = robust_stats(values, exclude=exclude, max_values=100_000)
    theirs = sigma_clipped_stats(subsample(np.where(exclude, np.nan, values), 100_000),
                                 sigma=3.0, maxiters=10)
    # float32 sums in astropy, float64 here: equal to float32 precision
    np.testing.assert_allclose([ours.mean, ours.median, ours.std], theirs, rtol=1e-6)
    assert np.isnan(robust_stats(np.full(5, np.nan, np.float32)).median)


def _fill_pass_by_pass(data, bad):
    """fill_pixels as it was: one `repair_pixels` pass over the whole image at a time."""
    from ccdred.kernels.repair import repair_pixels

    remaining = np.array(bad, dtype=np.bool_, copy=True) | ~np.isfinite(data)
    out = np.where(remaining, np.float32(np.nan), data).astype(np.float32)
    while remaining.any():
        out, done = repair_pixels(out, remaining, box=3)
        if not done.any():
            break
        remaining &= ~done
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # one compiled pass, or numpy's
@pytest.mark.parametrize("fraction", [0.0, 0.02, 0.3, 1.0])
@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (50, 70), (300, 257)])
def test_fill_pixels_equals_whole_image_passes(shape, fraction, dtype):
    from ccdred.kernels.repair import fill_pixels

    rng = np.random.default_rng(shape[0])
    data = rng.normal(size=shape).astype(dtype)
    data[::7, ::3] = 1.0  # ties in the medians
    bad = rng.random(shape) < fraction
    if shape[0] > 40:  # a region filled over many passes, and non-finite values
        bad[10:30, 10:35] = True
        data[5, 5], data[6, 6] = np.nan, np.inf
    filled = fill_pixels(data, bad)
    assert filled.dtype == np.float32 and np.isfinite(filled).all()
    np.testing.assert_array_equal(filled, _fill_pass_by_pass(data, bad))
    assert not np.shares_memory(filled, data) and (bad.sum() == 0 or not bad.all()
                                                   or (filled == 0).all())


def test_repair_pixels_where_computes_only_the_pixels_asked_for():
    """`where` limits which bad pixels are replaced: the values of a whole repair there, and
    the image's own values (and done False) at every other pixel, bad or not."""
    from ccdred.kernels.repair import repair_pixels

    rng = np.random.default_rng(9)
    data = rng.normal(100, 5, (60, 45)).astype(np.float32)
    bad = rng.random(data.shape) < 0.2
    bad[20:30, 20:30] = True  # some with no good neighbour in the box
    where = rng.random(data.shape) < 0.5
    everywhere, done_everywhere = repair_pixels(data, bad, box=5)
    found, done = repair_pixels(data, bad, box=5, where=where)
    np.testing.assert_array_equal(done, done_everywhere & where)
    np.testing.assert_array_equal(found, np.where(done, everywhere, data))
    assert done.sum() > 100 and (done_everywhere & ~where).sum() > 100
    with pytest.raises(ValueError, match="where shape"):
        repair_pixels(data, bad, where=where[:5])
