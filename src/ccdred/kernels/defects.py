"""Defect detection: hot pixels in darks, dead and weak pixels in flats.

Notes
-----
Hot pixels follow the reference notebook: a pixel of the master dark above
``median + k * sigma`` (sigma-clipped statistics) is hot. Dead pixels are the flat's analogue,
but against the *local* response: the flat divided by its 5x5 median, so vignetting and dust
donuts (sensitivity the flat corrects) are not taken for dead pixels.
"""

from __future__ import annotations

import numpy as np

from .filters import median_filter
from .stats import robust_stats

__all__ = ["find_hot", "find_dead"]


def find_hot(dark: np.ndarray, *, k: float = 5.0, exclude: np.ndarray | None = None
             ) -> np.ndarray:
    """Return True where the dark is above ``median + k * sigma`` (sigma-clipped).

    Parameters
    ----------
    dark : ndarray
        A master dark (any units).
    k : float
        Threshold in sigma-clipped standard deviations; must be positive.
    exclude : ndarray of bool, optional
        Pixels left out of the statistics (and never flagged).
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    stats = robust_stats(dark, exclude=exclude)
    hot = np.asarray(dark) > stats.median + k * stats.std
    if exclude is not None:
        hot &= ~exclude
    return hot


def find_dead(flat: np.ndarray, *, k: float = 5.0, box: int = 5,
              exclude: np.ndarray | None = None) -> np.ndarray:
    """Return True where the flat's response is ``k`` sigma below its local level.

    Parameters
    ----------
    flat : ndarray
        A master flat (normalised or not).
    k : float
        Threshold in sigma-clipped standard deviations of ``flat / local level``.
    box : int
        Size of the median filter giving the local level. A small box follows vignetting and
        dust donuts (real sensitivity the flat corrects) but not a single cold pixel.
    exclude : ndarray of bool, optional
        Pixels without a value: left out of the statistics and never flagged.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if box < 3 or box % 2 == 0:
        raise ValueError(f"box must be an odd number >= 3, got {box}")
    image = np.asarray(flat, dtype=np.float32)
    missing = ~np.isfinite(image) if exclude is None else (exclude | ~np.isfinite(image))
    fill = np.float32(np.median(image[~missing])) if (~missing).any() else np.float32(1.0)
    filled = np.where(missing, fill, image)
    local = median_filter(filled, box)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = filled / local
    stats = robust_stats(ratio, exclude=missing)
    return (ratio < stats.median - k * stats.std) & ~missing
