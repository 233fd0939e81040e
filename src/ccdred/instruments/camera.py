"""What a header says about the camera, read for what the program that wrote it means.

A CMOS camera's ``GAIN`` is, in N.I.N.A., SharpCap, ASIAIR, INDI and APT files, the camera's
gain *setting* (an index such as 100), never electrons per ADU; ``EGAIN`` is electrons per ADU,
per code of the camera's ADC for most of them (a 12-bit ADC scaled into 16 bits has 16 times
fewer electrons per saved ADU). The conventions are data (``programs.toml``); this module
applies them to one header and says how it read each value.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources

from astropy.io import fits

from . import Conventions, load_conventions
from .headers import as_float, as_int, as_text, header_value, positive

__all__ = ["Program", "CameraHeader", "read_camera", "load_programs", "cfa_pattern",
           "CFA_PATTERNS", "identify_program", "bayer_cards"]

CFA_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
"""Bayer patterns, read row by row from the 2x2 cell at the array's first pixel."""

GAIN_MEANINGS = ("setting", "e-/ADU", "camera")
DEPTHS = ("adc", "saved")


@dataclass(frozen=True)
class Program:
    """A capture program and what it means by its keywords (see ``programs.toml``)."""

    key: str
    name: str
    software: re.Pattern[str] | None
    instrument: re.Pattern[str] | None
    gain: str
    egain_depth: str
    saved_egain: str | None = None


@functools.cache
def load_programs(name: str = "programs.toml") -> tuple[tuple[Program, ...], re.Pattern[str]]:
    """Return the known capture programs and the pattern of CMOS camera names (cached)."""
    raw = tomllib.loads(resources.files(__package__).joinpath(name).read_text("utf-8"))
    programs = []
    for key, entry in raw["programs"].items():
        if entry["gain"] not in GAIN_MEANINGS or entry["egain_depth"] not in DEPTHS:
            raise ValueError(f"{name}: program {key}: gain must be one of {GAIN_MEANINGS} and "
                             f"egain_depth one of {DEPTHS}")
        programs.append(Program(
            key, entry.get("name", key),
            re.compile(entry["software"]) if "software" in entry else None,
            re.compile(entry["instrument"]) if "instrument" in entry else None,
            entry["gain"], entry["egain_depth"], entry.get("saved_egain")))
    return tuple(programs), re.compile(raw["cmos"]["instrument"])


@dataclass(frozen=True)
class CameraHeader:
    """The camera facts one header gives, and how they were read.

    ``electrons_per_adu`` is in the unit ``depth`` says: per ADC code (``adc``) or per ADU of
    the saved file (``saved``); the night's data tell how many saved ADU one code is.
    """

    program: str | None = None
    gain_setting: float | None = None
    electrons_per_adu: float | None = None
    depth: str = "saved"
    gain_note: str = ""
    offset: float | None = None
    readout_mode: str | None = None
    set_temperature: float | None = None
    adc_bits: int | None = None
    read_noise: float | None = None
    cfa: str | None = None


def identify_program(header: fits.Header, conventions: Conventions | None = None
                     ) -> Program | None:
    """Return the capture program that wrote ``header``, or None when nothing tells."""
    conv = conventions or load_conventions()
    programs, _ = load_programs()
    software = [as_text(header_value(header, [key])) for key in conv.keywords["software"]]
    for program in programs:
        if program.software and any(s and program.software.search(s) for s in software):
            return program
    instrument = as_text(header_value(header, conv.keywords["instrument"])) or ""
    for program in programs:
        if program.instrument and program.instrument.search(instrument):
            return program
    return None


def read_camera(header: fits.Header, shape: tuple[int, int] | None = None,
                conventions: Conventions | None = None) -> CameraHeader:
    """Read the camera's gain, settings and Bayer pattern from one header.

    Parameters
    ----------
    header : astropy.io.fits.Header
        A raw frame's header.
    shape : (rows, columns), optional
        The image's shape (a bottom-up row order flips the Bayer pattern of an even height).
    """
    conv = conventions or load_conventions()
    keys = conv.keywords
    program = identify_program(header, conv)
    gain_value = as_float(header_value(header, keys["gain"]))
    meaning = _gain_meaning(program, header, conv)
    setting = gain_value if meaning == "setting" else None
    electrons, depth, note = _electrons_per_adu(header, program, gain_value, meaning, conv)
    return CameraHeader(
        program=program.name if program else None, gain_setting=setting,
        electrons_per_adu=electrons, depth=depth, gain_note=note,
        offset=as_float(header_value(header, keys["offset"])),
        readout_mode=as_text(header_value(header, keys["readout_mode"])),
        set_temperature=as_float(header_value(header, keys["set_temperature"])),
        adc_bits=as_int(header_value(header, keys["adc_bits"])),
        read_noise=positive(as_float(header_value(header, keys["read_noise"]))),
        cfa=cfa_pattern(header, shape, conv))


