"""Calibration applied to a raw row source block by block, for combining masters in bounded memory.

Each block goes through the same steps as a whole frame (`flag_saturation`, the overscan,
`trim`, `subtract_dark`), so a master's inputs are calibrated exactly as science frames are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..flags import Flag
from ..frame import Frame
from ..geometry import Section, readout_geometry
from ..kernels.overscan import overscan_levels
from ..stacking import RowSource
from .calibrate import flag_saturation, subtract_dark
from .overscan import subtract_row_levels, trim

__all__ = ["CalibratedRows"]



@dataclass
class CalibratedRows:
    """A raw source with calibration applied on the fly, row block by row block.

    In order: raw values at or above ``saturation`` are left out (NaN); with an ``overscan``
    model, each row's overscan level (BIASSEC) is subtracted and the frame trimmed
    (TRIMSEC/DATASEC), as `ccdred.geometry` reads them from the source's header; then
    ``out = raw - sum(factor * frame)`` for each ``(frame, factor)`` in ``subtract``.
    """

    source: RowSource
    subtract: Sequence[tuple[Frame, float]] = ()
    saturation: float | None = None
    overscan: str | None = None
    """Overscan model (``median``, ``mean``, ``poly``), or None to leave the frame as it is."""
    name: str = field(init=False)
    shape: tuple[int, int] = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.source.name
        self.header = getattr(self.source, "header", None)
        geometry = None
        if self.overscan is not None and self.header is not None:
            geometry = readout_geometry(self.header, self.source.shape)
        self._trim = geometry.trimsec if geometry else None
        self._levels = (self._overscan_levels(geometry.biassec)
                        if geometry and geometry.biassec else None)
        self.shape = self._trim.shape if self._trim else self.source.shape
        for frame, _ in self.subtract:
            if frame.shape != self.shape:
                raise ValueError(
                    f"{self.name} is {self.shape[1]}x{self.shape[0]} but the calibration frame "
                    f"{frame.path.name if frame.path else ''} is {frame.shape[1]}x{frame.shape[0]}")

    def _raw(self, start: int, stop: int) -> Frame:
        return flag_saturation(Frame(self.source.read_rows(start, stop)), self.saturation)

    def _overscan_levels(self, biassec: Section) -> np.ndarray:
        rows, cols = biassec.slices
        step = 256
        blocks = []
        for first in range(0, self.source.shape[0], step):
            raw = self._raw(first, min(first + step, self.source.shape[0]))
            blocks.append(_usable(raw, raw.has(Flag.SATURATED))[:, cols])
        levels = np.zeros(self.source.shape[0])
        levels[rows] = overscan_levels(np.concatenate(blocks)[rows], model=self.overscan)
        return levels

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of the calibrated (and trimmed) image; NaN where unusable."""
        offset = self._trim.row0 if self._trim else 0
        frame = self._raw(start + offset, stop + offset)
        if self._levels is not None:
            frame = subtract_row_levels(frame, self._levels[start + offset:stop + offset])
        if self._trim is not None:
            frame = trim(frame, Section(0, stop - start, self._trim.col0, self._trim.col1))
        saturated = frame.has(Flag.SATURATED)
        for calibration, factor in self.subtract:
            rows = calibration.replace(data=calibration.data[start:stop], variance=None,
                                       dq=calibration.dq[start:stop], header=frame.header)
            frame = subtract_dark(frame, rows, factor)
        return _usable(frame, saturated)

    def read_variance_rows(self, start: int, stop: int) -> np.ndarray | None:
        """Raw files carry no variance."""
        return None

    def close(self) -> None:
        """Release the source."""
        close = getattr(self.source, "close", None)
        if close:
            close()


def _usable(frame: Frame, saturated: np.ndarray) -> np.ndarray:
    """Return the values to combine, NaN where they must be left out.

    That is where the raw value saturated or a calibration frame has no value; a hot or
    saturated pixel of a dark still holds the right value to subtract.
    """
    return np.where(saturated | frame.has(Flag.NO_DATA), np.float32(np.nan), frame.data)
