"""Bias level of each row from its overscan pixels."""

from __future__ import annotations

import numpy as np

__all__ = ["OVERSCAN_MODELS", "overscan_levels"]

OVERSCAN_MODELS = ("median", "mean", "poly")


def overscan_levels(overscan: np.ndarray, *, model: str = "median", order: int = 3
                    ) -> np.ndarray:
    """Estimate the bias level of each row from its overscan pixels (rows x columns).

    ``median`` and ``mean`` take each row alone (the mean after a 3-sigma clip of the row);
    ``poly`` fits a Legendre polynomial of ``order`` through the row medians, for a smooth
    level with less noise. NaN values (saturated) are ignored.
    """
    if model not in OVERSCAN_MODELS:
        raise ValueError(f"overscan model must be one of {OVERSCAN_MODELS}, got {model!r}")
    values = np.asarray(overscan, dtype=np.float64)
    if model == "mean":
        from astropy.stats import sigma_clipped_stats

        levels = sigma_clipped_stats(values, axis=1, sigma=3.0, maxiters=3)[0]
    else:
        levels = np.nanmedian(values, axis=1)
    if model == "poly":
        rows = np.arange(values.shape[0])
        good = np.isfinite(levels)
        fit = np.polynomial.Legendre.fit(rows[good], levels[good], deg=order)
        levels = fit(rows)
    return np.asarray(levels, dtype=np.float64)
