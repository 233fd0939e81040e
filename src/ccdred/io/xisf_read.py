"""Reading XISF files (PixInsight, N.I.N.A.) through the ``xisf`` package, as FITS-like frames.

An XISF image's FITS keywords are kept as they are (they mean what the capture program meant);
the XISF properties fill the FITS keywords the file lacks (exposure, filter, gain, binning,
temperatures, date, object), a ``ColorFilterArray`` element gives ``BAYERPAT``, and the file's
``XISF:CreatorApplication`` names the writing program (``SWCREATE``) when no keyword does. The
structural keywords (``NAXIS*``, ``BITPIX``, ``BZERO``) describe the XISF image itself, as they
would a FITS file holding the same samples.

Rows are stored top row first, as N.I.N.A. writes its FITS files (``ROWORDER='TOP-DOWN'``) and
as PixInsight reads FITS: row 0 of the array is the first row stored in either format, so a
Bayer pattern applies unchanged. Floating-point images PixInsight normalised to ``[0, 1]``
(``bounds="0:1"`` and every sample inside it) are scaled by 65535 back to 16-bit ADU.

Supported: monolithic files holding one 2-D image of one channel (monochrome or a colour
mosaic), UInt8/16/32 or Float32/64 samples, any byte order, attached, inline or compressed
(zlib, LZ4, Zstandard, with or without byte shuffling) data blocks. Refused with a clear error:
several images in one file, RGB (debayered) images, distributed XISF, complex samples.
"""

from __future__ import annotations

import contextlib
import io as _stdio
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import BadInputError
from ..frame import Frame

__all__ = ["XISF_SUFFIXES", "is_xisf_name", "XisfImage", "open_image", "read_header",
           "read", "XisfRows"]

XISF_SUFFIXES = (".xisf",)

_NS = "{http://www.pixinsight.com/xisf}"

PROPERTY_KEYWORDS = {
    "Instrument:ExposureTime": "EXPTIME",
    "Instrument:Filter:Name": "FILTER",
    "Instrument:Camera:Name": "INSTRUME",
    "Instrument:Camera:XBinning": "XBINNING",
    "Instrument:Camera:YBinning": "YBINNING",
    "Instrument:Sensor:Temperature": "CCD-TEMP",
    "Instrument:Sensor:TargetTemperature": "SET-TEMP",
    "Instrument:Sensor:XPixelSize": "XPIXSZ",
    "Instrument:Sensor:YPixelSize": "YPIXSZ",
    "Instrument:Telescope:Name": "TELESCOP",
    "Observation:Object:Name": "OBJECT",
    "Observation:Time:Start": "DATE-OBS",
}
"""XISF 1.0 image properties (spec section 11.5) and the FITS keyword each stands for.

``Instrument:Camera:Gain`` is e-/ADU by the specification and is handled apart (older N.I.N.A.
versions wrote the gain *setting* there)."""

_CFA_PROPERTIES = ("PCL:CFASourcePattern", "Instrument:Sensor:CFAPattern")
"""Properties that may hold the Bayer pattern when there is no ``ColorFilterArray`` element."""

_STRUCTURAL = {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND",
               "BZERO", "BSCALE", "BLANK", "PCOUNT", "GCOUNT", "CHECKSUM", "DATASUM", "END"}

_BITPIX = {"uint8": (8, None), "uint16": (16, 32768), "uint32": (32, 2147483648),
           "float32": (-32, None), "float64": (-64, None)}


def is_xisf_name(path: Path) -> bool:
    """Return True when the file name ends like an XISF file (any case)."""
    return Path(path).name.lower().endswith(XISF_SUFFIXES)


@dataclass(frozen=True)
class XisfImage:
    """The one image of an XISF file: where its samples are and its FITS-convention header."""

    path: Path
    header: fits.Header
    shape: tuple[int, int]
    """(rows, columns)."""
    dtype: np.dtype
    """Sample type with the file's byte order."""
    location: tuple
    """``("attachment", position, size)``, or ``("inline", encoding)``."""
    compressed: bool
    normalised: bool
    """Floating-point samples declared in ``[0, 1]`` (PixInsight's convention)."""


