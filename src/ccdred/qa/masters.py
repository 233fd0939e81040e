"""Checks of master frames: noise, defect counts, and the dust donuts of a flat."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..flags import Flag
from ..frame import Frame
from .maps import frame_cfa, local_noise, relative_to_surroundings
from .metric import Metric, judge

__all__ = ["master_noise", "defect_count", "Donut", "find_donuts",
           "donut_metric", "FlatDonuts", "flat_donuts"]


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
