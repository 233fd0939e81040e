"""What the night report needs of a frame, computed without whole-frame temporaries.

The report's checks look at a few thousand pixels of a frame (its hot pixels, a dark's
strong pixels, the holes below their surroundings); a full-frame filter computed for them
costs more than calibrating the frame. These kernels read only the neighbourhoods they need
(and `block_mean` bins a frame for its figures in one pass). A colour mosaic's pixels are
compared within their colour plane: ``step=2`` takes neighbours two pixels away, which keeps
the Bayer position.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .repair import insert_sorted, sorted_median

__all__ = ["neighbour_median_at", "holes", "block_mean", "cells_touched", "bilinear_at"]


@njit(cache=True)
def _neighbour_median_at(image, masked, rows, cols, step, max_half):
    height, width = image.shape
    out = np.full(rows.size, np.nan, np.float32)
    buf = np.empty((2 * max_half + 1) ** 2, np.float64)
    for i in range(rows.size):
        r, c = rows[i], cols[i]
        for half in range(1, max_half + 1):
            n = 0
            for dr in range(-half, half + 1):
                rr = r + dr * step
                if rr < 0 or rr >= height:
                    continue
                for dc in range(-half, half + 1):
                    cc = c + dc * step
                    if cc < 0 or cc >= width or (dr == 0 and dc == 0) or masked[rr, cc]:
                        continue
                    v = np.float64(image[rr, cc])
                    if np.isnan(v) or np.isinf(v):
                        continue
                    insert_sorted(buf, n, v)  # a few dozen values at most, no allocation
                    n += 1
            if n > 0:
                out[i] = sorted_median(buf, n)
                break
    return out


def neighbour_median_at(image: np.ndarray, masked: np.ndarray, rows: np.ndarray,
                        cols: np.ndarray, *, step: int = 1, max_half: int = 8) -> np.ndarray:
    """Median of each listed pixel's usable neighbours of its own colour.

    The neighbours are the pixels of the 3 x 3 box around it (the box's pixels ``step``
    apart) that are neither ``masked`` nor non-finite; where there is none, the 5 x 5 box,
    and so on up to ``2 max_half + 1``. For an isolated pixel this is what `fill_pixels`
    puts there; inside a large masked region `fill_pixels` grows inwards and may differ.

    Returns
    -------
    ndarray of float32
        One value per listed pixel; NaN where no box up to the largest has a usable pixel.
    """
    if masked.shape != image.shape:
        raise ValueError(f"mask shape {masked.shape} != image shape {image.shape}")
    rows = np.asarray(rows, np.intp)
    cols = np.asarray(cols, np.intp)
    return _neighbour_median_at(np.ascontiguousarray(image),
                                np.ascontiguousarray(masked, dtype=np.bool_), rows, cols,
                                int(step), int(max_half))


@njit(cache=True)
def _median9(buf):
    # Sorted in place; the fifth of 9 is the median (odd count: no averaging).
    for i in range(1, 9):
        insert_sorted(buf, i, buf[i])
    return buf[4]


@njit(cache=True)
def _holes(data, good, variance, has_variance, noise, k, fills, step):
    height, width = data.shape
    # Every pixel as the median filter sees it: its value if good, its plane's fill if not.
    filled = np.empty((height, width), np.float32)
    for r in range(height):
        plane_row = (r % step) * step
        for c in range(width):
            filled[r, c] = data[r, c] if good[r, c] else fills[plane_row + c % step]
    low = np.zeros((height, width), np.bool_)
    sigma = np.empty(width, np.float32)
    buf = np.empty(9, np.float32)
    inner_end = max(step, width - step)
    for r in range(height):
        up = r - step if r >= step else r
        down = r + step if r + step < height else r
        for c in range(width):
            var = variance[r, c] if has_variance else np.float32(0)
            root = np.float32(np.sqrt(var if var > 0 else np.float32(0)))
            sigma[c] = root if var > 0 and root > noise else noise
        # The median of the 9 is at most the largest of the 4 nearest (at least 5 of the 9
        # reach the median, and the pixel is below it): a candidate needs to be below that.
        # Branch-free over the columns whose neighbours are in the frame (vectorised), then
        # the edge columns, whose neighbours repeat the edge.
        for c in range(step, inner_end):
            best = max(max(filled[up, c], filled[down, c]),
                       max(filled[r, c - step], filled[r, c + step]))
            low[r, c] = good[r, c] & (data[r, c] < best - k * sigma[c])
        for c in range(width):
            if step <= c < inner_end:
                continue
            left = c - step if c >= step else c
            right = c + step if c + step < width else c
            best = max(max(filled[up, c], filled[down, c]),
                       max(filled[r, left], filled[r, right]))
            low[r, c] = good[r, c] & (data[r, c] < best - k * sigma[c])
        for c in range(width):  # the few candidates: against the median of the 9
            if not low[r, c]:
                continue
            n = 0
            for rr in (up, r, down):
                for cc in (c - step if c >= step else c, c, c + step if c + step < width else c):
                    buf[n] = filled[rr, cc]
                    n += 1
            low[r, c] = data[r, c] < _median9(buf) - k * sigma[c]
    return low


def holes(data: np.ndarray, good: np.ndarray, *, noise: float, k: float,
          variance: np.ndarray | None = None, fills: np.ndarray | None = None,
          step: int = 1) -> np.ndarray:
    """Pixels more than ``k`` sigma below the median of their 3 x 3 neighbourhood.

    The same pixels as comparing each ``good`` pixel with a full-frame 3 x 3 median filter
    (edges repeated, ``mode="nearest"``, per colour plane with ``step=2``) of the image whose
    pixels that are not ``good`` hold their plane's ``fills`` value; float32 arithmetic
    throughout, as numpy does it. Sigma is ``max(noise, sqrt(variance))`` per pixel.

    Parameters
    ----------
    data : ndarray of float32
    good : ndarray of bool
        The pixels judged, and the only ones whose values are used.
    noise, k : float
    variance : ndarray of float32, optional
    fills : ndarray of float32, optional
        The value of a pixel that is not good, per plane (``step * (row % step) + col % step``);
        0 by default.
    step : int
        1 for a monochrome frame, 2 for a Bayer mosaic.
    """
    if good.shape != data.shape:
        raise ValueError(f"mask shape {good.shape} != image shape {data.shape}")
    if fills is None:
        fills = np.zeros(step * step, np.float32)
    has_variance = variance is not None
    variance = (np.ascontiguousarray(variance, dtype=np.float32) if has_variance
                else np.zeros((1, 1), np.float32))
    return _holes(np.ascontiguousarray(data, dtype=np.float32),
                  np.ascontiguousarray(good, dtype=np.bool_), variance, has_variance,
                  np.float32(noise), np.float32(k), np.asarray(fills, np.float32), int(step))


@njit(cache=True)
def _block_mean(data, factor, rows, cols):
    out = np.empty((rows, cols), np.float32)
    width = cols * factor
    sums = np.empty(width, np.float64)
    counts = np.empty(width, np.int64)
    for br in range(rows):
        # Down each column of the block row first (contiguous, vectorised), then across.
        sums[:] = 0.0
        counts[:] = 0
        for r in range(br * factor, (br + 1) * factor):
            for c in range(width):
                v = data[r, c]
                finite = np.isfinite(v)
                sums[c] += v if finite else 0.0
                counts[c] += finite
        for bc in range(cols):
            total = 0.0
            n = 0
            for c in range(bc * factor, (bc + 1) * factor):
                total += sums[c]
                n += counts[c]
            out[br, bc] = total / n if n > 0 else np.nan
    return out


def block_mean(data: np.ndarray, factor: int) -> np.ndarray:
    """Mean of the finite values of each ``factor`` x ``factor`` block (NaN where none).

    Incomplete blocks at the far edges are left out; sums in double precision.
    """
    rows, cols = data.shape[0] // factor, data.shape[1] // factor
    return _block_mean(np.ascontiguousarray(data), int(factor), rows, cols)


@njit(cache=True)
def _cells_touched(rows, cols, below_r, above_r, below_c, above_c, touched):
    for i in range(rows.size):
        low_r, high_r = below_r[rows[i]], above_r[rows[i]]
        low_c, high_c = below_c[cols[i]], above_c[cols[i]]
        touched[low_r, low_c] = True
        touched[low_r, high_c] = True
        touched[high_r, low_c] = True
        touched[high_r, high_c] = True
    return touched


def cells_touched(rows: np.ndarray, cols: np.ndarray, along_rows: tuple[np.ndarray, ...],
                  along_cols: tuple[np.ndarray, ...], shape: tuple[int, int]) -> np.ndarray:
    """Return the cells of a grid that `bilinear_at` reads for the pixels listed.

    Parameters
    ----------
    rows, cols : ndarray of int
        The image pixels.
    along_rows, along_cols : tuple of three ndarrays
        For each image row (column): the grid row (column) below it, the one above it, and
        the weight of the one above.
    shape : (int, int)
        The grid's cells down and across.

    Returns
    -------
    ndarray of bool (``shape``)

    Raises
    ------
    IndexError
        A pixel is outside the image, or a cell outside the grid.
    """
    rows, cols = _pixels(rows, cols, along_rows, along_cols, shape)
    return _cells_touched(rows, cols, along_rows[0], along_rows[1], along_cols[0],
                          along_cols[1], np.zeros(shape, np.bool_))


def _pixels(rows: np.ndarray, cols: np.ndarray, along_rows: tuple[np.ndarray, ...],
            along_cols: tuple[np.ndarray, ...], shape: tuple[int, ...]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Return the pixels as intp, checked, and the cells they map to (kernels check nothing)."""
    rows, cols = np.asarray(rows, np.intp), np.asarray(cols, np.intp)
    for index, along, cells in ((rows, along_rows, shape[0]), (cols, along_cols, shape[1])):
        if index.size and (index.min() < 0 or index.max() >= along[0].size):
            raise IndexError(f"pixel index outside 0..{along[0].size - 1}")
        if along[0].size and max(along[0].max(), along[1].max()) >= cells:
            raise IndexError(f"interpolation reaches past the grid's {cells} cells")
    return rows, cols


