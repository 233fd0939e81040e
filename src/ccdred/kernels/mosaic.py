"""Colour (Bayer) mosaics as four planes of same-colour pixels.

Neighbouring pixels of a one-shot-colour sensor differ by design: every spatial operation
(medians, defect searches, cosmic-ray detection, repair) must compare a pixel with pixels of
its own colour. A mosaic's 2x2 cell gives four planes, one per position in the cell; each is an
ordinary image at half the resolution. A monochrome image is its own single plane.

All functions here are pure: arrays in, new arrays out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["CELL", "plane_slices", "planes", "assemble", "per_plane", "colours"]

CELL = ((0, 0), (0, 1), (1, 0), (1, 1))
"""The four positions (row, column) of a Bayer cell, in the order planes are returned."""


def plane_slices(cfa: str | None) -> list[tuple[slice, slice]]:
    """Return the (rows, columns) slices of each plane: four for a mosaic, the whole image else."""
    if not cfa:
        return [(slice(None), slice(None))]
    return [(slice(r, None, 2), slice(c, None, 2)) for r, c in CELL]


def planes(image: np.ndarray, cfa: str | None) -> list[np.ndarray]:
    """Return the image's planes as contiguous copies (the image itself, for monochrome)."""
    return [np.ascontiguousarray(image[rows, cols]) for rows, cols in plane_slices(cfa)]


def assemble(parts: Sequence[np.ndarray], shape: tuple[int, int], cfa: str | None,
             dtype: np.dtype | type | None = None) -> np.ndarray:
    """Put planes (as returned by `planes`) back into one image of ``shape``."""
    out = np.empty(shape, dtype or parts[0].dtype)
    for (rows, cols), part in zip(plane_slices(cfa), parts, strict=True):
        out[rows, cols] = part
    return out


def per_plane(func: Callable[..., object], images: Sequence[np.ndarray], cfa: str | None,
              **kwargs: object) -> list[object]:
    """Call ``func(*plane_images, **kwargs)`` on each plane; return the results in plane order.

    ``images`` are same-shape images split alike (an image and its mask, say). With no
    ``cfa`` this is one call on the whole images.
    """
    split = [planes(image, cfa) for image in images]
    return [func(*parts, **kwargs) for parts in zip(*split, strict=True)]


def colours(cfa: str) -> list[str]:
    """Return the colour letter of each plane, in plane order: ``RGGB`` -> R, G, G, B."""
    return list(cfa)