@contextlib.contextmanager
def _quiet():
    """Keep the reader's own prints (unsupported property types) off our standard output."""
    with contextlib.redirect_stdout(_stdio.StringIO()):
        yield


def _xisf_package(path: Path):
    """Return the ``xisf`` package, optional because of its licence (GPL-3.0; ccdred is BSD)."""
    try:
        import xisf
    except ImportError:
        raise BadInputError(path, "reading XISF needs the optional package xisf (GPL-3.0): "
                                  "pip install 'ccdred[xisf]'") from None
    return xisf


def _parse(path: Path):  # -> xisf.XISF
    xisf = _xisf_package(path)

    if path.is_dir():
        raise BadInputError(path, "is a directory, not an XISF file")
    if not path.exists():
        raise BadInputError(path, "does not exist")
    if path.stat().st_size == 0:
        raise BadInputError(path, "is empty (0 bytes)")
    try:
        with _quiet():
            return xisf.XISF(str(path))
    except Exception as err:  # a third-party parser of any bytes: every failure is bad input
        if isinstance(err, ValueError) and "signature" in str(err):
            raise BadInputError(path, "not a monolithic XISF file (no XISF0100 signature; "
                                      "distributed XISF is not supported)") from err
        raise BadInputError(path, f"not a readable XISF file ({type(err).__name__}: {err})"
                            ) from err


def _fits_value(text: str) -> object:
    """Turn a FITS keyword's value as XISF stores it (``'Light'``, ``300.``, ``T``) into Python."""
    text = text.strip()
    if text.startswith("'"):
        return text[1:-1 if text.endswith("'") and len(text) > 1 else None].replace(
            "''", "'").rstrip()
    if text in ("T", "F"):
        return text == "T"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _keywords(image: ET.Element) -> fits.Header:
    """Return the image's FITS keywords, typed as in a FITS header, structural ones dropped."""
    header = fits.Header()
    for element in image.findall(f"{_NS}FITSKeyword"):
        name = element.get("name", "").strip().upper().removeprefix("HIERARCH ").strip()
        value = _fits_value(element.get("value", ""))
        comment = element.get("comment", "")
        if not name or name in _STRUCTURAL:
            continue
        if name in ("COMMENT", "HISTORY"):
            header.add_comment(comment) if name == "COMMENT" else header.add_history(comment)
            continue
        if len(name) > 8 or " " in name:
            name = f"HIERARCH {name}"  # as the FITS file it came from had it
        try:
            header.append(fits.Card(name, value, comment), end=True)
        except (ValueError, TypeError):
            header.append(fits.Card(name, str(value), comment[:40]), end=True)
    return header


def _property_value(prop: dict) -> object:
    value = prop.get("value")
    if prop.get("type") == "TimePoint" and isinstance(value, str):
        value = value.strip().removesuffix("Z").removesuffix("+00:00")
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _add_properties(header: fits.Header, properties: dict, image: ET.Element) -> None:
    """Fill FITS keywords the file lacks from the XISF properties and the CFA element."""
    for identifier, keyword in PROPERTY_KEYWORDS.items():
        if keyword in header or identifier not in properties:
            continue
        value = _property_value(properties[identifier])
        if isinstance(value, str | int | float | bool):
            header[keyword] = (value, f"from XISF {identifier}")
    _add_gain(header, properties)
    if "BAYERPAT" not in header:
        cfa = image.find(f"{_NS}ColorFilterArray")
        pattern = cfa.get("pattern") if cfa is not None else None
        if pattern is None:
            pattern = next((_property_value(properties[p]) for p in _CFA_PROPERTIES
                            if p in properties), None)
        if isinstance(pattern, str) and pattern.strip():
            header["BAYERPAT"] = (pattern.strip().upper(), "from XISF ColorFilterArray")
            header.setdefault("ROWORDER", "TOP-DOWN")


