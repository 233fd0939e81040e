"""Read noise and gain measured from calibration frames.

Notes
-----
Read noise from the difference of two biases: ``sigma_rn = std(b1 - b2) / sqrt(2)``, which
removes any fixed pattern. Gain from a pair of flats by photon transfer (Janesick 2007,
*Photon Transfer*, ch. 4): with bias-subtracted levels ``S1``, ``S2`` and ``k = S1 / S2``,
``var(f1 - k f2) = (S1 + k^2 S2) / g + (1 + k^2) sigma_rn^2`` (ADU), which cancels the flat's
pixel-to-pixel structure and allows flats of slightly different levels.
"""

from __future__ import annotations

import numpy as np

from .stats import robust_stats

__all__ = ["read_noise_adu", "gain_from_flats", "central"]


def central(image: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """Return the central ``fraction`` x ``fraction`` region (away from vignetted edges)."""
    rows, cols = image.shape
    dr, dc = int(rows * (1 - fraction) / 2), int(cols * (1 - fraction) / 2)
    return image[dr: rows - dr, dc: cols - dc]


def read_noise_adu(bias1: np.ndarray, bias2: np.ndarray) -> float:
    """Read noise in ADU from two bias frames (sigma-clipped std of their difference / sqrt 2)."""
    diff = central(np.asarray(bias1, np.float64)) - central(np.asarray(bias2, np.float64))
    return robust_stats(diff, sigma=4.0).std / np.sqrt(2.0)


def gain_from_flats(flat1: np.ndarray, flat2: np.ndarray, bias_level: np.ndarray | float,
                    read_noise: float) -> float:
    """Gain in electrons per ADU from two flats by photon transfer.

    Parameters
    ----------
    flat1, flat2 : ndarray
        Raw flats of similar level (same filter), in ADU.
    bias_level : ndarray or float
        The bias (master bias image or level) to subtract from both.
    read_noise : float
        Read noise in ADU.
    """
    f1 = central(np.asarray(flat1, np.float64) - bias_level)
    f2 = central(np.asarray(flat2, np.float64) - bias_level)
    s1 = robust_stats(f1).median
    s2 = robust_stats(f2).median
    if not (s1 > 0 and s2 > 0):
        return float("nan")
    k = s1 / s2
    var_diff = robust_stats(f1 - k * f2, sigma=4.0).std ** 2
    denominator = var_diff - (1 + k * k) * read_noise**2
    if denominator <= 0:
        return float("nan")
    return float((s1 + k * k * s2) / denominator)
