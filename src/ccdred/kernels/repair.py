"""Cosmetic repair: replace flagged pixels by the median of their good neighbours."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["repair_pixels", "repair_at", "flagged_pixels", "fill_pixels", "insert_sorted",
           "sorted_median"]


@njit(cache=True, inline="always")
def insert_sorted(buf, n, value):
    """Insert ``value`` into the sorted ``buf[:n]`` (one step of an insertion sort)."""
    j = n
    while j > 0 and buf[j - 1] > value:
        buf[j] = buf[j - 1]
        j -= 1
    buf[j] = value


@njit(cache=True, inline="always")
def sorted_median(buf, n):
    """Median of the sorted ``buf[:n]``, as `np.median` gives it (``n`` > 0)."""
    return 0.5 * (buf[(n - 1) // 2] + buf[n // 2])


@njit(cache=True, parallel=True)
def _repair(data, bad, target, half, out, done):
    rows, cols = data.shape
    size = (2 * half + 1) ** 2
    for r in prange(rows):
        buf = np.empty(size, np.float64)
        for c in range(cols):
            if not target[r, c]:
                continue
            n = 0
            for rr in range(max(0, r - half), min(rows, r + half + 1)):
                for cc in range(max(0, c - half), min(cols, c + half + 1)):
                    if not bad[rr, cc]:
                        v = data[rr, cc]
                        if not np.isnan(v):
                            buf[n] = v
                            n += 1
            if n > 0:
                out[r, c] = np.median(buf[:n])
                done[r, c] = True


def repair_pixels(data: np.ndarray, bad: np.ndarray, *, box: int = 5,
                  where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Replace pixels where ``bad`` is True by the median of the good pixels in a box around them.

    Parameters
    ----------
    data : ndarray
        Image (not modified).
    bad : ndarray of bool
        Pixels to replace; bad pixels are never used as neighbours.
    box : int
        Odd box size (5 is the notebook's 5x5 window).
    where : ndarray of bool, optional
        Only the bad pixels here are replaced (the others keep their values and are not
        computed); every bad pixel when omitted.

    Returns
    -------
    repaired : ndarray
        A new image (float32).
    done : ndarray of bool
        True where a pixel was replaced; a bad pixel with no good neighbour is left as it was.
    """
    if box < 3 or box % 2 == 0:
        raise ValueError(f"box must be an odd number >= 3, got {box}")
    if bad.shape != data.shape:
        raise ValueError(f"bad-pixel mask shape {bad.shape} != image shape {data.shape}")
    if where is not None and np.shape(where) != data.shape:
        raise ValueError(f"where shape {np.shape(where)} != image shape {data.shape}")
    source = np.ascontiguousarray(data, dtype=np.float32)  # read only: no copy if float32
    out = source.copy()
    done = np.zeros(data.shape, dtype=np.bool_)
    bad = np.ascontiguousarray(bad, dtype=np.bool_)
    target = bad if where is None else bad & np.asarray(where, dtype=np.bool_)
    _repair(source, bad, np.ascontiguousarray(target), box // 2, out, done)
    return out, done


def flagged_pixels(dq: np.ndarray, flags: int, where: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Return the rows and columns (in order) of the pixels with any of ``flags`` in ``dq``.

    Only where ``where`` is True, when given. `numpy.nonzero` of the same mask, without the
    mask: one compiled pass counts, a second lists.
    """
    if where is not None and np.shape(where) != dq.shape:
        raise ValueError(f"where shape {np.shape(where)} != DQ shape {dq.shape}")
    dq = np.ascontiguousarray(dq, np.uint16)
    inside = np.ones((1, 1), np.bool_) if where is None else np.asarray(where, np.bool_)
    return _flagged_pixels(dq, np.uint16(flags), inside, where is not None)


@njit(cache=True)
def _flagged_pixels(dq, flags, where, use_where):
    height, width = dq.shape
    count = 0
    for r in range(height):
        for c in range(width):
            count += ((dq[r, c] & flags) != 0) & (not use_where or where[r, c])
    rows = np.empty(count, np.int64)
    cols = np.empty(count, np.int64)
    k = 0
    for r in range(height):
        for c in range(width):
            if (dq[r, c] & flags) != 0 and (not use_where or where[r, c]):
                rows[k] = r
                cols[k] = c
                k += 1
    return rows, cols


def repair_at(data: np.ndarray, variance: np.ndarray | None, dq: np.ndarray, bad_bits: int,
              rows: np.ndarray, cols: np.ndarray, *, box: int = 5, step: int = 1
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """`repair_pixels` of a frame's data and variance at the pixels listed, in one pass.

    Each pixel at (``rows``, ``cols``) gets the median of the data in a ``box`` x ``box``
    window of its colour plane (every ``step``-th row and column: 2 for a Bayer mosaic)
    whose DQ has none of ``bad_bits`` and whose value is not NaN; its variance, the median
    of those neighbours' variances (not NaN). Only the listed pixels are visited: the
    values are those of `repair_pixels` with ``bad`` = any of ``bad_bits`` set and
    ``where`` = the listed pixels, applied per colour plane, then to the variance where the
    data were repaired (bit for bit, but for the sign of a zero median when neighbours hold
    both -0.0 and 0.0: equal values, taken in another order).

    Parameters
    ----------
    data, variance : ndarray of float32 (2-D)
        Not modified; ``variance`` may be None.
    dq : ndarray of uint16, ``data``'s shape
    bad_bits : int
        Flags that keep a pixel out of its neighbours' medians.
    rows, cols : ndarray of int
        The pixels to repair (each should carry one of ``bad_bits``).
    box : int
        Odd window size, in the colour plane's pixels.
    step : int
        1 for a monochrome frame, 2 for a Bayer mosaic.

    Returns
    -------
    data, variance : ndarray of float32
        New images (variance None when not given).
    done : ndarray of bool (one per pixel listed)
        False where no neighbour was usable: the pixel keeps its value and variance.
    """
    if box < 3 or box % 2 == 0:
        raise ValueError(f"box must be an odd number >= 3, got {box}")
    if data.dtype != np.float32 or data.ndim != 2 or dq.shape != data.shape or (
            variance is not None and (variance.dtype != np.float32
                                      or variance.shape != data.shape)):
        raise ValueError("repair_at needs float32 data (and variance) and a DQ of its shape")
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    if rows.shape != cols.shape or (rows.size and (
            min(rows.min(), cols.min()) < 0 or rows.max() >= data.shape[0]
            or cols.max() >= data.shape[1])):
        raise ValueError("pixels to repair must be inside the image, as many rows as columns")
    out = data.copy()  # numpy's memory: faulted in large pages
    out_variance = None if variance is None else variance.copy()
    done = np.zeros(rows.size, np.bool_)
    _repair_at(data, variance if variance is not None else data, variance is not None,
               np.ascontiguousarray(dq, np.uint16), np.uint16(bad_bits), rows, cols,
               box // 2, step, out, out_variance if out_variance is not None else out, done)
    return out, out_variance, done


@njit(cache=True)
def _neighbour_median(image, dq, bad_bits, r, c, half, step, buf):
    """Return how many good, non-NaN neighbours (r, c) has in ``image``, and their median."""
    height, width = image.shape
    n = 0
    for k in range(-half, half + 1):
        rr = r + k * step
        if rr < 0 or rr >= height:
            continue
        for m in range(-half, half + 1):
            cc = c + m * step
            if cc < 0 or cc >= width or (dq[rr, cc] & bad_bits) != 0:
                continue
            v = image[rr, cc]
            if not np.isnan(v):
                insert_sorted(buf, n, np.float64(v))
                n += 1
    return n, sorted_median(buf, n) if n > 0 else 0.0


@njit(cache=True)
def _repair_at(data, variance, has_variance, dq, bad_bits, rows, cols, half, step, out,
               out_variance, done):
    buf = np.empty((2 * half + 1) ** 2, np.float64)
    for i in range(rows.size):
        r, c = rows[i], cols[i]
        count, value = _neighbour_median(data, dq, bad_bits, r, c, half, step, buf)
        if count == 0:
            continue
        out[r, c] = value
        done[i] = True
        if has_variance:
            count, spread = _neighbour_median(variance, dq, bad_bits, r, c, half, step, buf)
            if count > 0:
                out_variance[r, c] = spread


def fill_pixels(data: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Fill every ``bad`` pixel from its good surroundings, growing inwards into large regions.

    Each pass replaces the bad pixels that touch a good (or already filled) one by the median
    of those 3x3 neighbours, so a saturated star core becomes a smooth plateau instead of a
    hole. An image with no good pixel at all comes back as zeros.

    Returns
    -------
    ndarray
        A new float32 image with no NaN.
    """
    if bad.shape != data.shape:
        raise ValueError(f"bad-pixel mask shape {bad.shape} != image shape {data.shape}")
    if data.dtype == np.float32 and data.ndim == 2:
        # One pass marks and lists the pixels to fill; only those are visited after it.
        # numpy allocates the images: it asks for huge pages (fewer page faults to fill).
        out = np.empty(data.shape, np.float32)
        remaining = np.empty(data.shape, np.bool_)
        rows, cols = _to_fill(data, np.asarray(bad, dtype=np.bool_), out, remaining)
        _fill(out, remaining, rows, cols)
        _zero_unfilled(out, rows, cols)
        return out
    remaining = np.array(bad, dtype=np.bool_, copy=True) | ~np.isfinite(data)
    out = np.where(remaining, np.float32(np.nan), data).astype(np.float32)
    rows, cols = np.nonzero(remaining)
    if rows.size:
        # Every pass visits the pixels still to fill, not the whole image: a few per cent of
        # it, where `repair_pixels` per pass copied and scanned all of it.
        _fill(out, remaining, rows, cols)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


@njit(cache=True)
def _to_fill(data, bad, out, remaining):
    """Fill ``out`` and ``remaining``; return the pixels to fill in order (rows, columns).

    ``out`` is the image, NaN where bad or not finite; ``remaining`` is that mask.
    """
    height, width = data.shape
    count = 0
    for r in range(height):
        for c in range(width):
            value = data[r, c]
            fill = bad[r, c] or not np.isfinite(value)
            remaining[r, c] = fill
            out[r, c] = np.float32(np.nan) if fill else value
            count += fill
    rows = np.empty(count, np.int64)
    cols = np.empty(count, np.int64)
    k = 0
    for r in range(height):
        for c in range(width):
            if remaining[r, c]:
                rows[k] = r
                cols[k] = c
                k += 1
    return rows, cols


@njit(cache=True)
def _zero_unfilled(out, rows, cols):
    """Set to 0 what no pass could reach (no good pixel anywhere), as `np.nan_to_num` does.

    Every other pixel of a float32 image is finite already.
    """
    for i in range(rows.size):
        if np.isnan(out[rows[i], cols[i]]):
            out[rows[i], cols[i]] = 0.0


@njit(cache=True)
def _fill(out, remaining, rows, cols):
    """`fill_pixels`'s passes over the listed pixels: each pass sees only the last one's."""
    height, width = out.shape
    order = np.arange(rows.size)
    values = np.empty(rows.size, np.float32)
    filled = np.zeros(rows.size, np.bool_)
    buf = np.empty(9, np.float64)
    active = rows.size
    while active > 0:
        progress = False
        for k in range(active):
            i = order[k]
            r, c = rows[i], cols[i]
            n = 0
            for rr in range(max(0, r - 1), min(height, r + 2)):
                for cc in range(max(0, c - 1), min(width, c + 2)):
                    if not remaining[rr, cc]:
                        v = np.float64(out[rr, cc])
                        if not np.isnan(v):
                            insert_sorted(buf, n, v)  # at most 8 values, no allocation
                            n += 1
            if n > 0:
                values[i] = sorted_median(buf, n)
                filled[i] = True
                progress = True
        if not progress:
            break
        kept = 0
        for k in range(active):
            i = order[k]
            if filled[i]:
                out[rows[i], cols[i]] = values[i]
                remaining[rows[i], cols[i]] = False
            else:
                order[kept] = i
                kept += 1
        active = kept
