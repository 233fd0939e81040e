"""Find a night's FITS and XISF files, classify each (bias/dark/flat/science), read metadata.

Classification tries, in order: the frame-type header keywords, tokens of the file name, then
folder names; the conventions are data in ``instruments/conventions.toml``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from astropy.io import fits

from .errors import BadInputError
from .files import Duplicate, find_duplicates, find_fits, require_directory, walk_fits
from .geometry import ReadoutGeometry, readout_geometry
from .instruments import Conventions, load_conventions, normal
from .instruments.camera import read_camera
from .instruments.headers import (
    as_float,
    as_int,
    as_text,
    header_binning,
    header_exptime,
    header_value,
    positive,
)
from .io import read_header

__all__ = ["FrameInfo", "Setup", "scan", "describe_file", "describe_header", "classify",
           "header_exptime", "KINDS", "find_fits", "camera_name", "Duplicate", "find_duplicates"]

KINDS = load_conventions().kinds
"""Every frame type: ``bias``, ``darkflat``, ``dark``, ``flat``, ``science``."""


class Setup(NamedTuple):
    """What frames must share to calibrate each other: readout geometry and camera settings.

    A dark or flat taken at another gain setting, offset or readout mode, or a colour mosaic
    against a monochrome frame, is never applied.
    """

    shape: tuple[int, int] | None
    """(rows, columns) after trimming."""
    binning: tuple[int, int]
    gain_setting: float | None = None
    offset: float | None = None
    readout_mode: str | None = None
    cfa: str | None = None
    """The Bayer pattern at the first pixel, None for a monochrome sensor."""
    instrument: str | None = None
    """The camera (INSTRUME), compared without case or repeated spaces; None when unnamed."""

    def describe(self) -> str:
        """Return the setup in a few words, e.g. ``1304x976 bin 1x1, gain 180, RGGB``."""
        parts = [f"{self.shape[1]}x{self.shape[0]}" if self.shape else "?",
                 f"bin {self.binning[0]}x{self.binning[1]}"]
        for name, value in (("gain", self.gain_setting), ("offset", self.offset),
                            ("mode", self.readout_mode)):
            if value is not None:
                parts.append(f"{name} {value:g}" if isinstance(value, float) else
                             f"{name} {value}")
        if self.cfa:
            parts.append(self.cfa)
        if self.instrument:
            parts.insert(0, self.instrument)
        return ", ".join(parts)


@dataclass(frozen=True)
class FrameInfo:
    """What a raw file is and the keywords that matter for planning a night.

    ``shape`` is (rows, columns); ``binning`` is (x, y). ``error`` says why a file cannot be used
    (unreadable, or its type cannot be told); such files have ``kind`` None or are skipped.
    """

    path: Path
    kind: str | None = None
    kind_source: str = ""
    exptime: float | None = None
    darktime: float | None = None
    filter: str | None = None
    binning: tuple[int, int] = (1, 1)
    shape: tuple[int, int] | None = None
    temperature: float | None = None
    date: str | None = None
    object: str | None = None
    instrument: str | None = None
    telescope: str | None = None
    gain: float | None = None
    """Electrons per ADU as the header gives them (per ADC code when ``gain_depth`` is 'adc')."""
    gain_depth: str = "saved"
    gain_note: str = ""
    """How GAIN and EGAIN were read (a gain setting is never taken for e-/ADU)."""
    read_noise: float | None = None
    saturation: float | None = None
    program: str | None = None
    """The capture program that wrote the file, when the header tells."""
    gain_setting: float | None = None
    offset: float | None = None
    readout_mode: str | None = None
    set_temperature: float | None = None
    adc_bits: int | None = None
    cfa: str | None = None
    """Bayer pattern at the first pixel (``RGGB``...); None for a monochrome sensor."""
    bitpix: int | None = None
    bzero: float | None = None
    bscale: float | None = None
    data_shape: tuple[int, int] | None = None
    """(rows, columns) after trimming to TRIMSEC/DATASEC; ``shape`` when there is none."""
    overscan: str | None = None
    """The usable BIASSEC, as a FITS section, or None."""
    notes: tuple[str, ...] = ()
    """What in the header was ignored, and why (e.g. a nonsensical BIASSEC)."""
    error: str | None = None
    product: bool = False
    """A file ccdred wrote (its header has CCDRKEY or CCDRED): never taken for a raw frame."""

    @property
    def ok(self) -> bool:
        """True when the file can be used."""
        return self.error is None and self.kind is not None and not self.product

    @property
    def setup(self) -> Setup:
        """What masters must match: shape after trimming, binning and camera settings."""
        return Setup(self.data_shape or self.shape, self.binning, self.gain_setting,
                     self.offset, self.readout_mode, self.cfa, camera_name(self.instrument))

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out = asdict(self)
        out["path"] = str(self.path)
        return out


def camera_name(instrument: str | None) -> str | None:
    """Return how a camera's name is compared: case and runs of spaces do not count."""
    text = " ".join(instrument.split()).casefold() if instrument else ""
    return text or None


