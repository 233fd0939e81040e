"""Writing FITS files atomically (temporary file + rename), with checksums."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

from .. import flags as _flags
from ..atomic import atomic_output
from ..frame import Frame
from .digests import HashingWriter, remember
from .fits_read import _clean_header


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
    # The bytes are hashed on their way to disk, so the manifest never reads a product back.
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        writer = HashingWriter(handle)
        hdul.writeto(writer, output_verify="exception", checksum=False)
    remember(path, writer.digest.hexdigest())


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


def write_raw(data: np.ndarray, header: fits.Header, path: str | Path) -> Path:
    """Write a raw camera frame as 16-bit unsigned integers (BITPIX 16, BZERO 32768)."""
    path = Path(path)
    hdu = fits.PrimaryHDU(np.asarray(data, dtype=np.uint16), header=_clean_header(header))
    _atomic_writeto(fits.HDUList([hdu]), path)
    return path
