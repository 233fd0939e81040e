"""Robust image statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RobustStats", "robust_stats", "subsample", "Slope", "clipped_slope", "block_medians",
           "block_clipped_std"]


@dataclass(frozen=True)
class RobustStats:
    """Sigma-clipped statistics of an image's finite values."""

    mean: float
    median: float
    std: float


def subsample(values: np.ndarray, max_values: int = 1_000_000) -> np.ndarray:
    """Return the finite values of ``values`` on a regular stride, at most ``max_values``."""
    flat = np.asarray(values).ravel()
    step = max(1, flat.size // max_values)
    sample = flat[::step]
    return sample[np.isfinite(sample)]


def robust_stats(values: np.ndarray, *, sigma: float = 3.0, max_values: int = 1_000_000,
                 exclude: np.ndarray | None = None) -> RobustStats:
    """Sigma-clipped mean, median and standard deviation (astropy's `sigma_clipped_stats`).

    Parameters
    ----------
    values : ndarray
        Image or any array; non-finite values are ignored.
    sigma : float
        Clipping threshold in standard deviations.
    max_values : int
        Large arrays are sampled on a regular stride down to about this many values; the
        statistics of a million pixels are precise to a fraction of a per cent.
    exclude : ndarray of bool, optional
        True where a value must not be used.

    Notes
    -----
    astropy's algorithm (clipped about the median at ``sigma`` standard deviations of what is
    left, until nothing changes, at most 10 times; bounds kept), computed on the sample sorted
    once (a radix sort): what is left is then a contiguous run of it, found by bisection,
    three times faster than astropy's masked arrays (a test holds the two to float32
    precision).
    """
    flat = np.asarray(values).ravel()
    step = max(1, flat.size // max_values)
    # The same stride for the values and the exclusions: the sample `subsample` would take
    # of the masked array, without masking every pixel first.
    sample = flat[::step].astype(np.float32, copy=False)
    keep = np.isfinite(sample)
    if exclude is not None:
        keep &= ~np.asarray(exclude).ravel()[::step]
    from .selection import sorted_float32  # compiled: loaded when statistics are first taken

    return _sigma_clipped(sorted_float32(sample[keep]), sigma, 10)


def _sigma_clipped(ordered: np.ndarray, sigma: float, maxiters: int) -> RobustStats:
    """Sigma-clipped statistics of sorted finite values (astropy's `sigma_clipped_stats`)."""
    if ordered.size == 0:
        return RobustStats(np.nan, np.nan, np.nan)
    lo, hi = 0, ordered.size
    for _ in range(maxiters):
        run = ordered[lo:hi]
        centre = _sorted_median(run)
        spread = float(run.std(dtype=np.float64))
        new_lo = max(lo, int(np.searchsorted(ordered, np.float32(centre - sigma * spread),
                                              side="left")))
        new_hi = min(hi, int(np.searchsorted(ordered, np.float32(centre + sigma * spread),
                                              side="right")))
        if (new_lo, new_hi) == (lo, hi) or new_hi <= new_lo:
            break
        lo, hi = new_lo, new_hi
    run = ordered[lo:hi]
    return RobustStats(float(run.mean(dtype=np.float64)), _sorted_median(run),
                       float(run.std(dtype=np.float64)))


def _sorted_median(run: np.ndarray) -> float:
    n = run.size
    return (float(run[(n - 1) // 2]) + float(run[n // 2])) / 2


@dataclass(frozen=True)
class Slope:
    """A fitted factor ``y = value * x`` and its standard error."""

    value: float
    error: float


def clipped_slope(x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, *,
                  clip: float = 5.0, iterations: int = 5) -> Slope:
    """Weighted least-squares slope of ``y = k x`` (no intercept), outliers clipped.

    Values whose weighted residual is more than ``clip`` robust sigmas from the median are left
    out and the fit repeated, until nothing changes or ``iterations`` runs out. Non-finite
    values are ignored.

    Raises
    ------
    ValueError
        ``x`` has no variation left to fit.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if weight is None else np.asarray(weight, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(w)
    slope, error = np.nan, np.nan
    for _ in range(iterations):
        denominator = np.dot(w[keep] * x[keep], x[keep])
        if not denominator > 0:
            raise ValueError("nothing to fit: x has no variation")
        slope = float(np.dot(w[keep] * x[keep], y[keep]) / denominator)
        residual = (y - slope * x) * np.sqrt(w)
        centre = np.median(residual[keep])
        spread = 1.4826 * np.median(np.abs(residual[keep] - centre))
        error = float(spread / np.sqrt(denominator))
        new_keep = keep & (np.abs(residual - centre) <= clip * spread)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return Slope(slope, error)


def block_medians(image: np.ndarray, bad: np.ndarray | None = None, block: int = 32
                  ) -> np.ndarray:
    """Median of each ``block`` x ``block`` cell of the good pixels (NaN where none).

    Good: finite and not ``bad``. The image's last rows and columns that do not fill a cell
    are left out. float32 images are compared as float32, others as float64; the medians
    (float64) are selected, not sorted (`ccdred.kernels.selection.cell_medians`).
    """
    rows, cols = image.shape[0] // block, image.shape[1] // block
    if rows == 0 or cols == 0:
        return np.full((1, 1), np.nan)
    values = np.asarray(image)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    mask = np.zeros(values.shape, bool) if bad is None else np.asarray(bad, bool)
    from .selection import cell_medians  # compiled: loaded on first use

    cut = (slice(0, rows * block), slice(0, cols * block))
    return cell_medians(values[cut], mask[cut], block, block)


def block_clipped_std(image: np.ndarray, bad: np.ndarray, block: int, *, sigma: float = 3.0,
                      maxiters: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Sigma-clipped standard deviation of each ``block`` x ``block`` cell's good pixels.

    The same statistic as `robust_stats` (astropy's ``sigma_clipped_stats``: clipped about the
    median at ``sigma`` standard deviations until nothing changes, at most ``maxiters`` times),
    for all cells at once. Rows and columns that do not fill a cell are left out.

    Returns
    -------
    std : ndarray (cells down x cells across)
        NaN where a cell has no good pixel.
    count : ndarray of int
        Good pixels per cell (before clipping).
    """
    rows, cols = image.shape[0] // block, image.shape[1] // block
    image = np.asarray(image, np.float32)
    values = np.where(bad | ~np.isfinite(image), np.float32(np.nan), image)
    cells = values[:rows * block, :cols * block].reshape(rows, block, cols, block)
    cells = cells.transpose(0, 2, 1, 3).reshape(rows * cols, block * block)
    # Sorted once (NaN last; numpy's sort is vectorised): a clip about the median keeps a
    # contiguous run of each cell's sorted values.
    cells.sort(axis=1)
    count = np.isfinite(cells).sum(axis=1)
    from .clipping import clipped_std_of_sorted  # compiled: loaded on first use

    std = clipped_std_of_sorted(cells, count, sigma=sigma, maxiters=maxiters)
    return std.reshape(rows, cols), count.reshape(rows, cols)
