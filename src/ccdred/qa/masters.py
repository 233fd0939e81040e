"""Checks of master frames, and what the checks of a science frame take from its masters.

Master checks: noise, defect counts, a flat's dust donuts. `MasterMaps`: a dark's strong pixels,
a flat's large-scale pattern and its donuts, found once for a night's frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..flags import Flag
from ..frame import Frame
from .maps import (
    block_medians,
    frame_cfa,
    local_noise,
    neighbours,
    plane_block_medians,
    relative_to_surroundings,
)
from .metric import Metric, judge

__all__ = ["master_noise", "defect_count", "Donut", "find_donuts", "donut_metric", "FlatDonuts",
           "flat_donuts", "DarkPattern", "dark_pattern", "FlatPattern", "flat_pattern",
           "MasterMaps", "master_maps"]


def master_noise(master: Frame, expected: float, *, pass_below: float = 1.25,
                 warn_below: float = 1.5) -> Metric:
    """Pixel-to-pixel noise of a master against what combining should give (``expected``).

    For a master bias, ``expected`` is the read noise over the square root of the number of
    frames; a ratio well above 1 means the frames were not independent, or outliers got in.
    """
    measured = local_noise(master)
    value = measured / expected if expected > 0 else np.nan
    verdict, threshold = judge(value, pass_below, warn_below)
    return Metric("master noise", "Is the master as quiet as combining should make it?", value,
                  verdict, f"measured/expected {threshold}",
                  f"noise {measured:.3g} against {expected:.3g} expected")


def defect_count(master: Frame, flag: Flag, previous: int | None = None) -> Metric:
    """How many pixels carry ``flag`` (HOT or DEAD), against the previous master if known."""
    count = int(master.has(flag).sum())
    fraction = count / master.data.size
    verdict, threshold = judge(fraction, 0.005, 0.02)
    detail = f"{count} {flag.name.lower()} pixels ({fraction:.3%} of the detector)"
    if previous is not None:
        detail += f"; previous master: {previous}"
    return Metric(f"{flag.name.lower()} pixels", "How many defective pixels?", float(count),
                  verdict, f"fraction {threshold}", detail)


@dataclass(frozen=True)
class Donut:
    """A dust shadow on a flat: centre (0-based pixels), diameter (pixels), depth (fraction)."""

    x: float
    y: float
    diameter: float
    depth: float


@dataclass(frozen=True)
class FlatDonuts:
    """A master flat's dust donuts and its small-scale structure: found once, used per frame."""

    pixels: tuple[tuple[Donut, np.ndarray, np.ndarray], ...]
    """Each donut with the rows and columns of its pixels (not a whole-frame mask each: a
    worker keeps them for a night)."""
    relative: np.ndarray
    """``flat / background - 1`` (`relative_to_surroundings`), NaN at flagged pixels."""


def flat_donuts(flat: Frame, *, threshold: float = 0.015, min_area: int = 12) -> FlatDonuts:
    """Return a flat's dust donuts (compact dips, away from the edges) and its structure."""
    bad = flat.bad | ~np.isfinite(flat.data)
    relative = relative_to_surroundings(flat.data, bad, frame_cfa(flat))
    dips = ndimage.gaussian_filter(np.nan_to_num(relative), 1.5) < -threshold
    dips = ndimage.binary_closing(dips, iterations=2) & ~bad
    labels, _ = ndimage.label(dips)
    regions = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        local = labels[box] == index  # the donut within its bounding box
        area = int(local.sum())
        margin = 8  # the background is extrapolated near the edges
        touches_edge = (box[0].start < margin or box[1].start < margin
                        or box[0].stop > flat.shape[0] - margin
                        or box[1].stop > flat.shape[1] - margin)
        if area < min_area or touches_edge or 2 * np.sqrt(area / np.pi) > min(flat.shape) / 6:
            continue  # vignetted corners are not dust
        rows, cols = np.nonzero(local)
        donut = Donut(x=float(cols.mean() + box[1].start), y=float(rows.mean() + box[0].start),
                      diameter=float(2 * np.sqrt(area / np.pi)),
                      depth=float(-np.nanmin(relative[box][local])))
        regions.append((donut, rows + box[0].start, cols + box[1].start))
    return FlatDonuts(tuple(regions), relative)


