"""Robust image statistics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RobustStats", "robust_stats", "subsample"]


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
    """
    from astropy.stats import sigma_clipped_stats

    array = np.asarray(values, dtype=np.float32)
    if exclude is not None:
        array = np.where(exclude, np.float32(np.nan), array)
    sample = subsample(array, max_values)
    if sample.size == 0:
        return RobustStats(np.nan, np.nan, np.nan)
    mean, median, std = sigma_clipped_stats(sample, sigma=sigma, maxiters=10)
    return RobustStats(float(mean), float(median), float(std))
