"""Rejection of outlying values, per pixel, over the sorted values of a row's pixels.

Every method narrows each pixel's window ``[lo, hi)`` of sorted values; see
`ccdred.kernels.combine` for how sigma clipping follows `astropy.stats.sigma_clip`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .codes import (
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
)
from .order import (
    MAD_TO_SIGMA,
    _biweight_scale,
    _mad,
    _mean,
    _median_sorted,
    _nanmedian_by_rank,
    _percentile,
    _std,
    _within,
)

__all__ = ["reject_row", "median_mad_variance", "MEDIAN_MAD_VARIANCE", "REJECT_NONE",
           "REJECT_SIGCLIP", "REJECT_MINMAX", "REJECT_PCLIP", "REJECT_WINSOR", "REJECT_CCDCLIP",
           "CENTRE_MEDIAN", "CENTRE_MEAN", "SPREAD_MAD", "SPREAD_STD", "SPREAD_POOLED",
           "POOL_WIDTH"]



MAD_BIAS_MAX_VALUES = 64
"""Beyond this many values the MAD spread's bias is under 1 per cent and taken as none."""

MEDIAN_MAD_VARIANCE = (
    1.0, 1.0, 0.5021700218031513, 0.2749000942794929, 0.45206710336471234, 0.5558952000438864,
    0.618610278783005, 0.6862772509995629, 0.7208117770919265, 0.7561473002172165,
    0.7740371191900486, 0.8002427054754566, 0.8221796833464728, 0.8267766300550907,
    0.8423782072985622, 0.8568167230122291, 0.877685816075819, 0.8726382490318021,
    0.8764196993285079, 0.8909592770945629, 0.8944758733622534, 0.899753612976174,
    0.8973161232512906, 0.9043722146292343, 0.9022454910497204, 0.9131278748859386,
    0.9088069920827843, 0.9149890471413546, 0.930288530710509, 0.925216788176478,
    0.9290580847576787, 0.9232798537595168, 0.9279148309618646, 0.9385470834059986,
    0.9379944625863611, 0.9357685415964909, 0.9411518619995112, 0.9460667578641078,
    0.9410952462929627, 0.9448809468827788, 0.9451324531782878, 0.9409161170989697,
    0.9491717136803732, 0.9514866416191889, 0.952359941486164, 0.9514011635600852,
    0.9504934567006587, 0.9554169411429954, 0.9583308305489516, 0.9518674083004185,
    0.9597847184432954, 0.9594274688217375, 0.9609837339763783, 0.9602772826806134,
    0.966016994036653, 0.9597013614380991, 0.9608557804077409, 0.9654149870181727,
    0.9634665494199808, 0.9639297452008087, 0.9637335028832493, 0.9664781505636277,
    0.9630092157424315, 0.9656565157717769, 0.9657999490598521,
)
"""Median of ``(1.4826 MAD)^2`` for k = 0..64 unit Gaussian values (index k; 1 for k < 2).

Small samples' MAD spread is biased low in the median; dividing by this makes the pooled
spread unbiased. A table, not computed in each process: 20,000 Monte Carlo draws per k from
seed 12345 (tests/test_combine.py draws it again and compares).
"""


def median_mad_variance(n: int) -> np.ndarray:
    """Return `MEDIAN_MAD_VARIANCE` for 0..n values (1 beyond `MAD_BIAS_MAX_VALUES`)."""
    out = np.ones(n + 1)
    known = min(n, MAD_BIAS_MAX_VALUES) + 1
    out[:known] = MEDIAN_MAD_VARIANCE[:known]
    return out


@njit(cache=True)
def _clip_window(values, lo, hi, centre_kind, spread_kind, sigma_low, sigma_high, maxiters,
                 floor):
    """Sigma-clip the sorted window of one pixel; ``floor`` is its row's pooled noise.

    Each pass measures the centre of the values still kept. The ``std`` and ``mad`` spreads
    are measured again each pass too (as astropy does). The ``pooled`` spread is measured
    once, from all the pixel's values: the larger of their biweight scale and the row's
    noise. A pixel noisier than its row (a hot pixel) is so clipped against its own scatter,
    estimated robustly and efficiently, and never against a spread that shrinks pass after
    pass as the tails are cut (the MAD's did, and good values went).
    """
    n = hi
    lower = -np.inf
    upper = np.inf
    iteration = 0
    pooled = max(_biweight_scale(values, lo, hi, _median_sorted(values, lo, hi)), floor) if (
        spread_kind == SPREAD_POOLED) else 0.0
    while hi - lo > 1 and (maxiters <= 0 or iteration < maxiters):
        iteration += 1
        median = _median_sorted(values, lo, hi)
        centre = median if centre_kind == CENTRE_MEDIAN else _mean(values, lo, hi)
        if spread_kind == SPREAD_STD:
            spread = _std(values, lo, hi, _mean(values, lo, hi))
        elif spread_kind == SPREAD_POOLED:
            spread = pooled
        else:
            spread = MAD_TO_SIGMA * _mad(values, lo, hi, median)
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
def reject_row(values, counts, lo, hi, reject, centre_kind, spread_kind, sigma_low,
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
        # A lower bound of the first pass's spread: when every value is inside the bounds it
        # gives, the first pass rejects nothing and is the whole clip.
        if spread_kind == SPREAD_STD:
            spread = stds[col]
        elif spread_kind == SPREAD_POOLED:
            spread = floor[col]
        else:
            spread = mads[col]
        if (values[0, col] >= centre - sigma_low * spread
                and values[n - 1, col] <= centre + sigma_high * spread):
            continue
        lo[col], hi[col] = _clip_window(columns[col], 0, n, centre_kind, spread_kind,
                                        sigma_low, sigma_high, maxiters, floor[col])


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
