"""Row sources: anything that yields row blocks of one image (files, frames, calibrated files)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..flags import BAD, flagged
from ..frame import Frame
from ..io import FileRows

__all__ = ["RowSource", "FrameRows", "FileSource", "as_source"]


@runtime_checkable
class RowSource(Protocol):
    """Anything that yields row blocks of one image: files, frames, calibrated files."""

    name: str
    shape: tuple[int, int]

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as float32, NaN where the value must not be used."""

    def read_variance_rows(self, start: int, stop: int) -> np.ndarray | None:
        """Variance of those rows, or None when unknown."""


class FrameRows:
    """Rows of an in-memory `Frame`; pixels with a BAD flag come back as NaN."""

    def __init__(self, frame: Frame, name: str | None = None) -> None:
        self.frame = frame
        self.name = name or (frame.path.name if frame.path else "frame")
        self.shape = frame.shape
        self.header = frame.header

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows as float32 with flagged pixels set to NaN."""
        block = self.frame.data[start:stop]
        bad = flagged(self.frame.dq[start:stop], BAD)
        return np.where(bad, np.float32(np.nan), block).astype(np.float32, copy=False)

    def read_variance_rows(self, start: int, stop: int) -> np.ndarray | None:
        """Variance rows, or None."""
        if self.frame.variance is None:
            return None
        return self.frame.variance[start:stop]

    def close(self) -> None:
        """Nothing to release."""


class FileSource:
    """A FITS file's rows (`ccdred.io.FileRows`) as a `RowSource` (no variance)."""

    def __init__(self, path: Path) -> None:
        self._rows = FileRows(path)
        self.name = self._rows.name
        self.shape = self._rows.shape
        self.header = self._rows.header
        self.path = Path(path)

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows as float32, NaN where the file has no valid value."""
        return self._rows.read_rows(start, stop)

    def read_rows_into(self, start: int, stop: int, out: np.ndarray) -> None:
        """Put those rows into ``out`` (float32), converted straight from the file's bytes."""
        self._rows.read_rows_into(start, stop, out)

    def read_variance_rows(self, start: int, stop: int) -> None:
        """Raw files carry no variance."""
        return None

    def close(self) -> None:
        """Release the file."""
        self._rows.close()


def as_source(item: object) -> RowSource:
    """Wrap a path or a `Frame` as a `RowSource`; a row source is returned as it is.

    Raises
    ------
    TypeError
        ``item`` is none of these.
    """
    if isinstance(item, (str, Path)):
        return FileSource(Path(item))
    if isinstance(item, Frame):
        return FrameRows(item)
    if isinstance(item, RowSource):
        return item
    raise TypeError(f"cannot combine a {type(item).__name__}: give paths, Frames or row sources")
