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
from scipy import ndimage

from .stats import robust_stats

__all__ = ["find_hot", "find_dead", "smooth_background"]


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


def smooth_background(image: np.ndarray, *, box: int = 32) -> np.ndarray:
    """Return a smooth version of ``image``: medians of ``box`` x ``box`` blocks, interpolated.

    Non-finite pixels are ignored; the result has the image's shape.
    """
    if box < 2:
        raise ValueError(f"box must be at least 2 pixels, got {box}")
    rows, cols = image.shape
    ny, nx = max(1, rows // box), max(1, cols // box)
    trimmed = np.asarray(image, dtype=np.float32)[: ny * box, : nx * box]
    blocks = trimmed.reshape(ny, box, nx, box).transpose(0, 2, 1, 3).reshape(ny, nx, -1)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(blocks, axis=2)
    if np.isnan(medians).any():
        fill = np.nanmedian(medians) if np.isfinite(medians).any() else 0.0
        medians = np.where(np.isnan(medians), fill, medians)
    # Block centres in pixel coordinates, then bilinear interpolation to every pixel.
    yc = (np.arange(ny) + 0.5) * box - 0.5
    xc = (np.arange(nx) + 0.5) * box - 0.5
    yi = np.interp(np.arange(rows), yc, np.arange(ny))
    xi = np.interp(np.arange(cols), xc, np.arange(nx))
    grid_y, grid_x = np.meshgrid(yi, xi, indexing="ij")
    return ndimage.map_coordinates(medians, [grid_y, grid_x], order=1, mode="nearest").astype(
        np.float32)


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
    local = ndimage.median_filter(filled, size=box, mode="reflect")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = filled / local
    stats = robust_stats(ratio, exclude=missing)
    return (ratio < stats.median - k * stats.std) & ~missing
