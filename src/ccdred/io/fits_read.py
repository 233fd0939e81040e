"""Reading FITS files: headers without data, whole frames, completeness checks.

`read` and `read_header` are the readers the whole tool uses: an ``.xisf`` file is handed to
`ccdred.io.xisf_read`, so every command that reads FITS reads XISF too.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.utils.exceptions import AstropyUserWarning

from .. import flags as _flags
from ..errors import BadInputError
from ..frame import Frame
from .xisf_read import is_xisf_name

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz", ".fz")

_STRUCTURAL = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND",
               "BZERO", "BSCALE", "BLANK", "PCOUNT", "GCOUNT", "CHECKSUM", "DATASUM", "EXTNAME",
               "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZNAXIS1", "ZNAXIS2", "ZCMPTYPE", "ZTILE1", "ZTILE2")


def is_fits_name(path: Path) -> bool:
    """Return True when the file name ends like a FITS file (any case)."""
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in FITS_SUFFIXES)


def is_image_name(path: Path) -> bool:
    """Return True when the file name ends like an image ccdred reads: FITS or XISF."""
    return is_fits_name(path) or is_xisf_name(path)


@contextmanager
def _open(path: Path) -> Iterator[fits.HDUList]:
    path = Path(path)
    info = _stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise BadInputError(path, "is a directory, not a FITS file")
    if not stat.S_ISREG(info.st_mode):
        raise BadInputError(path, "is not a regular file (a pipe, socket or device)")
    if info.st_size == 0:
        raise BadInputError(path, "is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (AstropyUserWarning, VerifyWarning))
            hdul = fits.open(path, mode="readonly", memmap=False, lazy_load_hdus=False)
    except PermissionError as err:
        raise BadInputError(path, "cannot be read: permission denied") from err
    except OSError as err:
        if err.errno in (errno.EMFILE, errno.ENFILE):  # the process's limit, not the file
            raise OSError(err.errno, f"cannot open {path}: too many open files (ulimit -n "
                                     f"is {_open_files_limit()})") from err
        raise BadInputError(path, f"not a readable FITS file ({err})") from err
    except (ValueError, TypeError, IndexError) as err:
        raise BadInputError(path, f"not a readable FITS file ({err})") from err
    try:
        yield hdul
    finally:
        hdul.close()


def _open_files_limit() -> str:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)


def _stat(path: Path) -> os.stat_result:
    """Stat a path, telling a missing file from a broken or looping link."""
    try:
        return path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise BadInputError(path, "is a symbolic link loop") from err
        if path.is_symlink():
            raise BadInputError(path, f"is a broken symbolic link (to "
                                      f"{os.readlink(path)})") from err
        if isinstance(err, PermissionError):
            raise BadInputError(path, "cannot be read: permission denied") from err
        raise BadInputError(path, f"does not exist ({err.strerror})") from err


def _image_hdu(hdul: fits.HDUList, path: Path) -> fits.hdu.base._BaseHDU:
    """Return the HDU holding the 2-D image: primary if it has one, else the first extension."""
    for hdu in hdul:
        naxis = hdu.header.get("ZNAXIS", hdu.header.get("NAXIS", 0))
        if isinstance(hdu, fits.BinTableHDU) and not isinstance(hdu, fits.CompImageHDU):
            continue
        if naxis == 2:
            prefix = "ZNAXIS" if "ZNAXIS" in hdu.header else "NAXIS"
            sizes = [hdu.header.get(f"{prefix}{i}") for i in (1, 2)]
            if not all(isinstance(n, int) and n > 0 for n in sizes):
                raise BadInputError(path, f"has an empty image ({prefix}1={sizes[0]}, "
                                          f"{prefix}2={sizes[1]})")
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
    if is_xisf_name(path):
        from . import xisf_read

        return xisf_read.read_header(path, check_data=check_data)
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
    """Read a FITS (or XISF) file into a `Frame`.

    Raw frames give data only (float32). Files written by ccdred also give variance (from the
    ``UNCERT`` extension) and flags (from ``DQ``). Non-finite pixels are flagged NO_DATA.

    Raises
    ------
    BadInputError
        The file is missing, empty, not FITS, truncated, or holds no 2-D image.
    """
    path = Path(path)
    if is_xisf_name(path):
        from . import xisf_read

        return xisf_read.read(path)
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
    return Frame(data, variance=variance, dq=flag_nonfinite(data, dq), header=header,
                 path=path)


def flag_nonfinite(data: np.ndarray, dq: np.ndarray | None) -> np.ndarray | None:
    """Return ``dq`` with NO_DATA set where ``data`` is not finite (as `read` flags them)."""
    nonfinite = ~np.isfinite(data)
    if nonfinite.any():
        dq = (dq if dq is not None else np.zeros(data.shape, np.uint16)) | np.where(
            nonfinite, np.uint16(_flags.Flag.NO_DATA), np.uint16(0))
    return dq

