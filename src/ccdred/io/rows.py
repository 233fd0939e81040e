"""Row blocks of one file's image, streamed with positioned reads."""

from __future__ import annotations

import os
import resource
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import BadInputError
from .fits_read import _image_hdu, _open, _stream_compressed


class Handles:
    """The open files of every `FileRows` of this process, at most `limit` at once.

    A file is opened when read and stays open while the budget allows; past it, the file
    read least recently (and not being read now) is closed, to be opened again when next
    read. The budget is half the process's limit on open files (``ulimit -n``), so a stack
    of more files than that combines, only with more opening.
    """

    def __init__(self) -> None:
        self._paths: dict[int, Path] = {}
        self._open: OrderedDict[int, int] = OrderedDict()
        self._busy: dict[int, int] = {}
        self._lock = threading.Lock()
        self._next = 0

    @staticmethod
    def limit() -> int:
        """Files kept open at most: half the soft ``RLIMIT_NOFILE`` (at least 4)."""
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return 1 << 20 if soft == resource.RLIM_INFINITY else max(4, soft // 2)

    def register(self, path: Path) -> int:
        """Return a key for ``path`` (opened when first read), checking it can be opened."""
        with open(path, "rb"):
            pass
        with self._lock:
            self._next += 1
            self._paths[self._next] = Path(path)
            return self._next

    @contextmanager
    def use(self, key: int) -> Iterator[int]:
        """Yield an open descriptor of the file, kept open while it is being read."""
        with self._lock:
            fd = self._open.pop(key, None)
            if fd is None:
                self._evict(self.limit() - 1)
                try:
                    fd = os.open(self._paths[key], os.O_RDONLY)
                except OSError as err:
                    raise BadInputError(self._paths[key], f"cannot be opened again ({err})"
                                        ) from err
            self._open[key] = fd
            self._busy[key] = self._busy.get(key, 0) + 1
        try:
            yield fd
        finally:
            with self._lock:
                self._busy[key] -= 1

    def _evict(self, keep: int) -> None:
        for key in list(self._open):
            if len(self._open) <= keep:
                return
            if not self._busy.get(key):
                os.close(self._open.pop(key))

    def forget(self, key: int) -> None:
        """Close the file for good."""
        with self._lock:
            fd = self._open.pop(key, None)
            if fd is not None:
                os.close(fd)
            self._paths.pop(key, None)
            self._busy.pop(key, None)

    def count(self) -> int:
        """Files open now."""
        return len(self._open)


HANDLES = Handles()
"""The one budget of open raw files in this process (``ulimit -n`` is per process)."""


class FileRows:
    """Streams row blocks of one file's image, opening the file once.

    Uncompressed images are read with positioned reads of just the requested rows (big-endian
    on disk), converted to float32 with BSCALE/BZERO applied; nothing else of the file is held
    in memory (a memory map would keep every touched page resident). Compressed images fall
    back to astropy (tile-compressed: its section reader; gzip: the image decoded once).
    Non-finite values and BLANK come back as NaN.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._hdul_cm = _open(self.path)
        hdul = self._hdul_cm.__enter__()
        self._hdul = hdul
        hdu = _image_hdu(hdul, self.path)
        header = hdu.header
        self.header = header
        self._floating = int(header.get("ZBITPIX", header["BITPIX"])) < 0
        if isinstance(hdu, fits.CompImageHDU) or _stream_compressed(hdu):
            self._handle = None
            self._hdu = hdu
            self.shape = (int(header["ZNAXIS2"] if "ZNAXIS2" in header else header["NAXIS2"]),
                          int(header["ZNAXIS1"] if "ZNAXIS1" in header else header["NAXIS1"]))
            return
        self.shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
        bitpix = int(header["BITPIX"])
        dtype = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}[bitpix]
        self._bscale = float(header.get("BSCALE", 1.0))
        self._bzero = float(header.get("BZERO", 0.0))
        self._blank = header.get("BLANK") if bitpix > 0 else None
        offset = hdu.fileinfo()["datLoc"]
        expected = offset + self.shape[0] * self.shape[1] * abs(bitpix) // 8
        if self.path.stat().st_size < expected:
            self.close()
            raise BadInputError(self.path, "truncated: the file is shorter than its header says")
        self._dtype = np.dtype(dtype)
        # float32 arithmetic is exact for unscaled images and for 8/16-bit integers shifted by
        # an integer BZERO (unsigned 16-bit: 32768); other scaling is done in double precision.
        self._scale_in_float32 = self._bscale == 1.0 and (self._bzero == 0.0 or (
            self._dtype.itemsize <= 2 and self._bzero.is_integer() and abs(self._bzero) <= 2**23))
        self._offset = offset
        # The image is read with this file's own handle: astropy's is released at once, and
        # the handle itself is one of a bounded set (`HANDLES`), so a stack of more files
        # than the process may open still combines.
        self._hdul_cm.__exit__(None, None, None)
        self._handle = HANDLES.register(self.path)

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Return rows ``start:stop`` as float32, NaN where the pixel has no valid value."""
        if self._handle is None:
            source = self._hdu.section if isinstance(self._hdu, fits.CompImageHDU) else (
                self._hdu.data)  # a gzip stream cannot seek: astropy decodes it once
            block = np.asarray(source[start:stop, :], dtype=np.float32)
        else:
            block = self._read_uncompressed(start, stop)
        if self._floating:
            block[np.isinf(block)] = np.nan
        return block

    def _read_uncompressed(self, start: int, stop: int) -> np.ndarray:
        cols = self.shape[1]
        count = (stop - start) * cols
        raw = np.empty(count, self._dtype)
        with HANDLES.use(self._handle) as fd:
            read = os.preadv(fd, [raw], self._offset + start * cols * self._dtype.itemsize)
        if read != raw.nbytes:
            raise BadInputError(self.path, f"truncated: rows {start}-{stop} could not be read")
        raw = raw.reshape(stop - start, cols)
        if self._scale_in_float32:
            block = raw.astype(np.float32)
            if self._bzero != 0.0:
                block += np.float32(self._bzero)
        else:
            block = (raw * self._bscale + self._bzero).astype(np.float32)
        if self._blank is not None:
            block[raw == self._blank] = np.nan
        return block

    def close(self) -> None:
        """Release the file."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            HANDLES.forget(handle)
        else:
            self._hdul_cm.__exit__(None, None, None)

    def __enter__(self) -> FileRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
