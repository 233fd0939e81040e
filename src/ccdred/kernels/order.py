"""Order statistics of sorted windows: sorting networks, medians, means, MAD, percentiles.

A pixel's values are sorted once; everything else works on a window ``[lo, hi)`` of them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["sorting_network", "NETWORK_MAX", "MAD_TO_SIGMA"]

MAD_TO_SIGMA = 1.482602218505602
"""Scales a median absolute deviation to a Gaussian standard deviation (astropy's ``mad_std``)."""

NETWORK_MAX = 256
"""Stacks up to this many frames are sorted by a sorting network; larger ones by argsort."""


def sorting_network(n: int) -> np.ndarray:
    """Batcher's odd-even merge sort for ``n`` values, as ``(m, 2)`` compare-exchange pairs.

    Built for the next power of two; pairs reaching past ``n`` are dropped, which is exact:
    padding with +inf, a pair's larger slot past ``n`` always holds +inf and never swaps.
    """
    size = 1
    while size < n:
        size *= 2
    pairs = []
    span = 1
    while span < size:
        step = span
        while step >= 1:
            start = step % span
            while start <= size - 1 - step:
                for i in range(min(step, size - start - step)):
                    a, b = i + start, i + start + step
                    if a // (2 * span) == b // (2 * span) and b < n:
                        pairs.append((a, b))
                start += 2 * step
            step //= 2
        span *= 2
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


@njit(cache=True, inline="always")
def _sort_columns(values, order, pairs):
    """Sort every column of ``values`` (frames x columns) by (value, frame), in place.

    The pairs of a sorting network run over a whole row of columns at once, so the compiler
    vectorises them. Ties are ordered by frame, as a stable sort would leave them.
    """
    n_cols = values.shape[1]
    for k in range(pairs.shape[0]):
        a = values[pairs[k, 0]]
        b = values[pairs[k, 1]]
        order_a = order[pairs[k, 0]]
        order_b = order[pairs[k, 1]]
        for col in range(n_cols):
            x = a[col]
            y = b[col]
            ox = order_a[col]
            oy = order_b[col]
            swap = x > y or (x == y and ox > oy)
            a[col] = y if swap else x
            b[col] = x if swap else y
            order_a[col] = oy if swap else ox
            order_b[col] = ox if swap else oy


@njit(cache=True, inline="always")
def _sort_values(values, pairs):
    """Sort every column of ``values`` (frames x columns) in place.

    `_sort_columns` without the frame order: a minimum and a maximum per pair, over a whole
    row of columns.
    """
    n_cols = values.shape[1]
    for k in range(pairs.shape[0]):
        a = values[pairs[k, 0]]
        b = values[pairs[k, 1]]
        for col in range(n_cols):
            x = a[col]
            y = b[col]
            a[col] = min(x, y)
            b[col] = max(x, y)


@njit(cache=True)
def _sort_large(values, order):
    """Sort one column by value, ``order`` alongside; stable, so ties stay in frame order."""
    index = np.argsort(values, kind="mergesort")
    sorted_values = values[index]
    sorted_order = order[index]
    values[:] = sorted_values
    order[:] = sorted_order


@njit(cache=True, inline="always")
def _median_sorted(values, lo, hi):
    n = hi - lo
    mid = lo + n // 2
    if n % 2 == 1:
        return np.float64(values[mid])
    return 0.5 * (np.float64(values[mid - 1]) + np.float64(values[mid]))


@njit(cache=True, inline="always")
def _mean(values, lo, hi):
    total = 0.0
    for i in range(lo, hi):
        total += values[i]
    return total / (hi - lo)


@njit(cache=True, inline="always")
def _std(values, lo, hi, mean):
    total = 0.0
    for i in range(lo, hi):
        d = values[i] - mean
        total += d * d
    return math.sqrt(total / (hi - lo))


@njit(cache=True)
def _mad(values, lo, hi, median):
    """Median absolute deviation of the sorted window ``[lo, hi)`` from ``median``.

    The deviations form two sorted runs, growing leftwards and rightwards from the middle,
    so their middle values are found by bisection, without listing them.
    """
    n = hi - lo
    # The left run starts at the middle value (the lower middle for even n).
    middle = lo + (n - 1) // 2
    k = n // 2
    if n % 2 == 1:
        return _kth_deviation(values, lo, hi, middle, median, k)
    return 0.5 * (_kth_deviation(values, lo, hi, middle, median, k - 1)
                  + _kth_deviation(values, lo, hi, middle, median, k))


@njit(cache=True)
def _biweight_scale(values, lo, hi, median):
    """Biweight scale of the window ``[lo, hi)`` about ``median`` (astropy's `biweight_scale`).

    Tukey's biweight with tuning constant 9 MADs: robust to outliers like the MAD, but with
    about 87% of the standard deviation's efficiency on Gaussian data (the MAD has 37%), so
    its estimate of a pixel's own scatter is not often far too small. 0 when the MAD is 0.
    """
    mad = _mad(values, lo, hi, median)
    if not mad > 0.0:
        return 0.0
    numerator = 0.0
    denominator = 0.0
    for i in range(lo, hi):
        d = np.float64(values[i]) - median
        u2 = (d / (9.0 * mad)) ** 2
        if u2 < 1.0:
            numerator += d * d * (1.0 - u2) ** 4
            denominator += (1.0 - u2) * (1.0 - 5.0 * u2)
    return math.sqrt((hi - lo) * numerator) / abs(denominator)


@njit(cache=True, inline="always")
def _kth_deviation(values, lo, hi, middle, median, k):
    """Return the ``k``-th smallest (from 0) of the deviations ``|values[i] - median|``.

    Left run ``a[i] = median - values[middle - i]`` (``middle - lo + 1`` values) and right run
    ``b[j] = values[middle + 1 + j] - median`` (``hi - middle - 1`` values) both increase; the
    answer takes ``i`` values from the left run and ``k + 1 - i`` from the right.
    """
    size_a = middle - lo + 1
    size_b = hi - middle - 1
    first = max(0, k + 1 - size_b)
    last = min(size_a, k + 1)
    while first < last:
        i = (first + last) // 2
        j = k + 1 - i
        # Too few from the left run while the right run's last taken value exceeds a[i].
        if j > 0 and (values[middle + j] - median) > (median - values[middle - i]):
            first = i + 1
        else:
            last = i
    i = first
    j = k + 1 - i
    from_a = (median - values[middle - i + 1]) if i > 0 else -np.inf
    from_b = (values[middle + j] - median) if j > 0 else -np.inf
    return max(from_a, from_b)


@njit(cache=True, inline="always")
def _within(values, lo, hi, lower, upper):
    """Narrow the sorted window ``[lo, hi)`` to the values inside ``[lower, upper]``."""
    while lo < hi and values[lo] < lower:
        lo += 1
    while hi > lo and values[hi - 1] > upper:
        hi -= 1
    return lo, hi


@njit(cache=True, inline="always")
def _percentile(values, n, percent):
    """Linearly interpolated percentile of the ``n`` sorted values (numpy's default)."""
    position = percent / 100.0 * (n - 1)
    below = int(math.floor(position))
    above = min(below + 1, n - 1)
    low = np.float64(values[below])
    return low + (position - below) * (np.float64(values[above]) - low)


@njit(cache=True)
def _nanmedian_by_rank(x, first, last):
    """``nanmedian(x[first:last])`` for a few tens of values: each value's rank is counted.

    The counting loops have no data-dependent branches, unlike a sort or a selection.
    """
    valid = 0
    for i in range(first, last):
        valid += 0 if math.isnan(x[i]) else 1
    if valid == 0:
        return np.nan
    low_rank = (valid - 1) // 2
    high_rank = valid // 2
    low = high = np.nan
    for i in range(first, last):
        value = x[i]
        if math.isnan(value):
            continue
        rank = 0
        for j in range(first, last):
            # Ties are ranked by position, so every rank is taken once.
            rank += 1 if x[j] < value or (x[j] == value and j < i) else 0
        low = value if rank == low_rank else low
        high = value if rank == high_rank else high
    return 0.5 * (low + high)
