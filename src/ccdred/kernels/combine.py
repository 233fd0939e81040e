"""Compiled per-pixel combine with rejection, over one row block of a stack.

The stack block has shape ``(n_frames, rows, columns)``; NaN marks a missing value (masked
input, non-finite pixel). For each pixel the valid values are sorted once; every rejection
method then shrinks a window ``[lo, hi)`` of the sorted values, and the estimator runs over
the window. Rows are spread over threads with ``numba.prange``.

Notes
-----
Sigma clipping follows `astropy.stats.sigma_clip`: bounds are recomputed from the values still
kept, values strictly outside ``centre - sigma_low * spread`` / ``centre + sigma_high * spread``
are dropped, until nothing changes or ``maxiters`` passes; then the last bounds decide for
every value, so a value dropped early can come back (astropy's compiled path, and its Python
path with ``copy=False`` as ccdproc calls it). The ``ccdclip`` and ``winsorized`` rejections
follow the same loop with their own spread. The MAD spread is scaled by
1.482602218505602 to estimate a Gaussian standard deviation (astropy's ``mad_std``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Estimators.
MEDIAN = 0
MEAN = 1
SUM = 2
# Rejections.
REJECT_NONE = 0
REJECT_SIGCLIP = 1
REJECT_MINMAX = 2
REJECT_PCLIP = 3
REJECT_WINSOR = 4
REJECT_CCDCLIP = 5
# Centres and spreads for clipping.
CENTRE_MEDIAN = 0
CENTRE_MEAN = 1
SPREAD_MAD = 0
SPREAD_STD = 1
SPREAD_POOLED = 2
POOL_WIDTH = 32
"""Columns per row segment whose per-pixel noise is pooled for ``SPREAD_POOLED`` (a row's last
segment also takes the columns left over: 32 to 63 of them)."""

MAD_TO_SIGMA = 1.482602218505602
MEDIAN_VARIANCE_FACTOR = math.pi / 2.0
"""Variance of the median of n Gaussian values is about (pi/2) sigma^2 / n."""


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


@njit(cache=True)
def _clip_window(values, lo, hi, centre_kind, spread_kind, sigma_low, sigma_high, maxiters,
                 floor, first_mad_spread):
    """Sigma-clip the sorted window; ``first_mad_spread`` is its MAD spread if known, or NaN."""
    n = hi
    lower = -np.inf
    upper = np.inf
    iteration = 0
    while hi - lo > 1 and (maxiters <= 0 or iteration < maxiters):
        iteration += 1
        if centre_kind == CENTRE_MEDIAN:
            centre = _median_sorted(values, lo, hi)
        else:
            centre = _mean(values, lo, hi)
        if spread_kind == SPREAD_STD:
            spread = _std(values, lo, hi, _mean(values, lo, hi))
        else:
            if iteration == 1 and not math.isnan(first_mad_spread):
                spread = first_mad_spread
            else:
                spread = MAD_TO_SIGMA * _mad(values, lo, hi, _median_sorted(values, lo, hi))
            if spread_kind == SPREAD_POOLED and spread < floor:
                spread = floor
        lower = centre - sigma_low * spread
        upper = centre + sigma_high * spread
        new_lo, new_hi = _within(values, lo, hi, lower, upper)
        if new_lo == lo and new_hi == hi:
            break
        lo = new_lo
        hi = new_hi
    # As astropy (and ccdproc): the final bounds decide for every value, so one clipped
    # early comes back.
    return _within(values, 0, n, lower, upper)


@njit(cache=True)
def _ccdclip_window(values, lo, hi, gain, read_noise, snoise, sigma_low, sigma_high, maxiters):
    """Clip against the CCD noise model sigma = sqrt(rn^2/g^2 + |m|/g + (s*m)^2) around the median.

    ``values`` are in ADU; ``read_noise`` in electrons; ``gain`` in electrons per ADU;
    ``snoise`` is the fractional sensitivity noise (IRAF imcombine's ``snoise``).
    """
    n = hi
    lower = -np.inf
    upper = np.inf
    iteration = 0
    while hi - lo > 1 and (maxiters <= 0 or iteration < maxiters):
        iteration += 1
        centre = _median_sorted(values, lo, hi)
        spread = math.sqrt((read_noise / gain) ** 2 + abs(centre) / gain + (snoise * centre) ** 2)
        lower = centre - sigma_low * spread
        upper = centre + sigma_high * spread
        new_lo, new_hi = _within(values, lo, hi, lower, upper)
        if new_lo == lo and new_hi == hi:
            break
        lo = new_lo
        hi = new_hi
    # As astropy (and ccdproc): the final bounds decide for every value, so one clipped
    # early comes back.
    return _within(values, 0, n, lower, upper)


@njit(cache=True)
def _winsorized_window(values, lo, hi, sigma_low, sigma_high, maxiters, scratch):
    """Winsorized sigma clip: spread from the values with the extremes pulled in to 1.5 sigma.

    Each pass estimates centre (median) and spread (std of the values winsorized at
    centre +- 1.5 * spread, refined until stable, times 1.134 to undo the winsorizing bias),
    then drops values outside the sigma bounds. This is Siril's winsorized sigma clipping.
    """
    n = hi
    lower = -np.inf
    upper = np.inf
    iteration = 0
    while hi - lo > 2 and (maxiters <= 0 or iteration < maxiters):
        iteration += 1
        centre = _median_sorted(values, lo, hi)
        spread = _std(values, lo, hi, _mean(values, lo, hi))
        for _ in range(10):
            low_cut = centre - 1.5 * spread
            high_cut = centre + 1.5 * spread
            count = hi - lo
            for k in range(count):
                v = values[lo + k]
                scratch[k] = low_cut if v < low_cut else (high_cut if v > high_cut else v)
            new_spread = 1.134 * _std(scratch, 0, count, _mean(scratch, 0, count))
            if abs(new_spread - spread) <= 5e-4 * max(spread, 1e-30):
                spread = new_spread
                break
            spread = new_spread
        lower = centre - sigma_low * spread
        upper = centre + sigma_high * spread
        new_lo, new_hi = _within(values, lo, hi, lower, upper)
        if new_lo == lo and new_hi == hi:
            break
        lo = new_lo
        hi = new_hi
    # As astropy (and ccdproc): the final bounds decide for every value, so one clipped
    # early comes back.
    return _within(values, 0, n, lower, upper)


@njit(cache=True)
def _enforce_nkeep(values, lo, hi, n, nkeep):
    """Widen the window back towards the median until it holds at least ``nkeep`` values."""
    want = min(nkeep, n)
    if hi - lo >= want:
        return lo, hi
    centre = _median_sorted(values, lo, hi) if hi > lo else _median_sorted(values, 0, n)
    while hi - lo < want:
        if lo > 0 and hi < n:
            if centre - values[lo - 1] <= values[hi] - centre:
                lo -= 1
            else:
                hi += 1
        elif lo > 0:
            lo -= 1
        else:
            hi += 1
    return lo, hi


@njit(cache=True)
def _pooled_noise(mad_spreads, counts, median_mad_var, out):
    """Per column, the noise pooled over its segment of the row.

    Each pixel's MAD spread squared (robust to an outlier among its values), divided by the
    median such an estimate takes for Gaussian data of that size, then the median over the
    pixel's segment of `POOL_WIDTH` columns: an outlier, or a trail hitting a whole row of
    one frame, does not move it, and small stacks no longer give a noisy spread.
    """
    n_cols = mad_spreads.shape[0]
    per_pixel = np.empty(n_cols, np.float64)
    for col in range(n_cols):
        n = counts[col]
        per_pixel[col] = (mad_spreads[col] ** 2 / median_mad_var[n]) if n >= 2 else np.nan
    segments = max(1, n_cols // POOL_WIDTH)
    for segment in range(segments):
        first = segment * POOL_WIDTH
        last = n_cols if segment == segments - 1 else first + POOL_WIDTH
        level = _nanmedian_by_rank(per_pixel, first, last)
        out[first:last] = math.sqrt(level) if not math.isnan(level) else 0.0


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


@njit(cache=True, parallel=True)
def combine_block(stack, variance, weights, pairs, method, reject, centre_kind, spread_kind,
                  sigma_low, sigma_high, maxiters, nlow, nhigh, pclip_low, pclip_high, nkeep,
                  gain, read_noise, snoise, median_mad_var, out_value, out_variance,
                  out_count, out_rejected):
    """Combine a ``(n, rows, cols)`` float32 block into per-pixel value, variance and count.

    Parameters
    ----------
    stack : float32 array (n, rows, cols)
        Values to combine; NaN marks a missing value.
    variance : float32 array (n, rows, cols) or (0, 0, 0)
        Per-value variance, propagated when given; otherwise estimated from the scatter.
    weights : float64 array (n,)
        Weights for the mean (all ones for an unweighted mean).
    pairs : int64 array (m, 2)
        ``sorting_network(n)`` when ``n <= NETWORK_MAX`` (otherwise unused: argsort).
    method, reject, centre_kind, spread_kind : int
        Codes from this module (``MEDIAN``..., ``REJECT_...``, ``CENTRE_...``, ``SPREAD_...``).
    sigma_low, sigma_high : float
        Clipping thresholds in units of the spread.
    maxiters : int
        Maximum clipping passes; 0 iterates until nothing more is rejected.
    nlow, nhigh : int
        Values dropped from each end by min/max rejection.
    pclip_low, pclip_high : float
        Percentiles (0-100) outside which percentile clipping drops values.
    nkeep : int
        Rejection never leaves fewer than this many values (0: no floor).
    gain, read_noise, snoise : float
        Noise model for ``ccdclip``.
    median_mad_var : float64 array (n + 1,)
        Median of the squared MAD spread of k Gaussian values of unit variance, for the pooled
        spread (index k).
    out_value, out_variance : float32 arrays (rows, cols)
        Combined value and its variance (NaN where nothing is left).
    out_count : int16 array (rows, cols)
        Number of values used.
    out_rejected : uint8 array (n, rows, cols) or (0, 0, 0)
        When not empty, set to 1 where a value was rejected (missing values stay 0).
    """
    n_frames, n_rows, n_cols = stack.shape
    weighted = False
    for f in range(n_frames):
        weighted = weighted or weights[f] != 1.0
    for row in prange(n_rows):
        # Each pixel's values sorted down its column, with the frame each came from (float32
        # both, exact for frame numbers: twice the values per vector instruction). Missing
        # values sort last as +inf and are not counted.
        values = np.empty((n_frames, n_cols), np.float32)
        frames = np.empty((n_frames, n_cols), np.float32)
        counts = np.zeros(n_cols, np.int64)
        for f in range(n_frames):
            for col in range(n_cols):
                v = stack[f, row, col]
                missing = math.isnan(v)
                values[f, col] = np.float32(np.inf) if missing else v
                frames[f, col] = f
                counts[col] += 0 if missing else 1
        if n_frames <= NETWORK_MAX:
            _sort_columns(values, frames, pairs)
        else:
            for col in range(n_cols):
                _sort_large(values[:, col], frames[:, col])
        # Each pixel keeps the sorted values lo[col] <= k < hi[col].
        lo = np.zeros(n_cols, np.int64)
        hi = counts.copy()
        if reject != REJECT_NONE:
            _reject_row(values, counts, lo, hi, reject, centre_kind, spread_kind, sigma_low,
                        sigma_high, maxiters, nlow, nhigh, pclip_low, pclip_high, nkeep, gain,
                        read_noise, snoise, median_mad_var)
        if out_rejected.shape[0] > 0:
            for col in range(n_cols):
                for k in range(counts[col]):
                    if k < lo[col] or k >= hi[col]:
                        out_rejected[np.int64(frames[k, col]), row, col] = 1
        _estimate_row(values, frames, lo, hi, weights, weighted, method, variance, row,
                      out_value[row], out_variance[row], out_count[row])


@njit(cache=True)
def _reject_row(values, counts, lo, hi, reject, centre_kind, spread_kind, sigma_low,
                sigma_high, maxiters, nlow, nhigh, pclip_low, pclip_high, nkeep, gain,
                read_noise, snoise, median_mad_var):
    """Narrow each column's window ``[lo, hi)`` of sorted values by the rejection method."""
    n_frames, n_cols = values.shape
    if reject == REJECT_SIGCLIP:
        _sigclip_row(values, counts, lo, hi, centre_kind, spread_kind, sigma_low, sigma_high,
                     maxiters, median_mad_var)
    else:
        scratch = np.empty(n_frames, np.float64)
        column = np.empty(n_frames, np.float64)
        for col in range(n_cols):
            n = counts[col]
            if n == 0:
                continue
            for k in range(n):
                column[k] = values[k, col]
            first, last = 0, n
            if reject == REJECT_MINMAX:
                first = min(nlow, n)
                last = n - min(nhigh, n - first)
            elif reject == REJECT_PCLIP:
                first, last = _within(column, 0, n, _percentile(column, n, pclip_low),
                                      _percentile(column, n, pclip_high))
            elif reject == REJECT_WINSOR:
                first, last = _winsorized_window(column, 0, n, sigma_low, sigma_high,
                                                 maxiters, scratch)
            elif reject == REJECT_CCDCLIP:
                first, last = _ccdclip_window(column, 0, n, gain, read_noise, snoise,
                                              sigma_low, sigma_high, maxiters)
            lo[col] = first
            hi[col] = last
    if nkeep > 0:
        column = np.empty(n_frames, np.float64)
        for col in range(n_cols):
            if hi[col] - lo[col] < min(nkeep, counts[col]):
                for k in range(counts[col]):
                    column[k] = values[k, col]
                lo[col], hi[col] = _enforce_nkeep(column, lo[col], hi[col], counts[col], nkeep)


@njit(cache=True)
def _sigclip_row(values, counts, lo, hi, centre_kind, spread_kind, sigma_low, sigma_high,
                 maxiters, median_mad_var):
    """Sigma-clip every column of a row; the first pass runs over all columns at once.

    Most pixels lose nothing in the first pass, and then that pass is the whole clip; only
    the others go through `_clip_window`, which gives the same answer for all.
    """
    n_cols = values.shape[1]
    medians = _column_medians(values, counts)
    means, stds = medians, medians  # unused unless computed below
    if spread_kind == SPREAD_STD or centre_kind == CENTRE_MEAN:
        means, stds = _column_means_and_stds(values, counts)
    # Per-pixel work reads each pixel's values contiguously.
    columns = np.ascontiguousarray(values.T)
    mads = np.full(n_cols, np.nan)
    floor = np.zeros(n_cols)
    if spread_kind != SPREAD_STD:
        for col in range(n_cols):
            if counts[col] > 0:
                mads[col] = MAD_TO_SIGMA * _mad(columns[col], 0, counts[col], medians[col])
        if spread_kind == SPREAD_POOLED:
            _pooled_noise(mads, counts, median_mad_var, floor)
    for col in range(n_cols):
        n = counts[col]
        if n < 2:
            continue
        centre = medians[col] if centre_kind == CENTRE_MEDIAN else means[col]
        spread = stds[col] if spread_kind == SPREAD_STD else max(mads[col], floor[col])
        if (values[0, col] >= centre - sigma_low * spread
                and values[n - 1, col] <= centre + sigma_high * spread):
            continue
        lo[col], hi[col] = _clip_window(columns[col], 0, n, centre_kind, spread_kind,
                                        sigma_low, sigma_high, maxiters, floor[col], mads[col])


@njit(cache=True)
def _column_medians(values, counts):
    """Median of each column's ``counts[col]`` sorted values (NaN for none), as `_median_sorted`."""
    n_cols = values.shape[1]
    out = np.empty(n_cols)
    for col in range(n_cols):
        n = counts[col]
        upper = np.float64(values[min(n // 2, values.shape[0] - 1), col])
        lower = np.float64(values[max(n // 2 - 1, 0), col])
        out[col] = np.nan if n == 0 else (upper if n % 2 == 1 else 0.5 * (lower + upper))
    return out


@njit(cache=True)
def _column_means_and_stds(values, counts):
    """Mean and standard deviation of each column's counted values, as `_mean` and `_std`."""
    n_frames, n_cols = values.shape
    total = np.zeros(n_cols)
    for k in range(n_frames):
        for col in range(n_cols):
            total[col] += np.float64(values[k, col]) if k < counts[col] else 0.0
    means = total / np.maximum(counts, 1)
    squares = np.zeros(n_cols)
    for k in range(n_frames):
        for col in range(n_cols):
            d = np.float64(values[k, col]) - means[col]
            squares[col] += d * d if k < counts[col] else 0.0
    return means, np.sqrt(squares / np.maximum(counts, 1))


@njit(cache=True, inline="always")
def _percentile(values, n, percent):
    """Linearly interpolated percentile of the ``n`` sorted values (numpy's default)."""
    position = percent / 100.0 * (n - 1)
    below = int(math.floor(position))
    above = min(below + 1, n - 1)
    low = np.float64(values[below])
    return low + (position - below) * (np.float64(values[above]) - low)


@njit(cache=True)
def _estimate_row(values, frames, lo, hi, weights, weighted, method, variance, row,
                  out_value, out_variance, out_count):
    """Estimate each column's value and variance from its kept sorted values.

    The sums run over the sorted positions for all columns at once, so they vectorise; each
    column adds its values in sorted order, as a per-pixel loop would.
    """
    n_frames, n_cols = values.shape
    total = np.zeros(n_cols)
    for k in range(n_frames):
        for col in range(n_cols):
            inside = lo[col] <= k and k < hi[col]
            total[col] += np.float64(values[k, col]) if inside else 0.0
    count = (hi - lo).astype(np.float64)
    mean = total / np.maximum(count, 1.0)
    if weighted:
        wsum = np.zeros(n_cols)
        w2sum = np.zeros(n_cols)
        wvsum = np.zeros(n_cols)
        for k in range(n_frames):
            for col in range(n_cols):
                if lo[col] <= k and k < hi[col]:
                    w = weights[np.int64(frames[k, col])]
                    wsum[col] += w
                    w2sum[col] += w * w
                    wvsum[col] += w * np.float64(values[k, col])
    else:
        wsum = count
        w2sum = count
        wvsum = total
    # Variance: propagated from the inputs' variance, else from the scatter.
    spread = np.zeros(n_cols)
    propagated = variance.shape[0] > 0
    if propagated:
        weighted_spread = np.zeros(n_cols)
        for k in range(n_frames):
            for col in range(n_cols):
                if lo[col] <= k and k < hi[col]:
                    frame = np.int64(frames[k, col])
                    vi = variance[frame, row, col]
                    w = weights[frame]
                    spread[col] += vi
                    weighted_spread[col] += w * w * vi
    else:
        weighted_spread = spread
        for k in range(n_frames):
            for col in range(n_cols):
                inside = lo[col] <= k and k < hi[col]
                d = np.float64(values[k, col]) - mean[col]
                spread[col] += d * d if inside else 0.0
    for col in range(n_cols):
        k = hi[col] - lo[col]
        out_count[col] = k
        if k == 0:
            out_value[col] = np.nan
            out_variance[col] = np.nan
            continue
        if method == MEDIAN:
            out_value[col] = _median_sorted(values[:, col], lo[col], hi[col])
        elif method == MEAN:
            out_value[col] = wvsum[col] / wsum[col] if wsum[col] != 0.0 else np.nan
        else:
            out_value[col] = mean[col] * k
        if propagated:
            if method == MEDIAN:
                out_variance[col] = MEDIAN_VARIANCE_FACTOR * spread[col] / (k * k)
            elif method == MEAN:
                out_variance[col] = weighted_spread[col] / (wsum[col] * wsum[col])
            else:
                out_variance[col] = spread[col]
        elif k > 1:
            s2 = spread[col] / (k - 1)
            if method == MEDIAN:
                out_variance[col] = MEDIAN_VARIANCE_FACTOR * s2 / k
            elif method == MEAN:
                out_variance[col] = s2 * w2sum[col] / (wsum[col] * wsum[col])
            else:
                out_variance[col] = s2 * k
        else:
            out_variance[col] = np.nan
