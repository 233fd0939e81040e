"""The one registry of data-quality (DQ) bits.

Every DQ image written or read by ccdred uses these bits; code never writes a bare number.
"""

from __future__ import annotations

import enum

import numpy as np

__all__ = ["Flag", "BAD", "REPAIRABLE", "describe", "flagged"]


class Flag(enum.IntFlag):
    """Data-quality bits, OR-ed together in a ``uint16`` DQ image."""

    HOT = 1
    """Hot pixel: dark current far above the frame's (from the master dark)."""
    DEAD = 2
    """Dead or weak pixel: response far below its neighbours' (from the master flat)."""
    SATURATED = 4
    """At or above the saturation level in the raw frame."""
    COSMIC_RAY = 8
    """Hit by a cosmic ray."""
    LOW_FLAT = 16
    """Flat-field value too low (or not finite) to divide by."""
    NO_DATA = 32
    """No valid value (NaN/inf in the input, or every combined value rejected)."""
    REPAIRED = 64
    """Value replaced cosmetically from good neighbours; the original flags stay set."""


DESCRIPTIONS: dict[Flag, str] = {
    Flag.HOT: "hot pixel (master dark)",
    Flag.DEAD: "dead/weak pixel (master flat)",
    Flag.SATURATED: "saturated in raw frame",
    Flag.COSMIC_RAY: "cosmic ray",
    Flag.LOW_FLAT: "flat too low to divide by",
    Flag.NO_DATA: "no valid data",
    Flag.REPAIRED: "cosmetically repaired",
}

BAD = Flag.HOT | Flag.DEAD | Flag.SATURATED | Flag.COSMIC_RAY | Flag.LOW_FLAT | Flag.NO_DATA
"""Flags after which a pixel's value should not be used for measurement."""

REPAIRABLE = Flag.HOT | Flag.DEAD | Flag.COSMIC_RAY | Flag.LOW_FLAT | Flag.NO_DATA
"""Flags that cosmetic repair fills in. Saturated pixels are real signal at the cap: left alone."""


def flagged(dq: np.ndarray, flags: Flag) -> np.ndarray:
    """Return a boolean image, True where any of ``flags`` is set in ``dq``."""
    return (dq & np.uint16(flags)) != 0


def count_flags(dq: np.ndarray) -> dict[Flag, int]:
    """Return how many pixels have each flag set, in one pass over ``dq``."""
    values, counts = np.unique(dq[dq != 0], return_counts=True)
    return {flag: int(counts[(values & np.uint16(flag)) != 0].sum()) for flag in Flag}


def describe() -> list[tuple[str, int, str]]:
    """Return ``(keyword, value, comment)`` header cards documenting every bit."""
    return [(f"DQ_{flag.name[:5]}", int(flag), DESCRIPTIONS[flag]) for flag in Flag]
