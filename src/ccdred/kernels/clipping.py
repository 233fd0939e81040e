"""Sigma clipping of values already sorted: many clips at once, each a contiguous run.

A clip about the median keeps what lies within ``sigma`` standard deviations of it: of sorted
values, a contiguous run, whose ends move by bisection. `ccdred.kernels.stats.robust_stats`
clips one set of values so; here every row of an array of sorted rows (the cells of an
image) is clipped in one compiled pass.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["clipped_std_of_sorted"]


def clipped_std_of_sorted(rows: np.ndarray, counts: np.ndarray, *, sigma: float = 3.0,
                          maxiters: int = 10) -> np.ndarray:
    """Sigma-clipped standard deviation of each row of sorted values (`robust_stats`' clip).

    Parameters
    ----------
    rows : ndarray of float32 (2-D)
        Each row sorted, its first ``counts`` values the ones to use (NaN after them).
    counts : ndarray of int (one per row)
        How many values of each row are used.
    sigma, maxiters : float, int
        Clipped about the median at ``sigma`` standard deviations of what is left, until
        nothing changes, at most ``maxiters`` times (astropy's ``sigma_clipped_stats``).

    Returns
    -------
    ndarray of float64 (one per row)
        NaN for a row with no value.

    Notes
    -----
    What a clip about the median keeps of sorted values is a contiguous run: each pass
    finds the run's median, mean and spread in float64 and its new ends by bisection, as
    `ccdred.kernels.stats.robust_stats` does for one set of values.

    Raises
    ------
    ValueError
        ``rows`` is not 2-D, or ``counts`` is not one count per row between 0 and the rows'
        length.
    """
    rows = np.ascontiguousarray(rows, np.float32)
    counts = np.asarray(counts, np.int64)
    if rows.ndim != 2:
        raise ValueError(f"rows must be 2-D, got {rows.ndim}-D")
    if counts.shape != (rows.shape[0],) or (counts.size and (
            counts.min() < 0 or counts.max() > rows.shape[1])):
        raise ValueError(f"counts must be one count per row, each 0 to {rows.shape[1]}")
    return _clipped_std_of_sorted(rows, counts, float(sigma), int(maxiters))


@njit(cache=True)
def _clipped_std_of_sorted(rows, counts, sigma, maxiters):
    out = np.full(rows.shape[0], np.nan)
    for i in range(rows.shape[0]):
        ordered = rows[i, :counts[i]]
        lo, hi = 0, ordered.size
        if hi == 0:
            continue
        for _ in range(maxiters):
            centre, spread = _run_median_std(ordered, lo, hi)
            new_lo = max(lo, np.searchsorted(ordered, np.float32(centre - sigma * spread),
                                             side="left"))
            new_hi = min(hi, np.searchsorted(ordered, np.float32(centre + sigma * spread),
                                             side="right"))
            if (new_lo == lo and new_hi == hi) or new_hi <= new_lo:
                break
            lo, hi = new_lo, new_hi
        out[i] = _run_median_std(ordered, lo, hi)[1]
    return out


@njit(cache=True, inline="always")
def _run_median_std(ordered, lo, hi):
    """Median and standard deviation (float64) of the sorted run ``ordered[lo:hi]``."""
    n = hi - lo
    median_value = (np.float64(ordered[lo + (n - 1) // 2])
                    + np.float64(ordered[lo + n // 2])) / 2
    total = 0.0
    for j in range(lo, hi):
        total += ordered[j]
    mean = total / n
    squares = 0.0
    for j in range(lo, hi):
        deviation = ordered[j] - mean
        squares += deviation * deviation
    return median_value, math.sqrt(squares / n)
