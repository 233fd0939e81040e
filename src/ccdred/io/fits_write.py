"""Writing FITS files atomically (temporary file + rename), with checksums."""

from __future__ import annotations

import functools
import gzip
import importlib
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

from .. import flags as _flags
from ..atomic import atomic_output, release_written
from ..frame import Frame
from .digests import HashingWriter, release_previous, remember
from .fits_read import _clean_header, flag_nonfinite


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
        _add_checksum(hdu, f"HDU checksum, {when}")
    # The bytes are hashed on their way to disk, so the manifest never reads a product back.
    release = release_written()
    if release:
        release_previous(path)
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        writer = HashingWriter(handle, release=release)
        hdul.writeto(writer, output_verify="exception", checksum=False)
        writer.finish()
    remember(path, writer.digest.hexdigest())


def _add_checksum(hdu: fits.hdu.base._BaseHDU, when: str) -> None:
    """``hdu.add_checksum(when=when)``: the same cards, with the data summed in one pass.

    astropy sums the data with numpy through a byte-swapping cast; that took as long as
    writing the file. Arrays it would convert first (unsigned integers stored with BZERO,
    arrays in the machine's byte order) and compressed HDUs go the usual way.
    """
    header_checksum = getattr(hdu, "_calculate_checksum", None)  # astropy's own, private
    if header_checksum is None or not _written_as_is(hdu):
        hdu.add_checksum(when=when)
        return
    from ..kernels.checksum import fits_datasum

    datasum = fits_datasum(hdu.data)
    hdu.header["DATASUM"] = (str(datasum), when)
    hdu.header.set("CHECKSUM", "0" * 16, when, before="DATASUM")
    hdu.header["CHECKSUM"] = header_checksum(np.uint32(datasum))


def _written_as_is(hdu: fits.hdu.base._BaseHDU) -> bool:
    """Tell whether astropy writes the HDU's array bytes unchanged.

    That is an unscaled image of big-endian floats or signed integers (2 bytes or more), or
    of unsigned bytes.
    """
    if type(hdu) not in (fits.PrimaryHDU, fits.ImageHDU) or hdu.data is None:
        return False
    if "BZERO" in hdu.header or "BSCALE" in hdu.header:
        return False
    data = hdu.data
    kind, size = data.dtype.kind, data.dtype.itemsize
    as_is = (kind in "fi" and size > 1 and data.dtype.byteorder == ">") or (kind == "u"
                                                                           and size == 1)
    return as_is and data.flags.c_contiguous and data.nbytes % 4 == 0


def _dq_header() -> fits.Header:
    header = fits.Header()
    for key, value, comment in _flags.describe():
        header[key] = (value, comment)
    return header


LAYOUTS = ("ccddata", "compact")
"""How a product is laid out on disk (see `write`)."""

_QUANTIZE_LEVEL = 16
"""Compact layout: float images are quantised to 1/16 of their own noise (fpack's default)."""


_FITS_FLOAT32 = np.dtype(">f4")
"""float32 in FITS's byte order. Images handed to astropy in it are checksummed and written
as they are; in the machine's order, astropy swaps each one in place four times (twice for
the checksum, twice to write it)."""


def _std_dev(variance: np.ndarray) -> np.ndarray:
    """Return the uncertainty image: the square root of the variance (0 where negative).

    float32 in FITS's byte order, made in one new array when the variance is float32.
    """
    std = np.maximum(variance, 0)
    np.sqrt(std, out=std)
    if std.dtype != np.float32:  # rounded once, after the square root, as before
        return std.astype(_FITS_FLOAT32)
    return std.byteswap(inplace=True).view(_FITS_FLOAT32)


def as_read_back(frame: Frame) -> Frame:
    """Return ``frame`` as `read` gives it back from a `write` in the ``ccddata`` layout.

    The data as float32, the variance as the square of the float32 uncertainty written
    (negative variances become 0), NO_DATA set where the data are not finite: what is
    measured on it is what is measured on the file. The header is the frame's (without the
    cards writing adds: checksums, ``BUNIT`` when missing).
    """
    data = frame.data.astype(np.float32, copy=False)
    variance = None
    if frame.variance is not None:
        variance = np.square(_std_dev(frame.variance).astype(np.float32))
    return frame.replace(data=data, variance=variance, dq=flag_nonfinite(data, frame.dq))


