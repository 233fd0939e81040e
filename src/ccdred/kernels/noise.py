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

from dataclasses import dataclass

import numpy as np

from .mosaic import planes
from .stats import robust_stats

__all__ = ["read_noise_adu", "gain_from_flats", "central", "sky_points", "NoiseLine",
           "fit_noise_line"]


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
                    read_noise: float, *, cfa: str | None = None) -> float:
    """Gain in electrons per ADU from two flats by photon transfer.

    Parameters
    ----------
    flat1, flat2 : ndarray
        Raw flats of similar level (same filter), in ADU.
    bias_level : ndarray or float
        The zero level (master bias, or a dark-flat or dark of the flats' exposure) to
        subtract from both.
    read_noise : float
        Read noise in ADU.
    cfa : str, optional
        Bayer pattern: each colour plane has its own level, so the gain is measured per plane
        and the median of the four is returned.
    """
    f1 = np.asarray(flat1, np.float64) - bias_level
    f2 = np.asarray(flat2, np.float64) - bias_level
    gains = [_plane_gain(a, b, read_noise) for a, b in zip(planes(f1, cfa), planes(f2, cfa),
                                                           strict=True)]
    gains = [g for g in gains if np.isfinite(g)]
    return float(np.median(gains)) if gains else float("nan")


def _plane_gain(flat1: np.ndarray, flat2: np.ndarray, read_noise: float) -> float:
    f1, f2 = central(flat1), central(flat2)
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


def sky_points(image: np.ndarray, cfa: str | None = None) -> list[tuple[float, float]]:
    """Each plane's sky level and noise variance (ADU, ADU^2), stars and defects clipped.

    The noise comes from differences of horizontally neighbouring pixels of the plane (the
    same colour), which removes the sky's gradients and the flat's large-scale structure.
    """
    points = []
    for plane in planes(np.asarray(image, np.float64), cfa):
        level = robust_stats(plane).median
        noise = robust_stats(np.diff(plane, axis=1), sigma=3.0).std / np.sqrt(2.0)
        if np.isfinite(level) and np.isfinite(noise):
            points.append((float(level), float(noise**2)))
    return points


@dataclass(frozen=True)
class NoiseLine:
    """Variance against level, ``variance = intercept + slope * level`` (ADU^2, ADU)."""

    intercept: float
    slope: float
    """One over the gain: ADU^2 per ADU."""
    fitted: bool
    """True when fitted through levels far enough apart; False when the slope assumes the
    level is all photon noise above zero (one level to go by)."""


def fit_noise_line(points: list[tuple[float, float]], min_spread: float = 0.25
                   ) -> NoiseLine | None:
    """Fit the photon-transfer line through (level, variance) points of a night's frames.

    With levels spread by at least ``min_spread`` of their mean (colour planes, twilight
    frames) the line is fitted by least squares; otherwise (one sky level) the slope is
    ``variance / level`` through zero, an assumption. Returns None without any usable point.
    """
    usable = [(s, v) for s, v in points if s > 0 and v > 0]
    if not usable:
        return None
    levels = np.array([s for s, _ in usable])
    variances = np.array([v for _, v in usable])
    if levels.max() - levels.min() >= min_spread * levels.mean():
        slope, intercept = np.polyfit(levels, variances, 1)
        if slope > 0:
            return NoiseLine(float(intercept), float(slope), True)
    return NoiseLine(0.0, float(np.median(variances / levels)), False)