def find_donuts(flat: Frame, *, threshold: float = 0.015, min_area: int = 12) -> list[Donut]:
    """Find dust donuts: compact dips of the flat, ``threshold`` below its surroundings."""
    return [donut for donut, _, _ in flat_donuts(flat, threshold=threshold,
                                                  min_area=min_area).pixels]


def donut_metric(flat: Frame) -> tuple[Metric, list[Donut]]:
    """Answer the notebook's "What is that?": the dust donuts of a master flat."""
    donuts = find_donuts(flat)
    listing = "; ".join(f"({d.x:.0f}, {d.y:.0f}) {d.diameter:.0f} px, {d.depth:.1%} deep"
                        for d in donuts[:10])
    detail = f"{len(donuts)} dust donuts" + (f": {listing}" if donuts else "")
    if len(donuts) > 10:
        detail += f" and {len(donuts) - 10} more"
    metric = Metric("dust donuts", "What are the rings in the flat?", float(len(donuts)),
                    "info", "found, not judged", detail)
    return metric, donuts


@dataclass(frozen=True)
class FlatPattern:
    """A master flat's large-scale pattern: what `flatness` fits a frame's background by."""

    planes: list[np.ndarray]
    """Block medians of each colour plane (`plane_block_medians`)."""
    spread: float
    """The flat's range across the frame: largest over smallest block median, less 1."""


def flat_pattern(flat: Frame, blocks: int = 8) -> FlatPattern:
    """Return a master flat's block medians per colour plane and its range (`FlatPattern`)."""
    finite = np.isfinite(flat.data)
    pattern = block_medians(flat.data, flat.bad | ~finite, blocks)
    spread = float(np.nanmax(pattern) / np.nanmin(pattern) - 1) if np.isfinite(
        pattern).any() and np.nanmin(pattern) > 0 else 0.0
    return FlatPattern(plane_block_medians(flat.data, flat.bad | ~finite, blocks,
                                          frame_cfa(flat)), spread)


@dataclass(frozen=True)
class DarkPattern:
    """A master dark's strong pixels (hot and warm), as the frames it calibrated saw them.

    The dark divided by the flat (when there is one), at exposure scale 1: what
    `dark_residual` fits a frame's excess by. Found once per dark and flat; whether a pixel
    is strong does not depend on the exposure scale (signal and noise scale alike).
    """

    rows: np.ndarray
    cols: np.ndarray
    excess: np.ndarray
    """The dark's excess over its neighbours of its colour at each strong pixel, per unit
    scale, divided by the flat."""
    mask: np.ndarray
    """Whole-frame: True at the strong pixels."""
    unusable: np.ndarray
    """Whole-frame: True where the dark divided by the flat is not finite."""


def dark_pattern(dark: Frame, flat: Frame | None = None, *, snr: float = 10.0) -> DarkPattern:
    """Return the pixels whose dark signal is ``snr`` times its own noise (see `DarkPattern`).

    The noise is the dark's UNCERT where it has one, else its pixel-to-pixel noise.
    """
    pattern = dark.data.astype(np.float32)
    noise = None if dark.variance is None else np.sqrt(np.maximum(dark.variance, 0))
    if flat is not None and flat.shape == dark.shape:
        response = np.where(flat.data > 0, flat.data, np.float32(np.nan))
        pattern = pattern / response
        noise = None if noise is None else noise / response
    unusable = ~np.isfinite(pattern)
    cfa = frame_cfa(dark)
    background = neighbours(pattern, unusable | dark.has(Flag.HOT), cfa)
    excess = pattern - background
    if noise is None:
        noise = np.float32(local_noise(dark.replace(data=pattern)))
    mask = ~unusable & (excess > snr * noise)
    rows, cols = np.nonzero(mask)
    return DarkPattern(rows, cols, excess[rows, cols], mask, unusable)


@dataclass(frozen=True)
class MasterMaps:
    """What the checks of a science frame take from its masters: found once, used per frame."""

    dark: DarkPattern | None = None
    flat: FlatPattern | None = None
    donuts: FlatDonuts | None = None


def master_maps(*, dark: Frame | None = None, flat: Frame | None = None) -> MasterMaps:
    """Return the dark's strong pixels, the flat's pattern and its dust donuts (`MasterMaps`)."""
    return MasterMaps(dark_pattern(dark, flat) if dark is not None else None,
                      flat_pattern(flat) if flat is not None else None,
                      flat_donuts(flat) if flat is not None else None)
