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

from .codes import MEAN, MEDIAN, SUM
from .order import (  # noqa: F401 - re-exported: callers and tests reach them here
    MAD_TO_SIGMA,
    NETWORK_MAX,
    _mad,
    _median_sorted,
    _sort_columns,
    _sort_large,
    _sort_values,
    sorting_network,
)
from .reject import (  # noqa: F401 - re-exported: the codes callers pass
    CENTRE_MEAN,
    CENTRE_MEDIAN,
    POOL_WIDTH,
    REJECT_CCDCLIP,
    REJECT_MINMAX,
    REJECT_NONE,
    REJECT_PCLIP,
    REJECT_SIGCLIP,
    REJECT_WINSOR,
    SPREAD_MAD,
    SPREAD_POOLED,
    SPREAD_STD,
    _pooled_noise,
    reject_row,
)

__all__ = ["combine_block", "sorting_network", "MEDIAN", "MEAN", "SUM", "NETWORK_MAX"]

MEDIAN_VARIANCE_FACTOR = math.pi / 2.0
"""Variance of the median of n Gaussian values is about (pi/2) sigma^2 / n."""


@njit(cache=True, parallel=True, nogil=True)
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
    # Which frame a sorted value came from matters only for weights, input variances and the
    # rejection map; without them the values alone are sorted (half the work).
    track_frames = weighted or variance.shape[0] > 0 or out_rejected.shape[0] > 0
    for row in prange(n_rows):
        # Each pixel's values sorted down its column, with the frame each came from (float32
        # both, exact for frame numbers: twice the values per vector instruction). Missing
        # values sort last as +inf and are not counted.
        values = np.empty((n_frames, n_cols), np.float32)
        frames = np.empty((n_frames, n_cols) if track_frames else (0, 0), np.float32)
        counts = np.zeros(n_cols, np.int64)
        for f in range(n_frames):
            for col in range(n_cols):
                v = stack[f, row, col]
                missing = math.isnan(v)
                values[f, col] = np.float32(np.inf) if missing else v
                counts[col] += 0 if missing else 1
            if track_frames:
                frames[f, :] = f
        if n_frames <= NETWORK_MAX and not track_frames:
            _sort_values(values, pairs)
        elif n_frames <= NETWORK_MAX:
            _sort_columns(values, frames, pairs)
        elif not track_frames:
            for col in range(n_cols):
                values[:, col] = np.sort(values[:, col])
        else:
            for col in range(n_cols):
                _sort_large(values[:, col], frames[:, col])
        # Each pixel keeps the sorted values lo[col] <= k < hi[col].
        lo = np.zeros(n_cols, np.int64)
        hi = counts.copy()
        if reject != REJECT_NONE:
            reject_row(values, counts, lo, hi, reject, centre_kind, spread_kind, sigma_low,
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
def _estimate_row(values, frames, lo, hi, weights, weighted, method, variance, row,
                  out_value, out_variance, out_count):
    """Estimate each column's value and variance from its kept sorted values.

    The sums run over the sorted positions for all columns at once, so they vectorise; each
    column adds its values in sorted order, as a per-pixel loop would.
    """
    total, count, mean = _kept_sums(values, lo, hi)
    if weighted:
        wsum, w2sum, wvsum = _weight_sums(values, frames, lo, hi, weights)
    else:
        wsum, w2sum, wvsum = count, count, total
    # Variance: propagated from the inputs' variance, else from the scatter.
    propagated = variance.shape[0] > 0
    if propagated:
        spread, weighted_spread = _variance_sums(frames, lo, hi, weights, variance, row)
    else:
        spread = _scatter_sums(values, lo, hi, mean)
        weighted_spread = spread
    for col in range(values.shape[1]):
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
        out_variance[col] = _variance(method, propagated, k, spread[col],
                                      weighted_spread[col], wsum[col], w2sum[col])


@njit(cache=True, inline="always")
def _variance(method, propagated, k, spread, weighted_spread, wsum, w2sum):
    """Return the variance of one pixel's estimate from the sums over its ``k`` kept values."""
    if propagated:
        if method == MEDIAN:
            return MEDIAN_VARIANCE_FACTOR * spread / (k * k)
        if method == MEAN:
            return weighted_spread / (wsum * wsum)
        return spread
    if k < 2:
        return np.nan
    s2 = spread / (k - 1)
    if method == MEDIAN:
        return MEDIAN_VARIANCE_FACTOR * s2 / k
    if method == MEAN:
        return s2 * w2sum / (wsum * wsum)
    return s2 * k


@njit(cache=True, inline="always")
def _kept_sums(values, lo, hi):
    """Per column: sum, count and mean of the kept values ``lo <= k < hi``."""
    n_frames, n_cols = values.shape
    total = np.zeros(n_cols)
    for k in range(n_frames):
        for col in range(n_cols):
            inside = lo[col] <= k and k < hi[col]
            total[col] += np.float64(values[k, col]) if inside else 0.0
    count = (hi - lo).astype(np.float64)
    return total, count, total / np.maximum(count, 1.0)


@njit(cache=True, inline="always")
def _weight_sums(values, frames, lo, hi, weights):
    """Per column: sum of weights, of squared weights and of weighted values kept."""
    n_frames, n_cols = values.shape
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
    return wsum, w2sum, wvsum


@njit(cache=True, inline="always")
def _variance_sums(frames, lo, hi, weights, variance, row):
    """Per column: the kept inputs' variance summed, plain and weighted by weight squared."""
    n_frames, n_cols = frames.shape
    spread = np.zeros(n_cols)
    weighted_spread = np.zeros(n_cols)
    for k in range(n_frames):
        for col in range(n_cols):
            if lo[col] <= k and k < hi[col]:
                frame = np.int64(frames[k, col])
                vi = variance[frame, row, col]
                w = weights[frame]
                spread[col] += vi
                weighted_spread[col] += w * w * vi
    return spread, weighted_spread


@njit(cache=True, inline="always")
def _scatter_sums(values, lo, hi, mean):
    """Per column: the sum of squared deviations of the kept values from their mean."""
    n_frames, n_cols = values.shape
    spread = np.zeros(n_cols)
    for k in range(n_frames):
        for col in range(n_cols):
            inside = lo[col] <= k and k < hi[col]
            d = np.float64(values[k, col]) - mean[col]
            spread[col] += d * d if inside else 0.0
    return spread