def _add_gain(header: fits.Header, properties: dict) -> None:
    """``Instrument:Camera:Gain`` as ``EGAIN`` (e-/ADU), unless it repeats the gain setting.

    Older N.I.N.A. versions wrote the camera's gain *setting* into this property, beside the
    same number in the ``GAIN`` keyword; newer ones write e-/ADU, as the specification says.
    """
    prop = properties.get("Instrument:Camera:Gain")
    if prop is None or "EGAIN" in header:
        return
    value = _property_value(prop)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    setting = header.get("GAIN")
    if isinstance(setting, int | float) and float(setting) == float(value):
        return
    header["EGAIN"] = (float(value), "[e-/ADU] from XISF Instrument:Camera:Gain")


def _add_creator(header: fits.Header, file_properties: dict) -> None:
    """``XISF:CreatorApplication`` as ``SWCREATE`` when no keyword names the writing program.

    The program decides what ``GAIN`` means (``instruments/programs.toml``): N.I.N.A.'s is a
    gain setting in XISF files as in FITS ones.
    """
    from ..instruments import load_conventions

    if any(key in header for key in load_conventions().keywords["software"]):
        return
    creator = _property_value(file_properties.get("XISF:CreatorApplication") or {})
    if isinstance(creator, str) and creator.strip():
        header["SWCREATE"] = (creator.strip()[:68], "from XISF:CreatorApplication")


def _image_element(meta: object, path: Path) -> ET.Element:
    images = meta.findall(f"{_NS}Image")
    if not images:
        raise BadInputError(path, "holds no image")
    if len(images) > 1:
        raise BadInputError(path, f"holds {len(images)} images; ccdred reads XISF files with "
                                  "one image (save each frame on its own)")
    return images[0]


def open_image(path: str | Path) -> XisfImage:
    """Parse an XISF file's header: its one image, where the samples are, a FITS header.

    Raises
    ------
    BadInputError
        Missing, empty or not XISF; several images; not one 2-D channel; unknown sample format.
    """
    path = Path(path)
    parsed = _parse(path)
    element = _image_element(parsed.get_metadata_xml(), path)
    meta = parsed.get_images_metadata()[0]
    geometry = meta["geometry"]
    if len(geometry) != 3:
        raise BadInputError(path, f"image geometry {element.get('geometry')}: ccdred reduces "
                                  "2-D images")
    width, height, channels = geometry
    if channels != 1:
        raise BadInputError(path, f"holds a {channels}-channel "
                                  f"({element.get('colorSpace', '?')}) image; ccdred reduces raw "
                                  "frames: one channel, monochrome or a colour mosaic")
    dtype = meta["dtype"]
    if element.get("byteOrder", "little") == "big":
        dtype = dtype.newbyteorder(">")
    header = _keywords(element)
    _add_properties(header, meta.get("XISFProperties", {}), element)
    _add_creator(header, parsed.get_file_metadata())
    bitpix, bzero = _BITPIX[dtype.name]
    header.insert(0, ("NAXIS2", height, "rows"))
    header.insert(0, ("NAXIS1", width, "columns"))
    header.insert(0, ("NAXIS", 2))
    header.insert(0, ("BITPIX", bitpix, f"XISF {element.get('sampleFormat')} samples"))
    if bzero is not None:
        header.insert(4, ("BZERO", bzero))
    bounds = element.get("bounds", "")
    return XisfImage(path=path, header=header, shape=(height, width), dtype=dtype,
                     location=meta["location"], compressed="compression" in meta,
                     normalised=dtype.kind == "f" and bounds.replace(" ", "") in ("0:1", "0.0:1.0"))


