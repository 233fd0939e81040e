"""Find the FITS files of a night, classify each (bias/dark/flat/science) and read its metadata.

Classification tries, in order: the frame-type header keywords, tokens of the file name, then
folder names; the conventions are data in ``instruments/conventions.toml``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from astropy.io import fits

from .errors import BadInputError
from .geometry import ReadoutGeometry, readout_geometry
from .instruments import Conventions, load_conventions, normal
from .instruments.headers import (
    as_float,
    as_int,
    as_text,
    header_binning,
    header_exptime,
    header_value,
    positive,
)
from .io import is_fits_name, read_header

__all__ = ["FrameInfo", "scan", "describe_file", "classify", "header_exptime", "KINDS",
           "find_fits"]

KINDS = load_conventions().kinds
"""Every frame type: ``bias``, ``darkflat``, ``dark``, ``flat``, ``science``."""


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
    read_noise: float | None = None
    saturation: float | None = None
    bitpix: int | None = None
    bzero: float | None = None
    data_shape: tuple[int, int] | None = None
    """(rows, columns) after trimming to TRIMSEC/DATASEC; ``shape`` when there is none."""
    overscan: str | None = None
    """The usable BIASSEC, as a FITS section, or None."""
    notes: tuple[str, ...] = ()
    """What in the header was ignored, and why (e.g. a nonsensical BIASSEC)."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the file can be used."""
        return self.error is None and self.kind is not None

    @property
    def setup(self) -> tuple[tuple[int, int] | None, tuple[int, int]]:
        """The readout setup masters must match: shape after trimming, and binning."""
        return (self.data_shape or self.shape, self.binning)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out = asdict(self)
        out["path"] = str(self.path)
        return out


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
    if header is not None:
        for key in conv.type_keywords:
            raw = as_text(header_value(header, [key]))
            if raw is None:
                continue
            kind = conv.type_values.get(normal(raw))
            if kind:
                return kind, f"{key}={raw!r}"
    tokens = _tokens(path.name)
    # Two neighbouring tokens first: "Dark_Flat_001" is a dark-flat, not a dark.
    for token in [a + b for a, b in zip(tokens, tokens[1:], strict=False)] + tokens:
        kind = conv.filename_tokens.get(token)
        if kind:
            return kind, f"file name token {token!r}"
    lowered = path.name.lower()
    for substring, kind in conv.filename_substrings:
        if substring in lowered:
            return kind, f"file name contains {substring!r}"
    parents = path.parent.relative_to(root).parts if root and path.is_relative_to(root) else (
        path.parent.parts[-3:])
    for folder in reversed(parents):
        kind = conv.folders.get(normal(folder))
        if kind:
            return kind, f"folder {folder!r}"
    seen = [f"{k}={as_text(header_value(header, [k]))!r}" for k in conv.type_keywords
            if header is not None and header_value(header, [k]) is not None]
    hint = f" ({', '.join(seen)} not understood)" if seen else ""
    return None, (f"cannot tell the frame type: no known type keyword{hint}, no hint in the "
                  f"file name or folder")


def describe_file(path: Path, root: Path | None = None,
                  conventions: Conventions | None = None) -> FrameInfo:
    """Read a file's header and return its `FrameInfo` (errors are recorded, not raised)."""
    conv = conventions or load_conventions()
    try:
        header = read_header(path)
    except BadInputError as err:
        return FrameInfo(path=path, error=err.problem)
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
        gain=positive(as_float(header_value(header, keys["gain"]))),
        read_noise=positive(as_float(header_value(header, keys["read_noise"]))),
        saturation=positive(as_float(header_value(header, keys["saturation"]))),
        bitpix=as_int(header_value(header, ["ZBITPIX", "BITPIX"])),
        bzero=as_float(header_value(header, ["BZERO"])),
        error=None if kind else source,
    )
    if kind in conv.needs_exptime and info.exptime is None:
        names = "/".join(keys["exptime"][:3])
        return replace(info, error=f"{kind} frame without an exposure time ({names} missing "
                                   f"or not a number): cannot match or scale a dark")
    return info


def find_fits(root: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Every FITS file below ``root`` (recursive, any case of suffix), sorted, skipping ``exclude``.

    Directories whose names look like FITS files are returned too, so the caller can report them.
    """
    root = Path(root)
    excluded = [Path(p).resolve() for p in exclude]
    found = []
    for path in sorted(root.rglob("*")):
        if not is_fits_name(path):
            continue
        resolved = path.resolve()
        if any(resolved == ex or resolved.is_relative_to(ex) for ex in excluded):
            continue
        if path.name.startswith("."):
            continue
        found.append(path)
    return found


def scan(root: str | Path, *, exclude: Iterable[Path] = ()) -> list[FrameInfo]:
    """Describe every FITS file below ``root``.

    Raises
    ------
    ValueError
        ``root`` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory")
    conv = load_conventions()
    return [describe_file(path, root, conv) for path in find_fits(root, exclude)]
