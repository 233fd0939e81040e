"""What a simulated CMOS night puts on disk: capture programs' conventions, and the truth.

How each capture program writes a frame (keywords, frame-type values, folders, file names) and
`write_truth`, the truth images beside the raw night.

One `ProgramConventions` entry per program in `PROGRAMS` (data, not branches). A program's
``keywords`` name *quantities*, the values `cmos_header` is given for one frame:

model quantities (the same for every frame)
    ``instrument`` (camera name), ``indi_instrument`` (INDI's "ZWO CCD ..." spelling),
    ``gain`` (the camera's gain *setting*, int), ``gain_float`` (the same, float),
    ``offset`` (offset setting, int), ``offset_float``, ``egain`` (true e-/ADU at the ADC's native
    bit depth), ``egain_saved`` (true e-/ADU in file units), ``adc_bits``, ``read_noise`` (e-),
    ``set_temp`` (degC), ``pixel_size`` (um), ``binning`` (1), ``readout`` ('Normal'),
    ``row_order`` ('TOP-DOWN'); colour only, None for a mono camera: ``bayer`` (pattern of pixels
    [0,0], [0,1], [1,0], [1,1] as written), ``bayer_offset`` (0), ``colour_row_order``
    ('TOP-DOWN'), ``colour_type`` ('RGB').
frame quantities
    ``type`` (the program's value for the frame kind, from ``types``), ``exptime`` (s),
    ``date_obs`` (ISO, milliseconds), ``date_obs_s`` (whole seconds), ``date_obs_7`` (seven
    decimals, as .NET writes), ``ccd_temp`` (measured, degC), ``filter`` and ``object`` (None
    where the frame has none).

A card whose value is None is not written. File names are ``name_parts`` formatted and joined
with "_", parts that come out empty dropped; folders are ``folders`` formatted the same way.
Format fields: ``label`` (``labels[kind]``), ``stamp`` (the start time formatted with
``stamp``), ``filter``, ``object``, ``temp``, ``exptime``, ``gain``, ``index`` (1-based count
of the frames of that kind).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits

if TYPE_CHECKING:
    from .simulate_cmos import CmosModel, CmosTruth

__all__ = ["ProgramConventions", "PROGRAMS", "FRAME_KINDS", "camera_values", "cmos_header",
           "frame_path", "write_truth"]

FRAME_KINDS = ("light", "dark", "flat", "darkflat", "bias")
"""Kinds of frame a CMOS night holds, as keys of ``types``, ``folders`` and ``labels``."""

Card = tuple[str, str, str]
"""(FITS keyword, quantity name, comment)."""


@dataclass(frozen=True)
class ProgramConventions:
    """How one capture program writes a frame (see the module docstring for the quantities)."""

    name: str
    """Display name of the program."""
    constants: tuple[tuple[str, str, str], ...]
    """(keyword, value, comment) written first in every header; COMMENT cards allowed."""
    keywords: tuple[Card, ...]
    """(keyword, quantity, comment) in header order."""
    types: Mapping[str, str]
    """Value of the ``type`` quantity per frame kind; empty: the program writes no frame type."""
    folders: Mapping[str, str]
    """Folder template under ``raw/`` per frame kind."""
    labels: Mapping[str, str]
    """Word for the frame kind in file names."""
    name_parts: tuple[str, ...]
    """File-name templates joined with "_" (empty parts dropped)."""
    stamp: str
    """`datetime.strftime` format of the start time in file names."""
    suffix: str = ".fits"


_KINDS_AS = {"light": "Light", "dark": "Dark", "flat": "Flat", "darkflat": "DarkFlat",
             "bias": "Bias"}
_NOTEBOOK_FOLDERS = {"light": "lights", "dark": "darks", "flat": "flats",
                     "darkflat": "darkflats", "bias": "bias"}
_BAYER: tuple[Card, ...] = (("BAYERPAT", "bayer", "Bayer color pattern"),
                            ("XBAYROFF", "bayer_offset", "X offset of Bayer array"),
                            ("YBAYROFF", "bayer_offset", "Y offset of Bayer array"))

PROGRAMS: dict[str, ProgramConventions] = {
    "nina": ProgramConventions(
        name="N.I.N.A.",
        constants=(("SWCREATE", "N.I.N.A. 3.1.2.9001", "Software that created this file"),),
        keywords=(
            ("IMAGETYP", "type", "Type of exposure"),
            ("EXPOSURE", "exptime", "[s] Exposure duration"),
            ("EXPTIME", "exptime", "[s] Exposure duration"),
            ("DATE-OBS", "date_obs", "Time of observation (UTC)"),
            ("XBINNING", "binning", "X axis binning factor"),
            ("YBINNING", "binning", "Y axis binning factor"),
            ("GAIN", "gain", "Sensor gain"),
            ("OFFSET", "offset", "Sensor gain offset"),
            ("EGAIN", "egain", "[e-/ADU] Electrons per A/D unit"),
            ("XPIXSZ", "pixel_size", "[um] Pixel X axis size"),
            ("YPIXSZ", "pixel_size", "[um] Pixel Y axis size"),
            ("INSTRUME", "instrument", "Imaging instrument name"),
            ("SET-TEMP", "set_temp", "[degC] CCD temperature setpoint"),
            ("CCD-TEMP", "ccd_temp", "[degC] CCD temperature"),
            ("READOUTM", "readout", "Sensor readout mode"),
            *_BAYER,
            ("FILTER", "filter", "Active filter name"),
            ("OBJECT", "object", "Name of the object of interest"),
            ("ROWORDER", "row_order", "FITS Image Orientation")),
        types={"light": "LIGHT", "dark": "DARK", "flat": "FLAT", "darkflat": "DARKFLAT",
               "bias": "BIAS"},
        folders=_NOTEBOOK_FOLDERS, labels=_KINDS_AS,
        name_parts=("{stamp}", "{filter}", "{temp:.2f}", "{exptime:.2f}s", "{index:04d}"),
        stamp="%Y-%m-%d_%H-%M-%S"),
    "sharpcap": ProgramConventions(
        name="SharpCap",
        constants=(("SWCREATE", "SharpCap v4.1.12946.0, 64 bit", ""),),
        keywords=(
            ("DATE-OBS", "date_obs_7", "System Clock:Est. Frame Start"),
            ("EXPTIME", "exptime", ""),
            ("XBINNING", "binning", ""), ("YBINNING", "binning", ""),
            ("XPIXSZ", "pixel_size", ""), ("YPIXSZ", "pixel_size", ""),
            ("GAIN", "gain", ""),
            ("OFFSET", "offset", ""),
            ("BLKLEVEL", "offset", ""),
            ("EGAIN", "egain", "Electrons per ADU at true ADC bit depth"),
            ("ADCBITS", "adc_bits", "Bit depth of the ADC"),
            ("EGAINSAV", "egain_saved", "Electrons per ADU at saved bit depth"),
            ("RDNOISE", "read_noise", "Read noise in electrons"),
            ("CCD-TEMP", "ccd_temp", ""),
            ("FILTER", "filter", ""),
            ("ROWORDER", "row_order", ""),
            *_BAYER,
            ("COLORTYP", "colour_type", ""),
            ("INSTRUME", "instrument", "")),
        types={}, folders=_KINDS_AS, labels=_KINDS_AS,
        name_parts=("{label}", "{index:05d}"), stamp="%H_%M_%S"),
    "asiair": ProgramConventions(
        name="ASIAIR",
        constants=(("CREATOR", "ZWO ASIAIR Plus", "Capture software"),),
        keywords=(
            ("INSTRUME", "instrument", "Camera model"),
            ("IMAGETYP", "type", "Type of exposure"),
            ("EXPTIME", "exptime", "Exposure time in seconds"),
            ("DATE-OBS", "date_obs", "UTC start of the exposure"),
            ("XBINNING", "binning", ""), ("YBINNING", "binning", ""),
            ("XPIXSZ", "pixel_size", ""), ("YPIXSZ", "pixel_size", ""),
            ("GAIN", "gain", "The gain set"),
            ("OFFSET", "offset", "The offset set"),
            ("CCD-TEMP", "ccd_temp", "Sensor temperature (C)"),
            *_BAYER,
            ("ROWORDER", "colour_row_order", ""),
            ("FILTER", "filter", ""),
            ("OBJECT", "object", "")),
        types={"light": "Light", "dark": "Dark", "flat": "Flat", "darkflat": "Dark",
               "bias": "Bias"},
        folders=_KINDS_AS,
        labels={**_KINDS_AS, "darkflat": "Dark"},
        name_parts=("{label}", "{object}", "{exptime:.1f}s", "Bin1", "{filter}", "gain{gain}",
                    "{stamp}", "{temp:.1f}C", "{index:04d}"),
        stamp="%Y%m%d-%H%M%S", suffix=".fit"),
    "ekos": ProgramConventions(
        name="Ekos (INDI)",
        constants=(("COMMENT", "Generated by INDI", ""),),
        keywords=(
            ("INSTRUME", "indi_instrument", "CCD Name"),
            ("OBJECT", "object", "Object name"),
            ("EXPTIME", "exptime", "Total Exposure Time (s)"),
            ("CCD-TEMP", "ccd_temp", "CCD Temperature (Celsius)"),
            ("PIXSIZE1", "pixel_size", "Pixel Size 1 (microns)"),
            ("PIXSIZE2", "pixel_size", "Pixel Size 2 (microns)"),
            ("XBINNING", "binning", "Binning factor in width"),
            ("YBINNING", "binning", "Binning factor in height"),
            ("FRAME", "type", "Frame Type"),
            ("FILTER", "filter", "Filter"),
            *_BAYER,
            ("ROWORDER", "colour_row_order", "Order of the rows in image array"),
            ("DATE-OBS", "date_obs", "UTC start date of observation"),
            ("GAIN", "gain_float", "Gain"),
            ("OFFSET", "offset_float", "Offset")),
        types={"light": "Light", "dark": "Dark", "flat": "Flat", "darkflat": "Dark",
               "bias": "Bias"},
        folders={"light": "Light/{filter}", "dark": "Dark", "flat": "Flat/{filter}",
                 "darkflat": "DarkFlat", "bias": "Bias"},
        labels={**_KINDS_AS, "darkflat": "Dark"},
        name_parts=("{object}", "{label}", "{filter}", "{exptime:g}", "secs", "{stamp}",
                    "{index:03d}"),
        stamp="%Y-%m-%dT%H-%M-%S"),
    "apt": ProgramConventions(
        name="APT",
        constants=(("SWCREATE", "Astro Photography Tool - APT v.3.54.1", "Imaging software"),),
        keywords=(
            ("OBJECT", "object", "The name of Object Imaged"),
            ("INSTRUME", "instrument", "The model Camera used"),
            ("DATE-OBS", "date_obs_s", "The UTC date and time at the start of the expo"),
            ("EXPTIME", "exptime", "The total exposure time in seconds"),
            ("XPIXSZ", "pixel_size", "Pixel width in microns (after binning)"),
            ("YPIXSZ", "pixel_size", "Pixel height in microns (after binning)"),
            ("XBINNING", "binning", "Binning factor in width"),
            ("YBINNING", "binning", "Binning factor in height"),
            ("EGAIN", "egain", "Electronic gain in e-/ADU"),
            ("SET-TEMP", "set_temp", "The setpoint of the cooling in C"),
            ("CCD-TEMP", "ccd_temp", "The actual temperature of the sensor in C"),
            ("IMAGETYP", "type", "The type of image"),
            ("FILTER", "filter", "The name of the filter used"),
            *_BAYER,
            ("ROWORDER", "colour_row_order", ""),
            ("GAIN", "gain", "The gain set (if supported)")),
        types={"light": "Light Frame", "dark": "Dark Frame", "flat": "Flat Frame",
               "darkflat": "Dark Frame", "bias": "Bias Frame"},
        folders=_NOTEBOOK_FOLDERS,
        labels={"light": "L", "dark": "D", "flat": "F", "darkflat": "D", "bias": "B"},
        name_parts=("{label}", "{index:04d}", "{stamp}", "Bin1x1", "{exptime:g}s",
                    "{temp:.0f}C"),
        stamp="%Y-%m-%d_%H-%M-%S", suffix=".fit"),
}
"""Capture programs by the name ``CmosModel.program`` takes."""


def camera_values(model: CmosModel) -> dict[str, Any]:
    """Return the header quantities that are the same for every frame of a camera."""
    colour = model.colour
    return {
        "instrument": model.camera_name,
        "indi_instrument": "ZWO CCD " + model.camera_name.removeprefix("ZWO "),
        "gain": model.gain_setting, "gain_float": float(model.gain_setting),
        "offset": model.offset_setting, "offset_float": float(model.offset_setting),
        "egain": model.egain_native, "egain_saved": model.gain_file,
        "adc_bits": model.adc_bits, "read_noise": model.read_noise,
        "set_temp": model.set_temp, "pixel_size": model.pixel_size, "binning": 1,
        "readout": "Normal", "row_order": "TOP-DOWN",
        "bayer": model.bayer if colour else None, "bayer_offset": 0 if colour else None,
        "colour_row_order": "TOP-DOWN" if colour else None,
        "colour_type": "RGB" if colour else None,
    }


def cmos_header(conventions: ProgramConventions, values: Mapping[str, Any]) -> fits.Header:
    """Return the header a program writes for one frame.

    Parameters
    ----------
    conventions : ProgramConventions
        The writing program.
    values : mapping
        Every quantity a program's keywords may name (see the module docstring); None leaves
        the card out.
    """
    header = fits.Header()
    for key, value, comment in conventions.constants:
        if key == "COMMENT":
            header.add_comment(value)
        else:
            header[key] = (value, comment)
    for key, quantity, comment in conventions.keywords:
        value = values[quantity]
        if value is not None:
            header[key] = (value, comment)
    return header


def _safe(text: str | None) -> str:
    """Return text usable in a file or folder name ("UV/IR" -> "UV-IR"; None -> "")."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text or "").strip("-")


