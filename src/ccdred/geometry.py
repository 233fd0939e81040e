"""Image geometry: FITS sections and a raw frame's readout geometry (overscan, useful data).

Sections are FITS/IRAF 1-based inclusive ``[x1:x2,y1:y2]`` strings (columns first); `Section`
holds them as 0-based, end-exclusive numpy rows and columns. `parse_section` is the one parser
(BIASSEC, TRIMSEC, DATASEC, a combine's statistics section). A header section that cannot be
parsed or does not fit the image (the CAFOS ``BIASSEC='[0,513:0,1536]'``, or a DATASEC in the
coordinates of a larger chip) is ignored with a note, never an error: the frame is then
reduced without that step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from astropy.io import fits

__all__ = ["Section", "ReadoutGeometry", "parse_section", "readout_geometry"]

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
