"""Images the checks compare with: local noise, neighbours, smooth backgrounds (per colour).

A colour (Bayer) frame's neighbouring pixels differ by design: every comparison here is made
between pixels of one colour plane (`ccdred.kernels.mosaic`), the frame's Bayer pattern read
from its header.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..frame import Frame
from ..instruments.camera import cfa_pattern
from ..kernels.mosaic import assemble, per_plane, planes
from ..kernels.repair import fill_pixels
from ..kernels.selection import cell_medians
from ..kernels.sparse import bilinear_at, cells_touched
from ..kernels.stats import robust_stats

SAMPLE = 100_000
"""Pixels sampled for a check's sky statistics: the median to 0.4% of sigma, the spread to
0.2%."""

__all__ = ["frame_cfa", "neighbours", "local_noise", "large_scale", "fit_large_scale",
           "LargeScale", "sky_level", "block_medians", "plane_block_medians",
           "relative_to_surroundings", "background", "Surroundings"]


def frame_cfa(frame: Frame) -> str | None:
    """Return the frame's Bayer pattern (from its header), or None for a monochrome frame."""
    return cfa_pattern(frame.header, frame.shape)


def neighbours(image: np.ndarray, bad: np.ndarray, cfa: str | None) -> np.ndarray:
    """Return ``image`` with ``bad`` pixels filled from their good neighbours of one colour."""
    return assemble(per_plane(fill_pixels, [image, bad], cfa), image.shape, cfa, np.float32)


@dataclass(frozen=True)
class LargeScale:
    """A background's large-scale shape, in the frame's units (worst colour plane).

    Block medians (stars and cosmic rays do not move a median) are fitted by a plane and,
    when a flat is given, by the flat's own block pattern: ``a + b x + c y + d (f - 1)``.
    """

    level: float
    """Median of the block medians."""
    gradient: float
    """Rise of the fitted plane across the frame (along x plus along y)."""
    residual: float
    """Robust spread (1.4826 MAD) of the block medians about the plane."""
    flat_part: float = 0.0
    """Spread of the part that follows the flat's pattern (``|d|`` less 3 standard errors,
    times the spread of ``f``): a flat pattern left in, or over-corrected. 0 without a flat or
    when not significant."""
    gradient_error: float = 0.0
    """Standard error of ``gradient`` (from the scatter of the blocks about the plane)."""


def large_scale(data: np.ndarray, bad: np.ndarray, blocks: int, cfa: str | None,
                flat_blocks: list[np.ndarray] | None = None) -> LargeScale | None:
    """Fit the block medians of each colour plane; return the plane with the most structure.

    ``flat_blocks``: the flat's block medians per plane (`plane_block_medians`), to fit its
    pattern too. None when fewer than 8 blocks have unflagged pixels.
    """
    return fit_large_scale(plane_block_medians(data, bad, blocks, cfa), flat_blocks)


def fit_large_scale(medians: list[np.ndarray], flat_blocks: list[np.ndarray] | None = None
                    ) -> LargeScale | None:
    """`large_scale` of block medians already found (`plane_block_medians`)."""
    flats = flat_blocks if flat_blocks is not None else [None] * len(medians)
    found = [_plane_large_scale(z, f) for z, f in zip(medians, flats, strict=True)]
    found = [f for f in found if f is not None]
    if not found:
        return None
    return max(found, key=lambda f: max(f.residual, f.gradient / 2, f.flat_part))


def plane_block_medians(data: np.ndarray, bad: np.ndarray, blocks: int, cfa: str | None
                        ) -> list[np.ndarray]:
    """`block_medians` of each colour plane (one for a monochrome image)."""
    return [block_medians(d, b, blocks) for d, b in zip(planes(data, cfa), planes(bad, cfa),
                                                        strict=True)]