def frame_path(conventions: ProgramConventions, kind: str, *, when: datetime, index: int,
               exptime: float, temp: float, gain: int, filt: str | None,
               obj: str | None) -> PurePosixPath:
    """Return where the program writes a frame, relative to the raw folder.

    Parameters
    ----------
    conventions : ProgramConventions
        The writing program.
    kind : str
        One of `FRAME_KINDS`.
    when : datetime
        Start of the exposure.
    index : int
        1-based count of the frames of this kind.
    exptime, temp, gain, filt, obj
        Exposure (s), measured sensor temperature (degC), gain setting, filter and object names
        (None when the frame has none).
    """
    fields = {"label": conventions.labels[kind], "stamp": when.strftime(conventions.stamp),
              "filter": _safe(filt), "object": _safe(obj), "temp": temp, "exptime": exptime,
              "gain": gain, "index": index}
    parts = [part.format(**fields) for part in conventions.name_parts]
    name = "_".join(part for part in parts if part) + conventions.suffix
    folder = conventions.folders[kind].format(**fields)
    return PurePosixPath(folder) / name


def write_truth(truth: CmosTruth, folder: Path, model: CmosModel) -> None:
    """Write the truth images into ``folder``, with the true gain, pedestal and noise in headers.

    ``dark_current``, ``hot_pixels``, ``glow``, ``glow_per_frame``, ``flat``,
    ``flat_per_plane``, ``colour_response`` and ``dead_pixels``, then for every light
    ``<stem>_sky`` (its `CmosTruth.science`), ``<stem>_cosmics`` and ``<stem>_saturated``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    header = fits.Header()
    header["GAIN"] = (truth.gain_file, "[e-/ADU] true gain in file units")
    header["EGAIN"] = (model.egain_native, "[e-/ADU] true gain at the ADC's depth")
    header["ADCBITS"] = (model.adc_bits, "ADC bit depth")
    header["PEDESTAL"] = (truth.pedestal_adu, "[ADU] pedestal in file units")
    header["RDNOISE"] = (model.read_noise, "[e-] true read noise")
    header["RDNOISEA"] = (truth.read_noise_adu, "[ADU] true read noise in file units")
    if model.colour:
        header["BAYERPAT"] = (model.bayer, "colours of pixels [0,0] [0,1] [1,0] [1,1]")
    images = {
        "dark_current.fits": truth.dark_current.astype(np.float32),
        "hot_pixels.fits": truth.hot.astype(np.uint8),
        "glow.fits": truth.glow.astype(np.float32),
        "glow_per_frame.fits": truth.glow_per_frame.astype(np.float32),
        "flat.fits": truth.flat.astype(np.float32),
        "flat_per_plane.fits": truth.flat_per_plane.astype(np.float32),
        "colour_response.fits": truth.colour_response.astype(np.float32),
        "dead_pixels.fits": truth.dead.astype(np.uint8),
    }
    for name, image in images.items():
        fits.PrimaryHDU(image, header=header).writeto(folder / name, overwrite=True)
    for name, image in truth.science.items():
        stem = name.rsplit(".", 1)[0]
        fits.PrimaryHDU(image.astype(np.float32), header=header).writeto(
            folder / f"{stem}_sky.fits", overwrite=True)
        fits.PrimaryHDU(truth.cosmics[name].astype(np.uint8)).writeto(
            folder / f"{stem}_cosmics.fits", overwrite=True)
        fits.PrimaryHDU(truth.saturated[name].astype(np.uint8)).writeto(
            folder / f"{stem}_saturated.fits", overwrite=True)