@njit(cache=True)
def _bilinear_at(grid, rows, cols, below_r, above_r, weight_r, below_c, above_c, weight_c):
    out = np.empty(rows.size)
    for i in range(rows.size):
        r, c = rows[i], cols[i]
        low_r, high_r, w_r = below_r[r], above_r[r], weight_r[r]
        low_c, high_c, w_c = below_c[c], above_c[c], weight_c[c]
        # Along the rows, then along the columns: the order of `qa.maps.background`'s passes.
        low = grid[low_r, low_c] * (1 - w_r) + grid[high_r, low_c] * w_r
        high = grid[low_r, high_c] * (1 - w_r) + grid[high_r, high_c] * w_r
        out[i] = low * (1 - w_c) + high * w_c
    return out


def bilinear_at(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                along_rows: tuple[np.ndarray, ...], along_cols: tuple[np.ndarray, ...]
                ) -> np.ndarray:
    """Return ``grid`` interpolated bilinearly at the pixels listed (only those computed).

    Parameters
    ----------
    grid : ndarray (2-D)
        Values at the cells' centres.
    rows, cols, along_rows, along_cols
        As for `cells_touched`.

    Returns
    -------
    ndarray of float64
        One value per pixel: along the rows first, then along the columns.

    Raises
    ------
    IndexError
        A pixel is outside the image, or a cell outside the grid.
    """
    rows, cols = _pixels(rows, cols, along_rows, along_cols, grid.shape)
    return _bilinear_at(np.asarray(grid, np.float64), rows, cols, *along_rows, *along_cols)