def _check_complete(image: XisfImage) -> None:
    if image.location[0] != "attachment":
        return
    _, position, size = image.location
    if not image.compressed and size < image.shape[0] * image.shape[1] * image.dtype.itemsize:
        raise BadInputError(image.path, f"data block of {size} bytes is smaller than its "
                                        f"{image.shape[1]}x{image.shape[0]} image")
    have = image.path.stat().st_size
    if have < position + size:
        raise BadInputError(image.path, f"truncated: the file has {have} bytes, its header "
                                        f"needs {position + size}")


def read_header(path: str | Path, *, check_data: bool = True) -> fits.Header:
    """Return an XISF file's image header in FITS conventions, checking the data is all there."""
    image = open_image(path)
    if check_data:
        _check_complete(image)
    return image.header.copy()


def _decode(image: XisfImage) -> tuple[np.ndarray, bool]:
    """All samples as a 2-D float32 array (ADU), and whether normalised floats were scaled."""
    xisf = _xisf_package(image.path)

    _check_complete(image)
    try:
        with _quiet():
            samples = xisf.XISF(str(image.path)).read_image(0, data_format="channels_first")[0]
    except Exception as err:  # a codec or the reader failing on bad bytes: bad input
        raise BadInputError(image.path, f"unreadable or corrupt XISF image data "
                                        f"({type(err).__name__}: {err})") from err
    return _to_adu(np.asarray(samples), image)


def _to_adu(samples: np.ndarray, image: XisfImage) -> tuple[np.ndarray, bool]:
    samples = np.asarray(samples).view(image.dtype)  # the reader ignores byteOrder="big"
    data = samples.astype(np.float32)
    scaled = image.normalised and _is_normalised(data)
    if scaled:
        data *= np.float32(65535)
    data[np.isinf(data)] = np.nan
    return data, scaled


def _is_normalised(data: np.ndarray) -> bool:
    finite = data[np.isfinite(data)]
    return finite.size > 0 and float(finite.min()) >= 0.0 and float(finite.max()) <= 1.0


def read(path: str | Path) -> Frame:
    """Read an XISF file into a `Frame` (data only, float32; non-finite pixels flagged)."""
    from .. import flags as _flags

    image = open_image(path)
    data, scaled = _decode(image)
    header = image.header.copy()
    for key in ("BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "BZERO"):
        header.remove(key, ignore_missing=True)
    if scaled:
        header["XISFSCAL"] = (65535, "XISF samples in [0,1] were scaled to 16-bit ADU")
    nonfinite = ~np.isfinite(data)
    dq = None
    if nonfinite.any():
        dq = np.where(nonfinite, np.uint16(_flags.Flag.NO_DATA), np.uint16(0))
    return Frame(data, dq=dq, header=header, path=Path(path))


class XisfRows:
    """Row blocks of an XISF image, streamed like `ccdred.io.FileRows`.

    An uncompressed attached integer block is read with positioned reads of just the rows
    asked for; otherwise (compressed, inline, or floating point that may be normalised) the
    image is decoded once.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        image = open_image(self.path)
        _check_complete(image)
        self.header = image.header
        self.shape = image.shape
        self._image = image
        self._handle = None
        self._decoded = None
        if image.location[0] == "attachment" and not image.compressed and (
                image.dtype.kind in "ui"):
            self._handle = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        else:
            self._decoded = _decode(image)[0]

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Return rows ``start:stop`` as float32 (NaN where a float sample is not finite)."""
        if self._decoded is not None:
            return self._decoded[start:stop].copy()
        cols = self.shape[1]
        raw = np.empty((stop - start) * cols, self._image.dtype)
        offset = self._image.location[1] + start * cols * raw.itemsize
        if os.preadv(self._handle.fileno(), [raw], offset) != raw.nbytes:
            raise BadInputError(self.path, f"truncated: rows {start}-{stop} could not be read")
        return raw.reshape(stop - start, cols).astype(np.float32)

    def close(self) -> None:
        """Release the file."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()
        self._decoded = None