def write(frame: Frame, path: str | Path, *, layout: str = "ccddata") -> Path:
    """Write a frame atomically in one of two layouts (`LAYOUTS`).

    ``ccddata`` (the default): image in the primary HDU, ``UNCERT`` (std dev), ``MASK``
    (uint8, 1 where any bad flag is set) and ``DQ`` (the bit flags) extensions. It is
    astropy's CCDData layout: ``CCDData.read(path)`` returns data, uncertainty and mask; DS9
    and every FITS reader show the primary image. 4 + 4 + 1 + 2 bytes a pixel.

    ``compact``: an empty primary HDU (the header's cards, for readers that look there), then
    tile-compressed (Rice) ``SCI`` (the image), ``UNCERT`` and ``DQ`` extensions and no
    ``MASK`` (it repeats DQ). DQ is compressed losslessly; the float images are quantised to
    1/16 of their noise with subtractive dithering (fpack's default: the loss is a 1/sqrt(12)
    sixteenth of a sigma, far below the noise) and a fixed seed (the same bytes each time).
    ccdred, astropy (``fits.open``, ``CCDData.read``: data and uncertainty, the mask is None),
    DS9, fpack/funpack and CFITSIO programs read it.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    path = Path(path)
    header = _clean_header(frame.header)
    header.setdefault("BUNIT", "adu")
    if layout == "compact":
        _atomic_writeto(fits.HDUList(_compact_hdus(frame, header)), path)
        return path
    primary = fits.PrimaryHDU(frame.data.astype(_FITS_FLOAT32), header=header)
    hdus = [primary]
    if frame.variance is not None:
        uncert_header = fits.Header({"UTYPE": "StdDevUncertainty", "BUNIT": header["BUNIT"]})
        hdus.append(fits.ImageHDU(_std_dev(frame.variance), header=uncert_header,
                                  name="UNCERT"))
    hdus.append(fits.ImageHDU(frame.bad.astype(np.uint8), name="MASK"))
    hdus.append(fits.ImageHDU(frame.dq.astype(np.uint16), header=_dq_header(), name="DQ"))
    _atomic_writeto(fits.HDUList(hdus), path)
    return path


def _gzip_without_timestamp() -> None:
    """Make astropy's gzipped tiles the same bytes at every write.

    A float tile quantisation cannot take (a constant one, as an uncertainty often is) is
    stored gzipped, and gzip stamps it with the current second: two writes of one frame
    differed. MTIME 0 is gzip's "no time stamp" (RFC 1952). Without that module (another
    astropy), the write stays valid, only not byte-reproducible.
    """
    try:
        codecs = importlib.import_module("astropy.io.fits.hdu.compressed._codecs")
    except ImportError:
        return
    if getattr(codecs, "gzip_compress", None) is gzip.compress:
        codecs.gzip_compress = functools.partial(gzip.compress, mtime=0)


def _compact_hdus(frame: Frame, header: fits.Header) -> list[fits.hdu.base.ExtensionHDU]:
    _gzip_without_timestamp()
    lossy = {"compression_type": "RICE_1", "quantize_level": _QUANTIZE_LEVEL,
             "quantize_method": 2, "dither_seed": 1}  # SUBTRACTIVE_DITHER_2 keeps zeros
    hdus = [fits.PrimaryHDU(header=header.copy()),
            fits.CompImageHDU(frame.data.astype(np.float32, copy=False), header=header.copy(),
                              name="SCI", **lossy)]
    if frame.variance is not None:
        uncert_header = fits.Header({"UTYPE": "StdDevUncertainty", "BUNIT": header["BUNIT"]})
        std = np.sqrt(np.maximum(frame.variance, 0)).astype(np.float32)
        hdus.append(fits.CompImageHDU(std, header=uncert_header, name="UNCERT", **lossy))
    hdus.append(fits.CompImageHDU(frame.dq.astype(np.uint16), header=_dq_header(), name="DQ",
                                  compression_type="RICE_1"))
    return hdus


def write_dq(dq: np.ndarray, path: str | Path, header: fits.Header | None = None) -> Path:
    """Write a bad-pixel map: a uint16 DQ image in the primary HDU, its bits described."""
    path = Path(path)
    out_header = _dq_header()
    if header is not None:
        out_header.update(_clean_header(header))
    hdu = fits.PrimaryHDU(np.asarray(dq, dtype=np.uint16), header=out_header)
    _atomic_writeto(fits.HDUList([hdu]), path)
    return path


def write_raw(data: np.ndarray, header: fits.Header, path: str | Path) -> Path:
    """Write a raw camera frame as 16-bit unsigned integers (BITPIX 16, BZERO 32768)."""
    path = Path(path)
    hdu = fits.PrimaryHDU(np.asarray(data, dtype=np.uint16), header=_clean_header(header))
    _atomic_writeto(fits.HDUList([hdu]), path)
    return path
