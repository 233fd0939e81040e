"""Medians of many cells of an image and a fast sort, for statistics over whole frames.

`cell_medians` and `median` find medians by selection (linear time, few passes) instead of
a sort or numpy's partition;
`sorted_float32` sorts by radix (linear time), where numpy's sort is not vectorised.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["cell_medians", "median", "masked_median", "sorted_float32"]


@njit(cache=True, inline="always")
def _select(values, n, k):
    """Move the ``k``-th smallest of ``values[:n]`` to ``values[k]``, smaller ones before it.

    Hoare's selection (Wirth's form): linear time on average, where a sort is ``n log n``.
    """
    lo, hi = 0, n - 1
    while lo < hi:
        pivot = values[k]
        i, j = lo, hi
        while i <= j:
            while values[i] < pivot:
                i += 1
            while pivot < values[j]:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if j < k:
            lo = i
        if k < i:
            hi = j
    return values[k]


@njit(cache=True)
def _middle(values, n, scratch, sample):
    """Return the two middle values of ``values[:n]`` (equal for odd ``n``); may reorder them.

    `_bracketed_middle` when its bracket holds them (``values`` then untouched), else a
    selection over all the values.
    """
    found, low_value, high_value = _bracketed_middle(values, n, scratch, sample)
    if found:
        return low_value, high_value
    return _selected_middle(values, n)


@njit(cache=True, inline="always")
def _selected_middle(values, n):
    high_value = _select(values, n, n // 2)
    low_value = high_value
    if n % 2 == 0:
        low_value = _max_before(values, n // 2)
    return low_value, high_value


@njit(cache=True)
def _bracketed_middle(values, n, scratch, sample):
    """Return ``(found, low, high)``: the two middle values of ``values[:n]``, read only.

    Floyd and Rivest's idea: the median of a regular sample brackets the median of all; one
    branch-free pass counts the values below the bracket and gathers those within it (a few
    per cent) into ``scratch``, and only these are searched. ``found`` is False when the
    bracket missed (a sample unlike the rest) or ``n`` is small: select among all values.
    """
    upper_rank = n // 2
    lower_rank = (n - 1) // 2
    if n <= 256:
        return False, values[0], values[0]
    # A sample of about sqrt(n) * 4 values, and ranks 3 standard errors either side of its
    # middle: the bracket holds the median but for one time in a few hundred.
    step = max(1, int(math.sqrt(n) / 4))
    m = 0
    for i in range(0, n, step):
        sample[m] = values[i]
        m += 1
    margin = int(1.5 * math.sqrt(m)) + 1
    low_rank = max(0, m // 2 - margin)
    low = _select(sample, m, low_rank)
    high = _select(sample[low_rank:], m - low_rank, min(m - 1, m // 2 + margin) - low_rank)
    below = 0
    kept = 0
    for i in range(n):
        value = values[i]
        below += value < low
        scratch[kept] = value
        kept += (value >= low) & (value <= high)
    if not (below <= lower_rank and upper_rank < below + kept):
        return False, values[0], values[0]
    high_value = _select(scratch, kept, upper_rank - below)
    low_value = high_value
    if lower_rank < upper_rank:
        low_value = _max_before(scratch, upper_rank - below)
    return True, low_value, high_value


@njit(cache=True, inline="always")
def _max_before(values, k):
    """Return the largest of ``values[:k]`` (``k`` > 0): after `_select`, rank ``k - 1``."""
    largest = values[0]
    for i in range(1, k):
        largest = max(largest, values[i])
    return largest


def median(values: np.ndarray) -> float:
    """Return `numpy.median` of a 1-D float array: the same value, by `cell_medians`' selection.

    Parameters
    ----------
    values : ndarray of float32 or float64 (1-D, not empty)
        Left unchanged.

    Returns
    -------
    float
        The mean of the two middle values, rounded as numpy's (in the array's type); NaN when
        a value is NaN.

    Raises
    ------
    ValueError
        ``values`` is not a non-empty 1-D float32 or float64 array.
    """
    if (values.ndim != 1 or values.size == 0 or values.dtype.kind != "f"
            or values.dtype.itemsize not in (4, 8)):
        raise ValueError(f"median needs a non-empty 1-D float32 or float64 array, got "
                         f"{values.ndim}-D {values.dtype} of {values.size}")
    values = values.astype(values.dtype.newbyteorder("="), copy=False)  # big-endian FITS data
    low, high = _middle_of(values)
    kind = values.dtype.type
    # numpy's median is the mean of the two middle values: their sum in the array's type,
    # halved.
    return float((kind(low) + kind(high)) / kind(2))


def masked_median(values: np.ndarray, exclude: np.ndarray) -> float:
    """Return `median` of the finite values of ``values`` where ``exclude`` is False.

    The value of ``median(values[np.isfinite(values) & ~exclude])`` (NaN when no value is
    kept), with the kept values gathered in one compiled pass instead of through two boolean
    images and numpy's indexing.

    Parameters
    ----------
    values : ndarray of float32 or float64
        Left unchanged.
    exclude : ndarray of bool, ``values``' shape
        True where a value is not used.

    Raises
    ------
    ValueError
        ``values`` is not float32 or float64, or ``exclude`` has another shape.
    """
    if values.dtype.kind != "f" or values.dtype.itemsize not in (4, 8):
        raise ValueError(f"masked_median needs float32 or float64 values, got {values.dtype}")
    if np.shape(exclude) != values.shape:
        raise ValueError(f"exclude shape {np.shape(exclude)} != values shape {values.shape}")
    flat = values.astype(values.dtype.newbyteorder("="), copy=False).ravel()
    kept = np.empty(flat.size, flat.dtype)  # numpy's memory: faulted in large pages
    count = _gather_kept(flat, np.asarray(exclude, bool).ravel(), kept)
    return median(kept[:count]) if count else float("nan")


@njit(cache=True)
def _gather_kept(values, exclude, kept):
    count = 0
    for i in range(values.size):
        value = values[i]
        kept[count] = value  # kept only if usable: no branch to mispredict
        count += (not exclude[i]) & np.isfinite(value)
    return count


@njit(cache=True)
def _middle_of(values):
    """Return the two middle values of ``values`` (NaN if one is NaN), left unchanged."""
    n = values.size
    nan = False
    for i in range(n):
        nan |= np.isnan(values[i])
    if nan:
        return values.dtype.type(np.nan), values.dtype.type(np.nan)
    scratch = np.empty(n, values.dtype)  # only what falls in the bracket is written
    found, low, high = _bracketed_middle(values, n, scratch, np.empty(n, values.dtype))
    if found:
        return low, high
    return _selected_middle(values.copy(), n)


def cell_medians(image: np.ndarray, bad: np.ndarray, cell_rows: int, cell_cols: int, *,
                 wanted: np.ndarray | None = None) -> np.ndarray:
    """Median of the finite, unflagged pixels of each ``cell_rows`` x ``cell_cols`` cell.

    Parameters
    ----------
    image : ndarray (2-D, float32 or float64)
        The values, compared in their own type.
    bad : ndarray of bool (2-D, ``image``'s shape)
        True where a pixel is not used.
    cell_rows, cell_cols : int
        A cell's size; the last row and column of cells hold what is left of the image.
    wanted : ndarray of bool (cells down x cells across), optional
        Only these cells are measured (the others are NaN); every cell when omitted.

    Returns
    -------
    ndarray of float64 (cells down x cells across)
        The mean of the two middle values for an even count; NaN where a cell has no pixel
        to use. The values of `numpy.nanmedian` over each cell (non-finite ones left out),
        found by selection instead of a sort.

    Raises
    ------
    ValueError
        ``bad`` or ``wanted`` has the wrong shape, or a cell size is not positive.

    Notes
    -----
    Each cell's median is selected, not sorted: a regular sample of about ``4 sqrt(n)``
    values brackets the median (Floyd and Rivest, 1975, CACM 18, 165), one pass counts the
    values below the bracket and gathers those within it, and Hoare's selection (in Wirth's
    form) finds the middle ranks among these; when the bracket misses, among all values.
    """
    if bad.shape != image.shape:
        raise ValueError(f"mask shape {bad.shape} != image shape {image.shape}")
    if cell_rows < 1 or cell_cols < 1:
        raise ValueError(f"cell size must be positive, got {cell_rows} x {cell_cols}")
    shape = (-(-image.shape[0] // cell_rows), -(-image.shape[1] // cell_cols))
    if wanted is None:
        wanted = np.ones(shape, bool)
    elif wanted.shape != shape:
        raise ValueError(f"wanted has shape {wanted.shape}; the image has {shape} cells")
    return _cell_medians(image, bad, cell_rows, cell_cols, wanted)


@njit(cache=True)
def _cell_medians(image, bad, cell_rows, cell_cols, wanted):
    rows, cols = image.shape
    cells_down, cells_across = wanted.shape
    out = np.full((cells_down, cells_across), np.nan)
    buffer = np.empty(cell_rows * cell_cols, image.dtype)
    scratch = np.empty_like(buffer)
    sample = np.empty_like(buffer)
    for cell_row in range(cells_down):
        row_end = min(rows, (cell_row + 1) * cell_rows)
        for cell_col in range(cells_across):
            if not wanted[cell_row, cell_col]:
                continue
            col_end = min(cols, (cell_col + 1) * cell_cols)
            n = 0
            for r in range(cell_row * cell_rows, row_end):
                for c in range(cell_col * cell_cols, col_end):
                    value = image[r, c]
                    buffer[n] = value  # kept only if usable: no branch to mispredict
                    n += (not bad[r, c]) & np.isfinite(value)
            if n > 0:
                low, high = _middle(buffer, n, scratch, sample)
                out[cell_row, cell_col] = 0.5 * (np.float64(low) + np.float64(high))
    return out


_RADIX_BITS = 11
_RADIX = 1 << _RADIX_BITS


def sorted_float32(values: np.ndarray) -> np.ndarray:
    """Return float32 values sorted, as a new array: `numpy.sort`, in linear time.

    Parameters
    ----------
    values : ndarray of float32 (1-D)
        No NaN (infinities are fine).

    Returns
    -------
    ndarray of float32
        The same values in ascending order; ``-0.0`` before ``0.0``.

    Raises
    ------
    ValueError
        ``values`` is not a 1-D float32 array.

    Notes
    -----
    A least-significant-digit radix sort in three passes of 11 bits, on the values' bits made
    to order as the values do (negative ones with every bit flipped, the others with the sign
    bit set): a fifth of `numpy.sort`'s time on 100,000 values on machines where numpy's sort
    is not vectorised.
    """
    if values.dtype != np.float32 or values.ndim != 1:
        raise ValueError(f"sorted_float32 needs a 1-D float32 array, got {values.ndim}-D "
                         f"{values.dtype}")
    return _sorted_float32(np.ascontiguousarray(values))


@njit(cache=True)
def _sorted_float32(values):
    n = values.size
    keys = np.empty(n, np.uint32)
    bits = values.view(np.uint32)
    mask = np.uint32(_RADIX - 1)
    starts = np.zeros((3, _RADIX + 1), np.int64)
    for i in range(n):
        key = bits[i]
        key ^= np.uint32(0xFFFFFFFF) if key >> np.uint32(31) else np.uint32(0x80000000)
        keys[i] = key
        starts[0, (key & mask) + 1] += 1
        starts[1, ((key >> np.uint32(_RADIX_BITS)) & mask) + 1] += 1
        starts[2, (key >> np.uint32(2 * _RADIX_BITS)) + 1] += 1
    spare = np.empty(n, np.uint32)
    for digit in range(3):
        shift = np.uint32(digit * _RADIX_BITS)
        start = starts[digit]
        for bucket in range(1, _RADIX + 1):
            start[bucket] += start[bucket - 1]
        for i in range(n):
            key = keys[i]
            bucket = (key >> shift) & mask
            spare[start[bucket]] = key
            start[bucket] += 1
        keys, spare = spare, keys
    out = np.empty(n, np.float32)
    out_bits = out.view(np.uint32)
    for i in range(n):
        key = keys[i]
        out_bits[i] = key ^ (np.uint32(0x80000000) if key >> np.uint32(31)
                             else np.uint32(0xFFFFFFFF))
    return out
