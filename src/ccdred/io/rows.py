"""Row blocks of one file's image, streamed with positioned reads."""

from __future__ import annotations

import hashlib
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
from .digests import remember
from .fits_read import _image_hdu, _open, _stream_compressed
from .xisf_read import XisfRows, is_xisf_name


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
    Non-finite values and BLANK come back as NaN. An XISF file is streamed by `XisfRows`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._xisf = None
        if is_xisf_name(self.path):
            self._xisf = XisfRows(self.path)
            self.header, self.shape = self._xisf.header, self._xisf.shape
            return
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
        self._data_end = expected
        # The image is read with this file's own handle: astropy's is released at once, and
        # the handle itself is one of a bounded set (`HANDLES`), so a stack of more files
        # than the process may open still combines.
        self._hdul_cm.__exit__(None, None, None)
        self._handle = HANDLES.register(self.path)
        self._buffers = threading.local()
        self._start_digest()

    def _start_digest(self) -> None:
        """Hash the file as its rows are read in order, so it need not be read again to be hashed.

        The header is hashed now; rows as they arrive (a row already hashed is skipped); the
        rest of the file at `close`, where the digest is remembered (`ccdred.io.sha256`) if every
        row was read and the file did not change meanwhile.
        """
        with HANDLES.use(self._handle) as fd:
            status = os.fstat(fd)
            self._digest = hashlib.sha256(os.pread(fd, self._offset, 0))
        self._opened_as = (status.st_size, status.st_mtime_ns)
        self._hashed_to = self._offset
        self._digest_lock = threading.Lock()

    def _hash_rows(self, first_byte: int, raw: np.ndarray) -> None:
        with self._digest_lock:
            skip = self._hashed_to - first_byte
            if 0 <= skip < raw.nbytes:
                self._digest.update(memoryview(raw).cast("B")[skip:])
                self._hashed_to = first_byte + raw.nbytes

    def _finish_digest(self, handle: int) -> None:
        if self._hashed_to != self._data_end:
            return
        with HANDLES.use(handle) as fd:
            position = self._hashed_to
            while chunk := os.pread(fd, 1 << 20, position):
                self._digest.update(chunk)
                position += len(chunk)
            status = os.fstat(fd)
        if (status.st_size, status.st_mtime_ns) == self._opened_as:
            remember(self.path, self._digest.hexdigest())

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Return rows ``start:stop`` as float32, NaN where the pixel has no valid value."""
        if self._xisf is not None:
            return self._xisf.read_rows(start, stop)
        block = np.empty((stop - start, self.shape[1]), np.float32)
        self.read_rows_into(start, stop, block)
        return block

    def read_rows_into(self, start: int, stop: int, out: np.ndarray) -> None:
        """Put rows ``start:stop`` into ``out`` (float32, C-contiguous), NaN where invalid.

        The file's bytes are read into a buffer kept per thread and converted in one pass
        into ``out``: no array is allocated per block, so a stack is filled in place.
        """
        if self._xisf is not None:
            out[...] = self._xisf.read_rows(start, stop)
            return
        if self._handle is None:
            source = self._hdu.section if isinstance(self._hdu, fits.CompImageHDU) else (
                self._hdu.data)  # a gzip stream cannot seek: astropy decodes it once
            out[...] = source[start:stop, :]
        else:
            self._convert(self._read_raw(start, stop), out)
        if self._floating:
            out[np.isinf(out)] = np.nan

    def _read_raw(self, start: int, stop: int) -> np.ndarray:
        """Read the rows' bytes, as stored, into this thread's buffer."""
        cols = self.shape[1]
        count = (stop - start) * cols
        buffer = getattr(self._buffers, "raw", None)
        if buffer is None or buffer.size < count:
            buffer = np.empty(count, self._dtype)
            self._buffers.raw = buffer
        raw = buffer[:count]
        first_byte = self._offset + start * cols * self._dtype.itemsize
        with HANDLES.use(self._handle) as fd:
            read = os.preadv(fd, [raw], first_byte)
        if read != raw.nbytes:
            raise BadInputError(self.path, f"truncated: rows {start}-{stop} could not be read")
        self._hash_rows(first_byte, raw)
        return raw.reshape(stop - start, cols)

    def _convert(self, raw: np.ndarray, out: np.ndarray) -> None:
        """Convert stored values to float32 in ``out``: BSCALE/BZERO applied, BLANK as NaN."""
        if self._scale_in_float32:
            np.copyto(out, raw, casting="unsafe")
            if self._bzero != 0.0:
                out += np.float32(self._bzero)
        else:
            out[...] = raw * self._bscale + self._bzero
        if self._blank is not None:
            out[raw == self._blank] = np.nan

    def close(self) -> None:
        """Release the file."""
        if self._xisf is not None:
            self._xisf.close()
            return
        if getattr(self, "_closed", False):
            return
        self._closed = True
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            try:
                self._finish_digest(handle)
            except OSError:
                pass  # the digest is only a saving: the file is hashed again when needed
            HANDLES.forget(handle)
        else:
            self._hdul_cm.__exit__(None, None, None)

    def __enter__(self) -> FileRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
