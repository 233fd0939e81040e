"""Overscan subtraction and trimming from the BIASSEC / TRIMSEC / DATASEC header sections.

Sections are FITS/IRAF 1-based inclusive ``[x1:x2,y1:y2]`` strings (columns first). A section
that cannot be parsed or does not fit the image (the CAFOS ``BIASSEC='[0,513:0,1536]'``, or a
DATASEC in the coordinates of a larger chip) is ignored with a note, never an error: the frame
is then reduced without that step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from ..frame import Frame

__all__ = ["Section", "ReadoutGeometry", "parse_section", "readout_geometry", "overscan_levels",
           "subtract_overscan", "trim", "apply_geometry", "OVERSCAN_MODELS"]

OVERSCAN_MODELS = ("median", "mean", "poly")
_SECTION = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")


@dataclass(frozen=True)
class Section:
    """A rectangle of an image in 0-based, end-exclusive numpy terms."""

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, columns)`` slices for indexing an image."""
        return slice(self.row0, self.row1), slice(self.col0, self.col1)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return (self.row1 - self.row0, self.col1 - self.col0)

    def fits(self) -> str:
        """Return the FITS 1-based inclusive form, ``[x1:x2,y1:y2]``."""
        return f"[{self.col0 + 1}:{self.col1},{self.row0 + 1}:{self.row1}]"


def parse_section(text: str, shape: tuple[int, int]) -> Section:
    """Parse a FITS section for an image of ``shape`` (rows, columns).

    Reversed ranges (``[100:1,...]``, IRAF's flip) are read as the same pixels.

    Raises
    ------
    ValueError
        The text is not a section, or it does not lie inside the image.
    """
    match = _SECTION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a FITS section [x1:x2,y1:y2]")
    x1, x2, y1, y2 = (int(g) for g in match.groups())
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    rows, cols = shape
    if x1 < 1 or y1 < 1 or x2 > cols or y2 > rows:
        raise ValueError(f"{text!r} does not fit in the {cols}x{rows} image")
    return Section(y1 - 1, y2, x1 - 1, x2)


@dataclass(frozen=True)
class ReadoutGeometry:
    """Where a raw frame's overscan and useful data are.

    ``biassec`` is None when there is no usable overscan; ``trimsec`` is None when the whole
    frame is kept. ``notes`` say what in the header was ignored, and why.
    """

    biassec: Section | None = None
    trimsec: Section | None = None
    notes: tuple[str, ...] = ()

    def data_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """Return the shape of a frame of raw ``shape`` after trimming."""
        return self.trimsec.shape if self.trimsec else shape


def readout_geometry(header: fits.Header, shape: tuple[int, int]) -> ReadoutGeometry:
    """Read BIASSEC and TRIMSEC (else DATASEC) from a raw header, ignoring what does not fit.

    The overscan must run along every row (its rows cover the trimmed rows) and must not
    overlap the kept data; otherwise it is ignored with a note.
    """
    notes = []
    sections: dict[str, Section | None] = {"BIASSEC": None, "TRIMSEC": None}
    for key in ("BIASSEC", "TRIMSEC", "DATASEC"):
        target = "TRIMSEC" if key == "DATASEC" else key
        if sections[target] is not None or key not in header:
            continue
        try:
            sections[target] = parse_section(header[key], shape)
        except (ValueError, fits.VerifyError) as err:
            notes.append(f"{key} ignored: {err}")
    bias, keep = sections["BIASSEC"], sections["TRIMSEC"]
    if bias is not None:
        rows = keep or Section(0, shape[0], 0, shape[1])
        overlaps = keep is not None and not (bias.col1 <= keep.col0 or bias.col0 >= keep.col1)
        if bias.row0 > rows.row0 or bias.row1 < rows.row1:
            notes.append(f"BIASSEC {bias.fits()} ignored: it does not cover every data row")
            bias = None
        elif overlaps:
            notes.append(f"BIASSEC {bias.fits()} ignored: it overlaps the data {keep.fits()}")
            bias = None
    return ReadoutGeometry(bias, keep, tuple(notes))


def overscan_levels(overscan: np.ndarray, *, model: str = "median", order: int = 3
                    ) -> np.ndarray:
    """Estimate the bias level of each row from its overscan pixels (rows x columns).

    ``median`` and ``mean`` take each row alone (the mean after a 3-sigma clip of the row);
    ``poly`` fits a Legendre polynomial of ``order`` through the row medians, for a smooth
    level with less noise. NaN values (saturated) are ignored.
    """
    if model not in OVERSCAN_MODELS:
        raise ValueError(f"overscan model must be one of {OVERSCAN_MODELS}, got {model!r}")
    values = np.asarray(overscan, dtype=np.float64)
    if model == "mean":
        from astropy.stats import sigma_clipped_stats

        levels = sigma_clipped_stats(values, axis=1, sigma=3.0, maxiters=3)[0]
    else:
        levels = np.nanmedian(values, axis=1)
    if model == "poly":
        rows = np.arange(values.shape[0])
        good = np.isfinite(levels)
        fit = np.polynomial.Legendre.fit(rows[good], levels[good], deg=order)
        levels = fit(rows)
    return np.asarray(levels, dtype=np.float64)


def subtract_overscan(frame: Frame, biassec: Section, *, model: str = "median",
                      order: int = 3) -> Frame:
    """Subtract each row's overscan level (see `overscan_levels`) from the whole row.

    The level's own noise (small: many overscan pixels per row) is not added to the variance.
    """
    levels = overscan_levels(frame.data[biassec.slices], model=model, order=order)
    data = (frame.data - levels[:, None]).astype(frame.data.dtype)
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
