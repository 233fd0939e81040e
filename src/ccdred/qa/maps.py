"""Images the checks compare with: local noise, neighbours, smooth backgrounds (per colour).

A colour (Bayer) frame's neighbouring pixels differ by design: every comparison here is made
between pixels of one colour plane (`ccdred.kernels.mosaic`), the frame's Bayer pattern read
from its header.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..frame import Frame
from ..instruments.camera import cfa_pattern
from ..kernels.mosaic import assemble, per_plane, planes
from ..kernels.repair import fill_pixels
from ..kernels.stats import robust_stats

__all__ = ["frame_cfa", "neighbours", "local_noise", "large_scale", "LargeScale", "sky_level",
           "relative_to_surroundings",
           "background"]


def frame_cfa(frame: Frame) -> str | None:
    """Return the frame's Bayer pattern (from its header), or None for a monochrome frame."""
    return cfa_pattern(frame.header, frame.shape)


def neighbours(image: np.ndarray, bad: np.ndarray, cfa: str | None) -> np.ndarray:
    """Return ``image`` with ``bad`` pixels filled from their good neighbours of one colour."""
    return assemble(per_plane(fill_pixels, [image, bad], cfa), image.shape, cfa, np.float32)


@dataclass(frozen=True)
class LargeScale:
    """A background's large-scale shape, in the frame's units (worst colour plane)."""

    level: float
    """Median of the block medians."""
    gradient: float
    """Rise of the best-fit plane across the frame (corner to corner along x plus along y)."""
    residual: float
    """Robust spread (1.4826 MAD) of the block medians about that plane."""


def large_scale(data: np.ndarray, bad: np.ndarray, blocks: int, cfa: str | None
                ) -> LargeScale | None:
    """Fit a plane to the block medians of each colour plane; the plane with the most structure.

    None when fewer than 6 blocks have unflagged pixels.
    """
    fits_ = [_plane_large_scale(d, b, blocks) for d, b in
             zip(planes(data, cfa), planes(bad, cfa), strict=True)]
    fits_ = [f for f in fits_ if f is not None]
    if not fits_:
        return None
    return max(fits_, key=lambda f: max(f.residual, f.gradient / 2))


def _plane_large_scale(data: np.ndarray, bad: np.ndarray, blocks: int) -> LargeScale | None:
    values = np.where(bad, np.nan, data)
    rows, cols = data.shape
    r_edges = np.linspace(0, rows, blocks + 1).astype(int)
    c_edges = np.linspace(0, cols, blocks + 1).astype(int)
    points = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-flagged block: NaN, dropped
        for r0, r1 in zip(r_edges[:-1], r_edges[1:], strict=True):
            for c0, c1 in zip(c_edges[:-1], c_edges[1:], strict=True):
                median = np.nanmedian(values[r0:r1, c0:c1])
                if np.isfinite(median):
                    # Block centres in units of the frame's size (0-1).
                    points.append(((c0 + c1) / 2 / cols, (r0 + r1) / 2 / rows, median))
    if len(points) < 6:
        return None
    x, y, z = np.asarray(points, dtype=np.float64).T
    design = np.column_stack([np.ones_like(x), x, y])
    coef = np.linalg.lstsq(design, z, rcond=None)[0]
    # Refit without blocks far off the plane (a bright star, a galaxy), once.
    rest = z - design @ coef
    scatter = 1.4826 * np.median(np.abs(rest - np.median(rest)))
    keep = np.abs(rest) <= 5 * scatter + 1e-12 if scatter > 0 else np.ones_like(z, bool)
    if keep.sum() >= 6:
        coef = np.linalg.lstsq(design[keep], z[keep], rcond=None)[0]
        rest = z - design @ coef
    spread = 1.4826 * np.median(np.abs(rest - np.median(rest)))
    return LargeScale(float(np.median(z)), float(abs(coef[1]) + abs(coef[2])), float(spread))


def sky_level(frame: Frame) -> float:
    """Median of the frame's unflagged pixels (sigma-clipped): its sky, in its units."""
    return robust_stats(frame.data, exclude=frame.bad).median


def local_noise(frame: Frame) -> float:
    """Pixel-to-pixel noise: robust spread of neighbour differences over the root of 2.

    Along rows or columns, whichever is quieter (a bias's column pattern is not noise);
    between pixels of one colour plane for a colour frame (the median of the planes').
    """
    cfa = frame_cfa(frame)
    values = [_plane_noise(data, bad) for data, bad in
              zip(planes(frame.data, cfa), planes(frame.bad, cfa), strict=True)]
    return float(np.nanmedian(values))


def _plane_noise(data: np.ndarray, flagged: np.ndarray) -> float:
    spreads = []
    for axis in (0, 1):
        bad = np.diff(flagged.astype(np.int8), axis=axis) != 0
        bad |= (flagged[1:, :] if axis == 0 else flagged[:, 1:])
        spreads.append(robust_stats(np.diff(data, axis=axis), exclude=bad).std)
    return float(np.nanmin(spreads) / np.sqrt(2))


def background(image: np.ndarray, bad: np.ndarray, box: int = 32) -> np.ndarray:
    """Smooth background from medians of ``box`` x ``box`` cells.

    Stars and donuts do not move a median; the cells are median-filtered over 3x3 and
    interpolated back to every pixel.
    """
    rows, cols = image.shape
    pad_r, pad_c = -rows % box, -cols % box
    values = np.pad(np.where(bad, np.nan, image).astype(np.float64), ((0, pad_r), (0, pad_c)),
                    constant_values=np.nan)
    cells = values.reshape(values.shape[0] // box, box, values.shape[1] // box, box)
    with np.errstate(all="ignore"):
        grid = np.nanmedian(cells.transpose(0, 2, 1, 3).reshape(*cells.shape[::2], -1), axis=2)
    if not np.isfinite(grid).any():
        return np.full(image.shape, np.nan)
    grid = fill_pixels(grid, ~np.isfinite(grid)).astype(np.float64)
    grid = ndimage.median_filter(grid, size=3, mode="nearest")
    centres_r = (np.arange(rows) + 0.5) / box - 0.5
    centres_c = (np.arange(cols) + 0.5) / box - 0.5
    rr, cc = np.meshgrid(centres_r, centres_c, indexing="ij")
    return ndimage.map_coordinates(grid, [rr, cc], order=1, mode="nearest")


def relative_to_surroundings(image: np.ndarray, bad: np.ndarray, cfa: str | None = None
                             ) -> np.ndarray:
    """``image / background - 1``: small-scale relative structure (flagged pixels NaN).

    Each colour plane against its own background.
    """
    parts = per_plane(_plane_relative, [image, bad], cfa)
    return assemble(parts, image.shape, cfa, np.float64)


def _plane_relative(image: np.ndarray, bad: np.ndarray) -> np.ndarray:
    level = background(image, bad)
    with np.errstate(all="ignore"):
        relative = image / np.where(level != 0, level, np.nan) - 1
    return np.where(bad, np.nan, relative)
