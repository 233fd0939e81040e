"""L.A.Cosmic on a colour (Bayer) mosaic: per colour plane, with a colour-coherence veto.

Each colour plane is searched with L.A.Cosmic on its own, so a pixel is compared with pixels
of its own colour. A plane samples the sky at half the resolution, where star cores turn sharp
enough to pass L.A.Cosmic's tests; but a star lights every pixel around it, of every colour,
while a cosmic ray deposits its charge in the pixels it crosses. A group of detections whose
peak pixel has at least three of its four edge neighbours (pixels of the *other* colours)
significantly above their own planes' local level is a source, not a cosmic ray, and is
dropped whole. A track still passes: along a line, at most two edge neighbours are hit.
"""

from __future__ import annotations

import numpy as np

from .filters import median_filter
from .lacosmic import detect_cosmics
from .mosaic import assemble, planes

__all__ = ["detect_cosmics_mosaic", "SOURCE_NEIGHBOURS_SIGMA", "SOURCE_NEIGHBOURS_FRACTION"]

SOURCE_NEIGHBOURS_SIGMA = 1.0
"""An edge neighbour counts as lit when it is this many sigmas above its plane's local level."""

SOURCE_NEIGHBOURS_FRACTION = 0.1
"""... and at least this fraction of the peak's own excess (a faint star spreads little)."""


def detect_cosmics_mosaic(data: np.ndarray, cfa: str, *, variance: np.ndarray,
                          inmask: np.ndarray | None = None, sigclip: float = 4.5,
                          objlim: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Find the cosmic rays of a colour mosaic.

    Parameters
    ----------
    data : ndarray
        The mosaic in ADU, sky included.
    cfa : str
        Its Bayer pattern (any of the four: only the planes matter here).
    variance : ndarray
        Variance of every pixel in ADU^2 (the noise model; L.A.Cosmic's ``invar``).
    inmask : ndarray of bool, optional
        Pixels to leave out (saturated cores and their halo, for instance).
    sigclip, objlim : float
        L.A.Cosmic's detection and contrast limits, as for a monochrome frame.

    Returns
    -------
    crmask : ndarray of bool
        The cosmic-ray pixels.
    cleaned : ndarray of float32
        ``data`` with them replaced as L.A.Cosmic cleans them (from their own colour).
    """
    mask = np.zeros(data.shape, np.bool_) if inmask is None else inmask
    found, cleaned = [], []
    for plane, plane_var, plane_mask in zip(planes(data, cfa), planes(variance, cfa),
                                            planes(mask, cfa), strict=True):
        hits, clean = detect_cosmics(plane, inmask=plane_mask, invar=plane_var, gain=1.0,
                                     readnoise=0.0, sigclip=sigclip, objlim=objlim)
        found.append(hits & ~plane_mask)
        cleaned.append(clean)
    significance = _local_significance(data, variance, cfa)
    lit = _lit_neighbours(significance, data, cfa)
    kept = [_without_sources(hits, plane_sig, plane_lit)
            for hits, plane_sig, plane_lit in zip(found, planes(significance, cfa),
                                                  planes(lit, cfa), strict=True)]
    return assemble(kept, data.shape, cfa, np.bool_), assemble(cleaned, data.shape, cfa)


def _local_significance(data: np.ndarray, variance: np.ndarray, cfa: str) -> np.ndarray:
    """Each pixel's excess over its plane's 5x5 local median, in units of its noise."""
    excess = [plane - median_filter(plane, 5) for plane in planes(data, cfa)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return assemble(excess, data.shape, cfa, np.float32) / np.sqrt(
            np.maximum(variance, 1e-12)).astype(np.float32)


def _lit_neighbours(significance: np.ndarray, data: np.ndarray, cfa: str) -> np.ndarray:
    """How many of each pixel's four edge neighbours are lit (see the module's notes)."""
    padded = np.pad(significance, 1, mode="edge")
    neighbours = (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:])
    floor = np.maximum(SOURCE_NEIGHBOURS_FRACTION * significance, SOURCE_NEIGHBOURS_SIGMA)
    return sum((n > floor).astype(np.int8) for n in neighbours)


def _without_sources(hits: np.ndarray, significance: np.ndarray, lit: np.ndarray
                     ) -> np.ndarray:
    """Drop every group of detections whose most significant pixel is part of a source."""
    from scipy import ndimage  # loaded on first use: a quick start

    if not hits.any():
        return hits
    labels, count = ndimage.label(hits, structure=np.ones((3, 3), np.int8))
    peaks = ndimage.maximum_position(np.where(hits, significance, -np.inf), labels,
                                     range(1, count + 1))
    source = np.zeros(count + 1, np.bool_)
    for index, peak in enumerate(peaks, start=1):
        source[index] = lit[peak] >= 3
    return hits & ~source[labels]
