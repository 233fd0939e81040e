"""All FITS input and output: the only module that touches files' contents.

Reading finds the 2-D image HDU (primary, else the first image extension, compressed or not).
Writing is atomic (temporary file + rename): an output appears only when complete.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.utils.exceptions import AstropyUserWarning

from . import flags as _flags
from .atomic import atomic_output
from .errors import BadInputError
from .frame import Frame

__all__ = [
    "read",
    "read_header",
    "write",
    "write_dq",
    "write_raw",
    "sha256",
    "FileRows",
    "FITS_SUFFIXES",
    "is_fits_name",
    "atomic_output",
]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz", ".fz")

_STRUCTURAL = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND",
               "BZERO", "BSCALE", "BLANK", "PCOUNT", "GCOUNT", "CHECKSUM", "DATASUM", "EXTNAME",
               "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZNAXIS1", "ZNAXIS2", "ZCMPTYPE", "ZTILE1", "ZTILE2")


def is_fits_name(path: Path) -> bool:
    """Return True when the file name ends like a FITS file (any case)."""
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in FITS_SUFFIXES)


@contextmanager
def _open(path: Path) -> Iterator[fits.HDUList]:
    path = Path(path)
    if path.is_dir():
        raise BadInputError(path, "is a directory, not a FITS file")
    if not path.exists():
        raise BadInputError(path, "does not exist")
    if path.stat().st_size == 0:
        raise BadInputError(path, "is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (AstropyUserWarning, VerifyWarning))
            hdul = fits.open(path, mode="readonly", memmap=False, lazy_load_hdus=False)
    except (OSError, ValueError, TypeError, IndexError) as err:
        raise BadInputError(path, f"not a readable FITS file ({err})") from err
    try:
        yield hdul
    finally:
        hdul.close()


def _image_hdu(hdul: fits.HDUList, path: Path) -> fits.hdu.base._BaseHDU:
    """Return the HDU holding the 2-D image: primary if it has one, else the first extension."""
    for hdu in hdul:
        naxis = hdu.header.get("ZNAXIS", hdu.header.get("NAXIS", 0))
        if isinstance(hdu, fits.BinTableHDU) and not isinstance(hdu, fits.CompImageHDU):
            continue
        if naxis == 2:
            return hdu
        if naxis and naxis > 2:
            dims = [hdu.header.get(f"NAXIS{i}") for i in range(1, naxis + 1)]
            raise BadInputError(path, f"holds a {naxis}-D cube {dims}; ccdred reduces 2-D images")
    raise BadInputError(path, "has no 2-D image in any HDU")


def _stream_compressed(hdu: fits.hdu.base._BaseHDU) -> bool:
    """Tell whether the whole file is a gzip/bzip2/zip stream (offsets are not on disk)."""
    info = hdu.fileinfo()
    return info is None or getattr(info["file"], "compression", None) is not None


def _data_bytes(header: fits.Header) -> int:
    """Bytes of an HDU's data on disk without the final padding (FITS standard 4.4.1)."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    count = math.prod(int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1))
    return (abs(int(header["BITPIX"])) // 8 * int(header.get("GCOUNT", 1))
            * (int(header.get("PCOUNT", 0)) + count))


def _check_complete(hdu: fits.hdu.base._BaseHDU, path: Path) -> None:
    """Refuse a file whose image data is cut short, before any work is done with it.

    Plain files are checked by size (a missing final padding is tolerated); a compressed stream
    can only be checked by decoding it.
    """
    if _stream_compressed(hdu):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", (AstropyUserWarning, VerifyWarning))
                np.asarray(hdu.data)
        except (OSError, ValueError, TypeError, EOFError) as err:
            raise BadInputError(path, f"truncated or corrupt compressed data ({err})") from err
        return
    info = hdu.fileinfo()
    if isinstance(hdu, fits.CompImageHDU):
        needed = info["datLoc"] + info["datSpan"] - (2880 - 1)
    else:
        needed = info["datLoc"] + _data_bytes(hdu.header)
    size = path.stat().st_size
    if size < needed:
        raise BadInputError(path, f"truncated: the file has {size} bytes, its header needs "
                                  f"{needed}")


def _clean_header(header: fits.Header) -> fits.Header:
    out = header.copy()
    for key in _STRUCTURAL:
        out.remove(key, ignore_missing=True, remove_all=True)
    return out


def read_header(path: str | Path, *, check_data: bool = True) -> fits.Header:
    """Return the header of the file's image HDU, checking the data is all there.

    Plain files are not read beyond their headers; a gzip-compressed file is decoded, unless
    ``check_data`` is False (the file was checked already).
    """
    path = Path(path)
    with _open(path) as hdul:
        try:
            hdu = _image_hdu(hdul, path)
            if check_data:
                _check_complete(hdu, path)
            return hdu.header.copy()
        except (OSError, ValueError) as err:
            if isinstance(err, BadInputError):
                raise
            raise BadInputError(path, f"unreadable header ({err})") from err


