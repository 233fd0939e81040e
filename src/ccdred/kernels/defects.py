"""Defect detection: hot pixels in darks, dead and weak pixels in flats.

Notes
-----
Both searches compare a pixel with its *local* level, a 5x5 median of pixels of its own colour
(the whole image for a monochrome sensor, each Bayer plane for a colour one):

- Hot pixels: the master dark above its local level by ``k`` times the local noise (robust
  standard deviation of the residuals in 32-pixel blocks). The reference notebook compares the
  dark with its global median; against the local level, a smooth amp glow or a dark-current
  gradient is never taken for hot pixels (the dark subtracts it), and the glow's extra photon
  noise does not lower the threshold elsewhere.
- Dead pixels: the flat divided by its local level, ``k`` sigma below 1, so vignetting and dust
  donuts (sensitivity the flat corrects) are not taken for dead pixels.
"""

from __future__ import annotations

import numpy as np

from .filters import median_filter
from .mosaic import assemble, per_plane
from .stats import block_clipped_std, robust_stats

__all__ = ["find_hot", "find_dead", "NOISE_BLOCK"]

NOISE_BLOCK = 32
"""Side of the blocks the local noise of a dark's residuals is measured in (plane pixels)."""


def find_hot(dark: np.ndarray, *, k: float = 5.0, exclude: np.ndarray | None = None,
             cfa: str | None = None) -> np.ndarray:
    """Return True where the dark stands above its local level by ``k`` local sigmas.

    Parameters
    ----------
    dark : ndarray
        A master dark (any units).
    k : float
        Threshold in robust standard deviations of the residuals; must be positive.
    exclude : ndarray of bool, optional
        Pixels left out of the statistics (and never flagged).
    cfa : str, optional
        Bayer pattern: each colour plane is searched on its own.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    image = np.asarray(dark, dtype=np.float32)
    missing = ~np.isfinite(image) if exclude is None else (exclude | ~np.isfinite(image))
    parts = per_plane(_hot_plane, [image, missing], cfa, k=k)
    return assemble(parts, image.shape, cfa, np.bool_)


def _hot_plane(image: np.ndarray, missing: np.ndarray, k: float) -> np.ndarray:
    residual = _residual(image, missing)
    noise = _local_noise(residual, missing)
    return (residual > k * noise) & ~missing


def _residual(image: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Return the image less its local level (5x5 median; missing pixels filled)."""
    fill = np.float32(np.median(image[~missing])) if (~missing).any() else np.float32(0.0)
    filled = np.where(missing, fill, image)
    return filled - median_filter(filled, 5)


def _local_noise(residual: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Robust standard deviation of the residuals in blocks, spread back to every pixel.

    Small images (or blocks with too few usable pixels) use the global value, which also
    floors every block so that a quiet block never lowers the threshold below it.
    """
    overall = robust_stats(residual, exclude=missing).std
    rows, cols = residual.shape
    n_r, n_c = rows // NOISE_BLOCK, cols // NOISE_BLOCK
    if n_r < 2 or n_c < 2 or not np.isfinite(overall):
        return np.full(residual.shape, overall, np.float32)
    block_std, count = block_clipped_std(residual, missing, NOISE_BLOCK)
    grid = np.where(count > NOISE_BLOCK, np.fmax(block_std, overall), overall)
    row_index = np.minimum(np.arange(rows) // NOISE_BLOCK, n_r - 1)
    col_index = np.minimum(np.arange(cols) // NOISE_BLOCK, n_c - 1)
    return grid[np.ix_(row_index, col_index)].astype(np.float32)


def find_dead(flat: np.ndarray, *, k: float = 5.0, box: int = 5,
              exclude: np.ndarray | None = None, cfa: str | None = None) -> np.ndarray:
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
    cfa : str, optional
        Bayer pattern: each colour plane is searched on its own.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if box < 3 or box % 2 == 0:
        raise ValueError(f"box must be an odd number >= 3, got {box}")
    image = np.asarray(flat, dtype=np.float32)
    missing = ~np.isfinite(image) if exclude is None else (exclude | ~np.isfinite(image))
    parts = per_plane(_dead_plane, [image, missing], cfa, k=k, box=box)
    return assemble(parts, image.shape, cfa, np.bool_)


def _dead_plane(image: np.ndarray, missing: np.ndarray, k: float, box: int) -> np.ndarray:
    fill = np.float32(np.median(image[~missing])) if (~missing).any() else np.float32(1.0)
    filled = np.where(missing, fill, image)
    local = median_filter(filled, box)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = filled / local
    stats = robust_stats(ratio, exclude=missing)
    return (ratio < stats.median - k * stats.std) & ~missing
