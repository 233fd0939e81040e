"""Kernels that visit only the pixels a check needs, against their full-frame definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ccdred.kernels import sparse
from ccdred.kernels.mosaic import assemble, per_plane, plane_slices
from ccdred.kernels.repair import fill_pixels
from ccdred.kernels.selection import cell_medians, masked_median, median, sorted_float32
from ccdred.kernels.stats import robust_stats
from ccdred.qa.maps import (
    SAMPLE,
    Surroundings,
    _plane_noise,
    block_medians,
    relative_to_surroundings,
)


def _frame(shape, seed, flagged=0.03):
    rng = np.random.default_rng(seed)
    data = rng.normal(100, 5, shape).astype(np.float32)
    data[rng.random(shape) < 0.01] -= 60  # holes
    data[rng.random(shape) < 0.01] += 400  # stars, cosmic rays
    data[min(3, shape[0] - 1), :] -= 80  # a cold row
    data[rng.random(shape) < 0.002] = np.nan
    good = (rng.random(shape) > flagged) & np.isfinite(data)
    variance = rng.uniform(0, 60, shape).astype(np.float32)
    variance[rng.random(shape) < 0.05] = np.nan
    return data, good, variance


def _holes_full_frame(data, good, variance, noise, k, fills, cfa):
    """The definition: every pixel against a full-frame 3x3 median filter (edges repeated)."""
    filled = np.where(good, data, np.float32(np.nan))
    parts = []
    for (rows, cols), fill in zip(plane_slices(cfa), fills, strict=True):
        plane = filled[rows, cols]
        parts.append(ndimage.median_filter(np.where(np.isfinite(plane), plane, fill), 3,
                                           mode="nearest"))
    local = assemble(parts, data.shape, cfa, np.float32)
    sigma = np.full(int(good.sum()), noise, np.float32)
    if variance is not None:
        sigma = np.fmax(sigma, np.sqrt(np.maximum(variance[good], 0)))
    low = np.zeros(data.shape, bool)
    low[good] = data[good] < local[good] - k * sigma
    return low


@pytest.mark.parametrize("cfa", [None, "RGGB"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (3, 2), (4, 4), (5, 7), (64, 33), (301, 256)])
@pytest.mark.parametrize("with_variance", [True, False])
def test_holes_are_the_pixels_below_a_full_frame_median_filter(shape, cfa, with_variance):
    data, good, variance = _frame(shape, shape[0] + shape[1])
    fills = np.array([97.0, 101.5, 99.0, 103.0][:4 if cfa else 1], np.float32)
    variance = variance if with_variance else None
    expected = _holes_full_frame(data, good, variance, 5.0, 5.0, fills, cfa)
    found = sparse.holes(data, good, noise=5.0, k=5.0, variance=variance, fills=fills,
                         step=2 if cfa else 1)
    np.testing.assert_array_equal(found, expected)
    if shape[0] > 100:
        assert expected.sum() > 100  # the test has holes to find


@pytest.mark.parametrize("cfa", [None, "RGGB"])
def test_neighbour_median_at_is_fill_pixels_at_isolated_pixels(cfa):
    data, _, _ = _frame((200, 180), 7)
    rng = np.random.default_rng(3)
    masked = rng.random(data.shape) < 0.01
    masked[50:54, 60:64] = True  # a cluster: fill_pixels grows into it, the kernel widens
    expected = assemble(per_plane(fill_pixels, [data, masked], cfa), data.shape, cfa,
                        np.float32)
    rows, cols = np.nonzero(masked | ~np.isfinite(data))
    step = 2 if cfa else 1
    found = sparse.neighbour_median_at(data, masked, rows, cols, step=step)
    around = np.zeros(data.shape, np.int32)  # unusable same-plane pixels in the 3x3 box
    unusable = (masked | ~np.isfinite(data)).astype(np.int32)
    padded = np.pad(unusable, 2 * step, constant_values=0)
    for dr in (-step, 0, step):
        for dc in (-step, 0, step):
            if dr or dc:
                around += padded[2 * step + dr:2 * step + dr + data.shape[0],
                                 2 * step + dc:2 * step + dc + data.shape[1]]
    isolated = around[rows, cols] == 0
    assert isolated.sum() > 200
    np.testing.assert_array_equal(found[isolated], expected[rows, cols][isolated])
    # Inside the cluster a wider box is used: a value, close to the sky's.
    assert np.isfinite(found).all()
    inner = (rows == 51) & (cols == 61)
    assert abs(float(found[inner][0]) - 100) < 15


def test_neighbour_median_at_gives_nan_without_usable_neighbours():
    data = np.ones((9, 9), np.float32)
    masked = np.ones((9, 9), bool)
    out = sparse.neighbour_median_at(data, masked, np.array([4]), np.array([4]))
    assert np.isnan(out[0])


@pytest.mark.parametrize("factor", [2, 3, 7])
def test_block_mean_is_the_mean_of_each_block(factor):
    rng = np.random.default_rng(factor)
    data = rng.normal(0, 1, (101, 64)).astype(np.float32)
    data[5, 5] = np.nan
    rows, cols = 101 // factor, 64 // factor
    data[:factor, (cols - 1) * factor:cols * factor] = np.nan  # a block with nothing finite
    cells = data[:rows * factor, :cols * factor].reshape(rows, factor, cols, factor)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmean(cells.astype(np.float64), axis=(1, 3)).astype(np.float32)
    np.testing.assert_allclose(sparse.block_mean(data, factor), expected, rtol=1e-6,
                               equal_nan=True)


@pytest.mark.parametrize("cfa", [None, "RGGB"])
@pytest.mark.parametrize("shape", [(100, 70), (257, 300)])
def test_surroundings_at_pixels_equal_the_whole_frame_map(shape, cfa):
    data, good, _ = _frame(shape, 11)
    data += np.linspace(0, 50, shape[1], dtype=np.float32)  # a gradient to interpolate
    bad = ~good
    bad[:40, :40] = True  # whole cells without a good pixel: filled from their neighbours
    expected = relative_to_surroundings(data, bad, cfa)
    rows, cols = np.indices(shape).reshape(2, -1)
    found = Surroundings(data, bad, cfa)(rows, cols).reshape(shape)
    np.testing.assert_array_equal(found, expected)
    assert np.isfinite(found).mean() > 0.7


def _nanmedian_cells(values, bad, cell, cell_cols=None):
    """The definition: numpy's nanmedian of each cell's finite, unflagged values (NaN: none)."""
    cell_cols = cell_cols or cell
    rows, cols = -(-values.shape[0] // cell), -(-values.shape[1] // cell_cols)
    out = np.full((rows, cols), np.nan)
    for r in range(rows):
        for c in range(cols):
            box = (slice(r * cell, (r + 1) * cell), slice(c * cell_cols, (c + 1) * cell_cols))
            kept = values[box][~bad[box] & np.isfinite(values[box])]
            if kept.size:
                out[r, c] = np.median(kept.astype(np.float64))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", [3, 32, 40])
def test_cell_medians_are_numpys_nanmedian_of_each_cell(dtype, cell):
    rng = np.random.default_rng(cell)
    values = rng.normal(100, 10, (131, 97)).astype(dtype)
    values[:, :30] = np.round(values[:, :30] / 4) * 4  # many ties, as integer data has
    values[rng.random(values.shape) < 0.03] = np.nan
    values[5, 7], values[60, 60] = np.inf, -np.inf  # left out, as NaN is
    bad = rng.random(values.shape) < 0.3
    bad[:cell, :cell] = True  # a cell with nothing to use
    found = cell_medians(values, bad, cell, cell)
    np.testing.assert_array_equal(found, _nanmedian_cells(values, bad, cell))
    assert np.isnan(found[0, 0]) and np.isfinite(found).sum() == found.size - 1


def test_cell_medians_of_a_colour_plane_view_and_bad_input():
    """A colour plane is a strided view of the mosaic: the same medians as of a copy."""
    rng = np.random.default_rng(4)
    mosaic = rng.normal(100, 10, (130, 98)).astype(np.float32)
    flagged = rng.random(mosaic.shape) < 0.1
    plane, plane_bad = mosaic[1::2, ::2], flagged[1::2, ::2]
    np.testing.assert_array_equal(cell_medians(plane, plane_bad, 16, 16),
                                  _nanmedian_cells(plane.copy(), plane_bad.copy(), 16))
    with pytest.raises(ValueError, match="mask shape"):
        cell_medians(mosaic, flagged[:8, :8], 16, 16)
    with pytest.raises(ValueError, match="positive"):
        cell_medians(mosaic, flagged, 0, 16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
def test_stats_block_medians_are_nanmedians_of_whole_cells(dtype):
    """`kernels.stats.block_medians` (a dark's glow cells) against numpy's nanmedian.

    Cells of 8 x 8: the last 3 rows and 5 columns do not fill one and are left out; flagged
    and non-finite pixels do not count; a cell with none left is NaN.
    """
    from ccdred.kernels.stats import block_medians as glow_cells

    rng = np.random.default_rng(11)
    data = rng.normal(1000, 30, (35, 53)).astype(dtype)
    bad = rng.random(data.shape) < 0.1
    bad[8:16, 16:24] = True  # a cell with no good pixel
    if data.dtype.kind == "f":
        data[2, 3], data[20, 30] = np.inf, np.nan
    found = glow_cells(data, bad, 8)
    expected = _nanmedian_cells(data[:32, :48].astype(np.float64), bad[:32, :48], 8)
    assert found.shape == (4, 6) and np.isnan(found[1, 2])
    np.testing.assert_array_equal(found, expected)  # the same values, averaged in float64
    assert np.isnan(glow_cells(data[:5], bad[:5], 8)).all()  # smaller than a cell


def test_block_medians_leave_out_what_does_not_fill_a_block():
    rng = np.random.default_rng(5)
    data = rng.normal(0, 1, (37, 45)).astype(np.float32)
    bad = rng.random(data.shape) < 0.2
    found = block_medians(data, bad, 4)  # blocks of 9 x 11: 1 row and 1 column left out
    expected = _nanmedian_cells(data[:36, :44], bad[:36, :44], 9, 11)
    np.testing.assert_array_equal(found, expected)
    data[36, :] = data[:, 44] = 1e6  # the rows and columns left out do not count
    np.testing.assert_array_equal(block_medians(data, bad, 4), expected)
    assert np.isnan(block_medians(data[:3], bad[:3], 4)).all()  # fewer rows than blocks


def test_cell_medians_when_the_sample_misses_the_median():
    """A cell whose regularly sampled values are unlike the rest (every 8th value of a
    1024-value cell high): the sampled bracket misses, and the answer is still exact."""
    values = np.zeros((32, 32), np.float32)
    values.ravel()[::8] = 1000.0
    values += np.arange(32 * 32, dtype=np.float32).reshape(32, 32) * 1e-3
    bad = np.zeros(values.shape, bool)
    found = cell_medians(values, bad, 32, 32)
    assert found[0, 0] == _nanmedian_cells(values, bad, 32)[0, 0]
    assert found[0, 0] < 1000


def test_cell_medians_measures_only_the_cells_wanted():
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, (64, 64)).astype(np.float32)
    bad = np.zeros(values.shape, bool)
    wanted = np.zeros((2, 2), bool)
    wanted[1, 0] = True
    found = cell_medians(values, bad, 32, 32, wanted=wanted)
    assert np.isnan(found[~wanted]).all()
    assert found[1, 0] == cell_medians(values, bad, 32, 32)[1, 0]
    with pytest.raises(ValueError, match="cells"):
        cell_medians(values, bad, 32, 32, wanted=np.ones((3, 2), bool))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 2, 3, 257, 10_000, 10_001])
def test_median_is_numpys_median(dtype, size):
    """The same value as np.median, rounded as numpy rounds the mean of the middle two."""
    rng = np.random.default_rng(size)
    values = (rng.normal(7, 3, size) * 1e3).astype(dtype)
    values[: size // 3] = np.round(values[: size // 3] / 100)  # ties
    kept = values.copy()
    assert median(values) == np.median(values)
    assert np.array_equal(values, kept)  # the input is left alone
    values[size // 2] = np.inf
    assert median(values) == np.median(values)
    values[0] = np.nan
    assert np.isnan(median(values))
    with pytest.raises(ValueError, match="1-D float32 or float64"):
        median(values.astype(np.float16))
    big_endian = kept.astype(kept.dtype.newbyteorder(">"))  # as FITS stores values
    assert median(big_endian) == np.median(kept)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (64, 96)])
def test_masked_median_is_the_median_of_the_finite_values_kept(dtype, shape):
    rng = np.random.default_rng(shape[1])
    values = rng.lognormal(3, 1, shape).astype(dtype)
    values.flat[::7] = np.nan
    values.flat[3::11] = np.inf
    exclude = rng.random(shape) < 0.3
    kept = values.copy()
    expected = values[np.isfinite(values) & ~exclude]
    found = masked_median(values, exclude)
    if expected.size:
        assert found == median(expected) == np.median(expected)
    else:
        assert np.isnan(found)
    np.testing.assert_array_equal(values, kept)  # the input is left alone
    assert np.isnan(masked_median(values, np.ones(shape, bool)))
    big_endian = kept.astype(kept.dtype.newbyteorder(">"))
    np.testing.assert_equal(masked_median(big_endian, exclude), found)
    with pytest.raises(ValueError, match="shape"):
        masked_median(values, exclude[:, :-1])
    with pytest.raises(ValueError, match="float32 or float64"):
        masked_median(values.astype(np.float16), exclude)


def test_median_when_the_sample_misses_the_median_leaves_its_input_alone():
    values = np.zeros(10_000, np.float32)
    values[::25] = 1000.0  # every sampled value (stride 25) high: the bracket misses
    values += np.arange(values.size, dtype=np.float32) * np.float32(1e-3)
    kept = values.copy()
    assert median(values) == np.median(values) < 1000
    np.testing.assert_array_equal(values, kept)


@pytest.mark.parametrize("size", [0, 1, 2, 1000, 100_003])
def test_sorted_float32_is_numpys_sort(size):
    rng = np.random.default_rng(size)
    values = (rng.normal(0, 1, size) * 10.0 ** rng.integers(-40, 39, size)).astype(np.float32)
    if size > 10:  # the extremes of float32, subnormals, both zeros, many ties
        values[:8] = [np.finfo(np.float32).max, -np.finfo(np.float32).max, 1e-45, -1e-45,
                      0.0, -0.0, np.finfo(np.float32).tiny, 3.0]
        values[8:size // 2] = np.round(values[8:size // 2])
    found = sorted_float32(values)
    assert found.dtype == np.float32 and found.shape == values.shape
    np.testing.assert_array_equal(found, np.sort(values))
    zeros = np.signbit(found[found == 0])
    assert np.array_equal(zeros, np.sort(zeros)[::-1])  # -0.0 first
    with pytest.raises(ValueError, match="float32"):
        sorted_float32(values.astype(np.float64))


@pytest.mark.parametrize("cfa", [None, "RGGB"])
@pytest.mark.parametrize("hole_nearby", [False, True])
def test_surroundings_of_a_patch_equal_the_whole_frame_map(cfa, hole_nearby):
    """A check asks for a few thousand pixels (a dust donut): only the background cells
    around them are measured, with the values of the whole map, holes nearby or not."""
    shape = (300, 260)
    data, good, _ = _frame(shape, 12)
    data += np.linspace(0, 50, shape[1], dtype=np.float32)
    bad = ~good
    bad[:64, 192:] = True  # cells without a good pixel, far from the patch
    if hole_nearby:
        bad[64:160, 64:160] = True  # and cells beside it: filled from their neighbours
    rows, cols = np.indices((40, 40)).reshape(2, -1) + 160
    expected = relative_to_surroundings(data, bad, cfa)[rows, cols]
    np.testing.assert_array_equal(Surroundings(data, bad, cfa)(rows, cols), expected)
    assert np.isfinite(expected).mean() > 0.7
    for outside in ([300], [-1], [100_000]):  # a clear error, never a read past the frame
        with pytest.raises(IndexError, match="outside"):
            Surroundings(data, bad, cfa)(np.array(outside), np.array([0]))


@pytest.mark.parametrize("shape", [(1024, 1024), (1000, 777), (3, 5), (2, 1), (512, 511)])
def test_local_noise_samples_the_neighbour_differences_robust_stats_would(shape):
    """`_plane_noise` computes only the sampled differences: the same value as the definition."""
    rng = np.random.default_rng(shape[1])
    data = rng.normal(0, 3, shape).astype(np.float32)
    data[rng.random(shape) < 0.001] = np.nan
    flagged = rng.random(shape) < 0.02
    spreads = []
    for axis in (0, 1):
        bad = np.diff(flagged.astype(np.int8), axis=axis) != 0
        bad |= flagged[1:, :] if axis == 0 else flagged[:, 1:]
        spreads.append(robust_stats(np.diff(data, axis=axis), exclude=bad,
                                    max_values=SAMPLE).std)
    assert _plane_noise(data, flagged) == np.nanmin(spreads) / np.sqrt(2)
