"""Overscan subtraction and trimming, from the readout geometry (`ccdred.geometry`)."""

from __future__ import annotations

import numpy as np

from ..frame import Frame
from ..geometry import ReadoutGeometry, Section, parse_section, readout_geometry
from ..kernels.overscan import OVERSCAN_MODELS, overscan_levels

__all__ = ["Section", "ReadoutGeometry", "parse_section", "readout_geometry", "overscan_levels",
           "subtract_overscan", "subtract_row_levels", "trim", "apply_geometry", "OVERSCAN_MODELS"]


def subtract_overscan(frame: Frame, biassec: Section, *, model: str = "median",
                      order: int = 3) -> Frame:
    """Subtract each row's overscan level (see `overscan_levels`) from the whole row.

    The level's own noise (small: many overscan pixels per row) is not added to the variance.
    """
    levels = overscan_levels(frame.data[biassec.slices], model=model, order=order)
    return subtract_row_levels(frame, levels)


def subtract_row_levels(frame: Frame, levels: np.ndarray) -> Frame:
    """Subtract ``levels[i]`` from every value of row ``i`` (in the frame's precision)."""
    data = frame.data - np.asarray(levels).astype(frame.data.dtype)[:, None]
    return frame.replace(data=data)


def trim(frame: Frame, section: Section) -> Frame:
    """Keep only ``section`` of the frame (data, variance, flags); WCS reference shifted."""
    rows, cols = section.slices
    header = frame.header.copy()
    for key, offset in (("CRPIX1", section.col0), ("CRPIX2", section.row0)):
        if key in header and offset:
            header[key] = header[key] - offset
    for key in ("BIASSEC", "TRIMSEC", "DATASEC"):
        header.remove(key, ignore_missing=True)
    return frame.replace(
        data=frame.data[rows, cols].copy(),
        variance=None if frame.variance is None else frame.variance[rows, cols].copy(),
        dq=frame.dq[rows, cols].copy(), header=header)


def apply_geometry(frame: Frame, geometry: ReadoutGeometry, *, model: str = "median") -> Frame:
    """Subtract the overscan (when there is one) and trim (when there is a section)."""
    if geometry.biassec is not None:
        frame = subtract_overscan(frame, geometry.biassec, model=model)
    return trim(frame, geometry.trimsec) if geometry.trimsec is not None else frame