def _gain_meaning(program: Program | None, header: fits.Header, conv: Conventions) -> str:
    meaning = program.gain if program else "camera"
    if meaning != "camera":
        return meaning
    _, cmos = load_programs()
    instrument = as_text(header_value(header, conv.keywords["instrument"])) or ""
    return "setting" if cmos.search(instrument) else "e-/ADU"


def _electrons_per_adu(header: fits.Header, program: Program | None, gain: float | None,
                       meaning: str, conv: Conventions) -> tuple[float | None, str, str]:
    """Return the header's e-/ADU, its depth, and a note on how GAIN and EGAIN were read."""
    who = program.name if program else "this camera"
    if program and program.saved_egain:
        saved = positive(as_float(header_value(header, [program.saved_egain])))
        if saved is not None:
            return saved, "saved", f"{program.saved_egain} (e-/ADU of the saved file)"
    for key in conv.keywords["electrons_per_adu"]:
        value = positive(as_float(header_value(header, [key])))
        if value is not None:
            depth = program.egain_depth if program else "saved"
            where = "per ADC code" if depth == "adc" else "per saved ADU"
            note = f"{key} (e-/ADU {where}, as {who} writes it)"
            if meaning == "setting" and gain is not None:
                note += f"; GAIN={gain:g} is the gain setting"
            return value, depth, note
    if gain is None:
        return None, "saved", ""
    if meaning == "setting":
        return None, "saved", f"GAIN={gain:g} is {who}'s gain setting, not e-/ADU"
    if not 0 < gain <= 100:
        return None, "saved", f"GAIN={gain:g} is not a plausible e-/ADU"
    return gain, "saved", "GAIN (e-/ADU)"


def cfa_pattern(header: fits.Header, shape: tuple[int, int] | None = None,
                conventions: Conventions | None = None) -> str | None:
    """Return the Bayer pattern at the array's first pixel, or None for a monochrome sensor.

    ``BAYERPAT`` (or ``CFAIMAGE``, ``COLORTYP`` when they hold a pattern) is shifted by
    ``XBAYROFF``/``YBAYROFF``. It describes the first row *as stored* when ``ROWORDER`` is
    ``TOP-DOWN`` or absent (N.I.N.A., SharpCap, INDI); with ``ROWORDER='BOTTOM-UP'`` it
    describes the top row as displayed, which is the last one stored.
    """
    conv = conventions or load_conventions()
    keys = conv.keywords
    pattern = None
    for key in keys["bayer"]:
        text = (as_text(header_value(header, [key])) or "").upper()
        if text in CFA_PATTERNS:
            pattern = text
            break
    if pattern is None:
        return None
    dx = as_int(header_value(header, keys["bayer_xoffset"])) or 0
    dy = as_int(header_value(header, keys["bayer_yoffset"])) or 0
    order = (as_text(header_value(header, keys["row_order"])) or "TOP-DOWN").upper()
    if order.replace("_", "-") == "BOTTOM-UP" and shape is not None:
        dy += shape[0] - 1
    return shift_pattern(pattern, dx, dy)


def shift_pattern(pattern: str, dx: int, dy: int) -> str:
    """Return the pattern seen from pixel (dx, dy) of a mosaic whose first pixel has ``pattern``."""
    cell = [[pattern[0], pattern[1]], [pattern[2], pattern[3]]]
    return "".join(cell[(r + dy) % 2][(c + dx) % 2] for r in (0, 1) for c in (0, 1))


def bayer_cards(cfa: str | None) -> dict[str, tuple[object, str]]:
    """Return a mosaic's Bayer keywords as stacking programs read them (none for mono)."""
    if not cfa:
        return {}
    return {"BAYERPAT": (cfa, "Bayer pattern at the first pixel"),
            "XBAYROFF": (0, "X offset of the Bayer pattern"),
            "YBAYROFF": (0, "Y offset of the Bayer pattern"),
            "ROWORDER": ("TOP-DOWN", "BAYERPAT applies to the first row stored")}