def block_medians(data: np.ndarray, bad: np.ndarray, blocks: int) -> np.ndarray:
    """Return ``blocks`` x ``blocks`` medians of the unflagged pixels (NaN: none there).

    The values are compared as float32; rows and columns that do not fill a block are left out.
    """
    rows, cols = data.shape
    rows_cut, cols_cut = rows - rows % blocks, cols - cols % blocks
    if rows_cut == 0 or cols_cut == 0:
        return np.full((blocks, blocks), np.nan)
    return cell_medians(np.asarray(data, np.float32)[:rows_cut, :cols_cut],
                        bad[:rows_cut, :cols_cut], rows_cut // blocks, cols_cut // blocks)


def _plane_large_scale(medians: np.ndarray, flat_blocks: np.ndarray | None
                       ) -> LargeScale | None:
    blocks = medians.shape[0]
    z = medians.ravel().astype(np.float64)
    centres = (np.arange(blocks) + 0.5) / blocks
    y, x = (v.ravel() for v in np.meshgrid(centres, centres, indexing="ij"))
    columns = [np.ones_like(x), x, y]
    if flat_blocks is not None:
        f = flat_blocks.ravel().astype(np.float64)
        columns.append(f / np.nanmedian(f) - 1)
    design = np.column_stack(columns)
    ok = np.isfinite(z) & np.isfinite(design).all(axis=1)
    if ok.sum() < 8:
        return None
    design, z = design[ok], z[ok]
    # The plane alone: gradient and residual, comparable with a frame fitted without a flat.
    coef, errors, rest, keep = _robust_fit(design[:, :3], z)
    residual = float(1.4826 * np.median(np.abs(rest - np.median(rest))))
    gradient_error = float(np.hypot(errors[1], errors[2]))
    flat_part = 0.0
    if flat_blocks is not None:
        coef4, errors4, _, keep4 = _robust_fit(design, z)
        pattern = design[keep4, 3]
        spread = 1.4826 * np.median(np.abs(pattern - np.median(pattern)))
        flat_part = float(max(0.0, abs(coef4[3]) - 3 * errors4[3]) * spread)
    return LargeScale(float(np.median(z)), float(abs(coef[1]) + abs(coef[2])), residual,
                      flat_part, gradient_error)


def _robust_fit(design: np.ndarray, z: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Least squares, refitted twice without blocks 5 sigma off (a bright star, a galaxy).

    Returns the coefficients, their standard errors, the residuals of every block and the
    blocks kept.
    """
    keep = np.ones(z.size, bool)
    for _ in range(2):
        coef, rest = _fit(design[keep], z[keep], design, z)
        scatter = 1.4826 * np.median(np.abs(rest - np.median(rest)))
        keep = np.abs(rest) <= 5 * scatter + 1e-12
        if keep.sum() < design.shape[1] + 4:
            keep = np.ones(z.size, bool)
            break
    coef, rest = _fit(design[keep], z[keep], design, z)
    used = design[keep]
    dof = max(1, int(keep.sum()) - used.shape[1])
    try:
        covariance = np.linalg.inv(used.T @ used) * float(np.sum(rest[keep] ** 2) / dof)
        errors = np.sqrt(np.maximum(np.diag(covariance), 0))
    except np.linalg.LinAlgError:
        errors = np.full(used.shape[1], np.inf)
    return coef, errors, rest, keep


def _fit(design: np.ndarray, z: np.ndarray, every: np.ndarray, z_every: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray]:
    coef = np.linalg.lstsq(design, z, rcond=None)[0]
    return coef, z_every - every @ coef


def sky_level(frame: Frame) -> float:
    """Median of the frame's unflagged pixels (sigma-clipped): its sky, in its units."""
    return robust_stats(frame.data, exclude=frame.bad, max_values=SAMPLE).median


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
    rows, cols = data.shape
    values, flags = data.ravel(), flagged.ravel()
    for axis in (0, 1):
        # The differences `robust_stats(np.diff(data, axis))` samples (a regular stride of
        # the difference image), computed only where sampled.
        shape = (rows - 1, cols) if axis == 0 else (rows, cols - 1)
        size = shape[0] * shape[1]
        if size == 0:
            spreads.append(np.nan)
            continue
        sampled = np.arange(0, size, max(1, size // SAMPLE))
        first = sampled if axis == 0 else sampled + sampled // shape[1]
        second = first + (cols if axis == 0 else 1)
        spreads.append(robust_stats(values[second] - values[first],
                                    exclude=flags[first] | flags[second],
                                    max_values=sampled.size).std)
    return float(np.nanmin(spreads) / np.sqrt(2))


def background(image: np.ndarray, bad: np.ndarray, box: int = 32) -> np.ndarray:
    """Smooth background from medians of ``box`` x ``box`` cells.

    Stars and donuts do not move a median; the cells are median-filtered over 3x3 and
    interpolated back to every pixel.
    """
    rows, cols = image.shape
    grid = _background_grid(image, bad, box)
    if grid is None:
        return np.full(image.shape, np.nan)
    # Bilinear between cell centres, constant beyond the outer ones (map_coordinates with
    # order=1, mode="nearest"), done as two 1-D passes: a tenth of the time on a full frame.
    along_rows = _linear_weights(rows, box, grid.shape[0])
    along_cols = _linear_weights(cols, box, grid.shape[1])
    return _interpolate(_interpolate(grid, *along_rows).T, *along_cols).T


def _background_grid(image: np.ndarray, bad: np.ndarray, box: int,
                     wanted: np.ndarray | None = None) -> np.ndarray | None:
    """Return the cells' medians, holes filled, median-filtered over 3x3 (None: no good pixel).

    ``wanted`` (bool, one per cell): only these cells' values are needed. Their 3x3
    neighbourhoods are measured and the other cells left at 0, unless one of them has no
    usable pixel: a hole is filled from its neighbours, and then every cell is measured, so
    the wanted values are always those of the whole grid.
    """
    # A float32 image's cells compared as float32: the same medians as of float64 copies.
    values = np.asarray(image, np.float64 if image.dtype == np.float64 else np.float32)
    if wanted is not None:
        measured = ndimage.binary_dilation(wanted, np.ones((3, 3), bool))
        grid = cell_medians(values, bad, box, box, wanted=measured)
        if np.isfinite(grid[measured]).all():
            # As float32, as `fill_pixels` returns the whole grid's values.
            grid = np.where(measured, grid, 0.0).astype(np.float32).astype(np.float64)
            return ndimage.median_filter(grid, size=3, mode="nearest")
    grid = cell_medians(values, bad, box, box)
    if not np.isfinite(grid).any():
        return None
    grid = fill_pixels(grid, ~np.isfinite(grid)).astype(np.float64)
    return ndimage.median_filter(grid, size=3, mode="nearest")


class Surroundings:
    """``image / background - 1`` at the pixels asked for (`relative_to_surroundings`'s values).

    Only the background cells around the pixels asked for are measured (one background per
    colour plane), so a check that needs a few thousand pixels does not measure a whole frame.
    """

    def __init__(self, image: np.ndarray, bad: np.ndarray, cfa: str | None = None,
                 box: int = 32):
        self.image, self.bad, self.box = image, bad, box
        self.step = 2 if cfa else 1
        self.planes = list(zip(planes(image, cfa), planes(bad, cfa), strict=True))
        # Each plane's cells down and across, and its interpolation weights along its rows
        # and its columns.
        self.cells = [(-(-plane.shape[0] // box), -(-plane.shape[1] // box))
                      for plane, _ in self.planes]
        self.weights = [(_linear_weights(plane.shape[0], box, down),
                         _linear_weights(plane.shape[1], box, across))
                        for (plane, _), (down, across) in zip(self.planes, self.cells,
                                                              strict=True)]

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Return the relative values at (``rows``, ``cols``): float64, NaN where flagged.

        Raises
        ------
        IndexError
            A pixel is outside the image.
        """
        rows, cols = np.asarray(rows, np.intp), np.asarray(cols, np.intp)
        height, width = self.image.shape
        if rows.size and (min(rows.min(), cols.min()) < 0 or rows.max() >= height
                          or cols.max() >= width):
            raise IndexError(f"pixels outside the {height} x {width} image")
        step = self.step
        level = np.full(rows.size, np.nan)
        plane_index = (rows % step) * step + cols % step
        for index, ((plane, plane_bad), cells, (along_rows, along_cols)) in enumerate(
                zip(self.planes, self.cells, self.weights, strict=True)):
            chosen = plane_index == index if step > 1 else slice(None)
            r, c = rows[chosen] // step, cols[chosen] // step
            if not r.size:
                continue
            grid = _background_grid(plane, plane_bad, self.box,
                                    cells_touched(r, c, along_rows, along_cols, cells))
            if grid is not None:
                level[chosen] = bilinear_at(grid, r, c, along_rows, along_cols)
        with np.errstate(all="ignore"):
            relative = self.image[rows, cols] / np.where(level != 0, level, np.nan) - 1
        return np.where(self.bad[rows, cols], np.nan, relative)


def _linear_weights(size: int, box: int, cells: int) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """For each of ``size`` pixels: the cell below it, the cell above, and the upper weight."""
    position = np.clip((np.arange(size) + 0.5) / box - 0.5, 0, cells - 1)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, cells - 1)
    return below, above, position - below


def _interpolate(grid: np.ndarray, below: np.ndarray, above: np.ndarray, weight: np.ndarray
                 ) -> np.ndarray:
    """Linear interpolation of ``grid`` along its first axis (rows ``below`` to ``above``)."""
    return grid[below] * (1 - weight)[:, None] + grid[above] * weight[:, None]


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