def _tokens(name: str) -> list[str]:
    stem = name.lower()
    for suffix in (".gz", ".fz", ".fits", ".fit", ".fts"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return [t for t in re.split(r"[^a-z0-9]+", stem) if t]


def classify(header: fits.Header | None, path: Path, root: Path | None = None,
             conventions: Conventions | None = None) -> tuple[str | None, str]:
    """Tell the frame type of a file.

    Returns
    -------
    kind : str or None
        One of `KINDS` (``bias``, ``darkflat``, ``dark``, ``flat``, ``science``); None when
        nothing tells.
    source : str
        How it was decided (e.g. ``"IMAGETYP='Dark Frame'"``), or why it could not be.
    """
    conv = conventions or load_conventions()
    by_header = _kind_from_header(header, conv)
    by_name = _kind_from_file_name(path, conv)
    by_folder = _kind_from_folders(path, root, conv)
    for hint in (by_name, by_folder):
        if by_header[0] == "dark" and hint[0] == "darkflat":
            # Programs without a dark-flat type (ASIAIR, INDI) write darks in a dark-flat folder.
            return "darkflat", f"{by_header[1]} in a dark-flat {hint[1]}"
    for found in (by_header, by_name, by_folder):
        if found[0]:
            return found
    seen = [f"{k}={as_text(header_value(header, [k]))!r}" for k in conv.type_keywords
            if header is not None and header_value(header, [k]) is not None]
    hint = f" ({', '.join(seen)} not understood)" if seen else ""
    return None, (f"cannot tell the frame type: no known type keyword{hint}, no hint in the "
                  f"file name or folder")


def _kind_from_header(header: fits.Header | None, conv: Conventions) -> tuple[str | None, str]:
    if header is None:
        return None, ""
    for key in conv.type_keywords:
        raw = as_text(header_value(header, [key]))
        if raw is not None and (kind := conv.type_values.get(normal(raw))):
            return kind, f"{key}={raw!r}"
    return None, ""


def _kind_from_file_name(path: Path, conv: Conventions) -> tuple[str | None, str]:
    """Return the frame type the file name tells, and how."""
    tokens = _tokens(path.name)
    # Two neighbouring tokens first: "Dark_Flat_001" is a dark-flat, not a dark.
    for token in [a + b for a, b in zip(tokens, tokens[1:], strict=False)] + tokens:
        if kind := conv.filename_tokens.get(token):
            return kind, f"file name token {token!r}"
    lowered = path.name.lower()
    for substring, kind in conv.filename_substrings:
        if substring in lowered:
            return kind, f"file name contains {substring!r}"
    return None, ""


def _kind_from_folders(path: Path, root: Path | None, conv: Conventions
                       ) -> tuple[str | None, str]:
    """Return the frame type the nearest telling folder gives, and which."""
    parents = path.parent.relative_to(root).parts if root and path.is_relative_to(root) else (
        path.parent.parts[-3:])
    for folder in reversed(parents):
        if kind := conv.folders.get(normal(folder)):
            return kind, f"folder {folder!r}"
    return None, ""


def describe_file(path: Path, root: Path | None = None,
                  conventions: Conventions | None = None) -> FrameInfo:
    """Read a file's header and return its `FrameInfo` (errors are recorded, not raised).

    With the shipped conventions, a file unchanged since this process described it (same
    device, inode, size, modification and status-change times) is not read again: a run
    plans a night more than once (the plan printed, then each pass of
    `ccdred.pipeline.reduce_nights`). A file changed in the last two seconds is always read
    (a file system's clock may not tick between two writes: FAT's ticks every 2 s, Linux's
    before 6.13 every few milliseconds), and so is one that could not be read.
    """
    if conventions is not None and conventions is not load_conventions():
        return _read_and_describe(path, root, conventions)
    try:
        stat = os.stat(path)
    except OSError:
        return _read_and_describe(path, root, None)
    key = (Path(path), None if root is None else Path(root), stat.st_dev, stat.st_ino,
           stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    known = _DESCRIBED.get(key)
    if known is not None:
        return known
    info = _read_and_describe(path, root, None)
    changed = max(stat.st_mtime_ns, stat.st_ctime_ns)
    if info.error is None and time.time_ns() - changed > _SETTLED_NS:
        with _DESCRIBED_LOCK:
            if len(_DESCRIBED) >= _REMEMBERED_FILES:
                _DESCRIBED.pop(next(iter(_DESCRIBED)))  # the oldest
            _DESCRIBED[key] = info
    return info


_SETTLED_NS = 2_000_000_000
"""A file changed this long ago has a time stamp that its next change moves."""
_REMEMBERED_FILES = 65_536
_DESCRIBED: dict[tuple[Any, ...], FrameInfo] = {}
"""What `describe_file` found, per file version (a `FrameInfo` is frozen)."""
_DESCRIBED_LOCK = threading.Lock()


def _read_and_describe(path: Path, root: Path | None, conventions: Conventions | None
                       ) -> FrameInfo:
    try:
        header = read_header(path)
    except BadInputError as err:
        return FrameInfo(path=path, error=err.problem)
    return describe_header(path, header, root, conventions)


def describe_header(path: Path, header: fits.Header, root: Path | None = None,
                    conventions: Conventions | None = None) -> FrameInfo:
    """`describe_file` of a header already read from ``path``."""
    conv = conventions or load_conventions()
    kind, source = classify(header, path, root, conv)
    keys = conv.keywords
    temperature = as_float(header_value(header, keys["temperature"]))
    if temperature is not None and temperature in conv.temperature_sentinels:
        temperature = None
    naxis1 = header_value(header, ["ZNAXIS1", "NAXIS1"])
    naxis2 = header_value(header, ["ZNAXIS2", "NAXIS2"])
    shape = (int(naxis2), int(naxis1)) if naxis1 and naxis2 else None
    geometry = readout_geometry(header, shape) if shape else ReadoutGeometry()
    info = FrameInfo(
        path=path,
        kind=kind,
        kind_source=source,
        exptime=header_exptime(header, conv),
        darktime=as_float(header_value(header, keys["darktime"])),
        filter=as_text(header_value(header, keys["filter"])),
        binning=header_binning(header, conv),
        shape=shape,
        data_shape=geometry.data_shape(shape) if shape else None,
        overscan=geometry.biassec.fits() if geometry.biassec else None,
        notes=geometry.notes,
        temperature=temperature,
        date=as_text(header_value(header, keys["date"])),
        object=as_text(header_value(header, keys["object"])),
        instrument=as_text(header_value(header, keys["instrument"])),
        telescope=as_text(header_value(header, keys["telescope"])),
        saturation=positive(as_float(header_value(header, keys["saturation"]))),
        bitpix=as_int(header_value(header, ["ZBITPIX", "BITPIX"])),
        bzero=as_float(header_value(header, ["BZERO"])),
        bscale=as_float(header_value(header, ["BSCALE"])),
        error=None if kind else source,
        product="CCDRKEY" in header or "CCDRED" in header,
        **_camera_fields(header, shape, conv),
    )
    problem = _timing_problem(header, kind, info, conv) or _binning_problem(header, kind, conv)
    if problem:
        return replace(info, error=problem)
    if info.darktime == 0 and (info.exptime or 0) > 0:
        # Some programs (CAFOS) write DARKTIME = 0 on every frame: not recorded.
        return replace(info, darktime=None, notes=(*info.notes, "DARKTIME = 0 with a non-zero "
                                                   "EXPTIME taken as not recorded"))
    return info


def _binning_problem(header: fits.Header, kind: str | None, conv: Conventions) -> str | None:
    """Say when XBINNING/YBINNING (which decide the setup) are given but not whole numbers >= 1."""
    if kind is None:
        return None
    for names in (conv.keywords["xbinning"], conv.keywords["ybinning"]):
        found = next((k for k in names if header_value(header, [k]) is not None), None)
        if found is None:
            continue
        raw = header_value(header, [found])
        number = as_float(raw)
        if number is None or number < 1 or number != int(number):
            return (f"{kind} frame with a bad binning: {found}={raw!r} is not a whole number "
                    f">= 1; cannot tell which frames it matches")
    return None


def _timing_problem(header: fits.Header, kind: str | None, info: FrameInfo,
                    conv: Conventions) -> str | None:
    """Say what is wrong with a frame's EXPTIME or DARKTIME, which scale its dark.

    Bias frames are exempt (their exposure is never used). A value given but not a finite,
    non-negative number is refused rather than ignored; a dark's exposure must be positive.
    """
    if kind is None or kind == "bias":
        return None
    keys = conv.keywords
    for what, names in (("exposure time", keys["exptime"]), ("dark time", keys["darktime"])):
        found = next((k for k in names if header_value(header, [k]) is not None), None)
        if found is None:
            continue
        raw = header_value(header, [found])
        number = as_float(raw)
        if number is None or number < 0:
            bad = "not a finite number" if number is None else "negative"
            return (f"{kind} frame with a bad {what}: {found}={raw!r} is {bad}; cannot match "
                    f"or scale a dark")
    if kind in conv.needs_exptime and info.exptime is None:
        names = "/".join(keys["exptime"][:3])
        return (f"{kind} frame without an exposure time ({names} missing or not a number): "
                f"cannot match or scale a dark")
    if kind in ("dark", "darkflat") and info.exptime == 0:
        return (f"{kind} frame of 0 s exposure ({keys['exptime'][0]}=0): a dark scale factor "
                f"would be 0 or infinite (is it a bias?)")
    return None


def _camera_fields(header: fits.Header, shape: tuple[int, int] | None,
                   conv: Conventions) -> dict[str, Any]:
    camera = read_camera(header, shape, conv)
    return {"gain": camera.electrons_per_adu, "gain_depth": camera.depth,
            "gain_note": camera.gain_note, "read_noise": camera.read_noise,
            "program": camera.program, "gain_setting": camera.gain_setting,
            "offset": camera.offset, "readout_mode": camera.readout_mode,
            "set_temperature": camera.set_temperature, "adc_bits": camera.adc_bits,
            "cfa": camera.cfa}


def scan(root: str | Path, *, exclude: Iterable[Path] = ()) -> list[FrameInfo]:
    """Describe every FITS or XISF file below ``root``; unreadable folders are unusable entries.

    Raises
    ------
    ValueError
        ``root`` is not a directory.
    """
    root = require_directory(root)
    conv = load_conventions()
    files, problems = walk_fits(root, exclude)
    return [describe_file(path, root, conv) for path in files] + [
        FrameInfo(path=path, error=error) for path, error in problems]