def read(path: str | Path) -> Frame:
    """Read a FITS file into a `Frame`.

    Raw frames give data only (float32). Files written by ccdred also give variance (from the
    ``UNCERT`` extension) and flags (from ``DQ``). Non-finite pixels are flagged NO_DATA.

    Raises
    ------
    BadInputError
        The file is missing, empty, not FITS, truncated, or holds no 2-D image.
    """
    path = Path(path)
    with _open(path) as hdul:
        hdu = _image_hdu(hdul, path)
        try:
            data = np.array(hdu.data, dtype=np.float32)
        except (OSError, ValueError, TypeError) as err:
            raise BadInputError(path, f"truncated or corrupt image data ({err})") from err
        if data.ndim != 2:
            raise BadInputError(path, f"image has shape {data.shape}; ccdred reduces 2-D images")
        names = {h.name for h in hdul}
        variance = None
        dq = None
        if "UNCERT" in names:
            variance = np.asarray(hdul["UNCERT"].data, dtype=np.float32) ** 2
        if "DQ" in names:
            dq = np.asarray(hdul["DQ"].data, dtype=np.uint16)
        header = _clean_header(hdu.header)
    nonfinite = ~np.isfinite(data)
    if nonfinite.any():
        dq = (dq if dq is not None else np.zeros(data.shape, np.uint16)) | np.where(
            nonfinite, np.uint16(_flags.Flag.NO_DATA), np.uint16(0))
    return Frame(data, variance=variance, dq=dq, header=header, path=path)


def sha256(path: str | Path) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def reduction_time() -> str:
    """UTC time of now, or of ``SOURCE_DATE_EPOCH`` when set (reproducible outputs)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    moment = (datetime.fromtimestamp(int(epoch), UTC) if epoch.isdigit()
              else datetime.now(UTC))
    return moment.isoformat(timespec="seconds")


def _atomic_writeto(hdul: fits.HDUList, path: Path) -> None:
    hdul.verify("exception")
    # astropy's own checksum comment holds the wall-clock time; ours holds the product's
    # reduction time (the one it records, else this process's), so identical products are
    # identical files wherever they were written.
    when = hdul[0].header.get("CCDRDATE") or reduction_time()
    for hdu in hdul:
        hdu.add_checksum(when=f"HDU checksum, {when}")
    with atomic_output(path) as tmp:
        hdul.writeto(tmp, overwrite=True, output_verify="exception", checksum=False)


def _dq_header() -> fits.Header:
    header = fits.Header()
    for key, value, comment in _flags.describe():
        header[key] = (value, comment)
    return header


def write(frame: Frame, path: str | Path) -> Path:
    """Write a frame atomically: image (primary), ``UNCERT``, ``MASK`` and ``DQ`` extensions.

    The layout is astropy's CCDData one, so ``CCDData.read(path)`` returns data, uncertainty
    (std dev) and mask; DS9 shows the primary image.
    """
    path = Path(path)
    header = _clean_header(frame.header)
    header.setdefault("BUNIT", "adu")
    primary = fits.PrimaryHDU(frame.data.astype(np.float32, copy=False), header=header)
    hdus = [primary]
    if frame.variance is not None:
        uncert_header = fits.Header({"UTYPE": "StdDevUncertainty", "BUNIT": header["BUNIT"]})
        std = np.sqrt(np.maximum(frame.variance, 0)).astype(np.float32)
        hdus.append(fits.ImageHDU(std, header=uncert_header, name="UNCERT"))
    hdus.append(fits.ImageHDU(frame.bad.astype(np.uint8), name="MASK"))
    hdus.append(fits.ImageHDU(frame.dq.astype(np.uint16), header=_dq_header(), name="DQ"))
    _atomic_writeto(fits.HDUList(hdus), path)
    return path


def write_dq(dq: np.ndarray, path: str | Path, header: fits.Header | None = None) -> Path:
    """Write a bad-pixel map: a uint16 DQ image in the primary HDU, its bits described."""
    path = Path(path)
    out_header = _dq_header()
    if header is not None:
        out_header.update(_clean_header(header))
    hdu = fits.PrimaryHDU(np.asarray(dq, dtype=np.uint16), header=out_header)
    _atomic_writeto(fits.HDUList([hdu]), path)
    return path


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
        self._handle = open(self.path, "rb")  # noqa: SIM115 - closed in close()

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
        read = os.preadv(self._handle.fileno(), [raw],
                         self._offset + start * cols * self._dtype.itemsize)
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
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            handle.close()
        self._hdul_cm.__exit__(None, None, None)

    def __enter__(self) -> FileRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_raw(data: np.ndarray, header: fits.Header, path: str | Path) -> Path:
    """Write a raw camera frame as 16-bit unsigned integers (BITPIX 16, BZERO 32768)."""
    path = Path(path)
    hdu = fits.PrimaryHDU(np.asarray(data, dtype=np.uint16), header=_clean_header(header))
    _atomic_writeto(fits.HDUList([hdu]), path)
    return path
