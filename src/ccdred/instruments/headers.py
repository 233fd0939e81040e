"""Header lookups: a keyword's value by the conventions, read safely from any header.

Every function here returns None for a missing, blank, malformed or non-finite value instead
of raising: headers from real cameras hold all of these.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from astropy.io import fits

from . import Conventions, load_conventions

__all__ = ["header_value", "as_float", "as_text", "as_int", "positive", "header_exptime",
           "header_binning"]


def header_value(header: fits.Header, keys: Iterable[str]) -> Any:
    """Return the value of the first of ``keys`` present with a non-blank value, or None."""
    for key in keys:
        try:
            value = header.get(key)
        except (KeyError, ValueError, fits.VerifyError):
            continue
        if value is None or isinstance(value, fits.card.Undefined):
            continue
        if isinstance(value, str) and not value.strip():
            continue
        return value
    return None


def as_float(value: Any) -> float | None:
    """Return a finite number from a header value (numbers written as text too), or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def as_text(value: Any) -> str | None:
    """Return the stripped text of a header value, or None when empty."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def as_int(value: Any) -> int | None:
    """Return an integer from a header value, or None."""
    number = as_float(value)
    return int(number) if number is not None else None


def positive(value: float | None) -> float | None:
    """Return ``value`` when it is a positive number, else None."""
    return value if value is not None and value > 0 else None


def header_exptime(header: fits.Header, conventions: Conventions | None = None) -> float | None:
    """Exposure time in seconds from EXPTIME/EXPOSURE/ITIME..., or None."""
    conv = conventions or load_conventions()
    value = as_float(header_value(header, conv.keywords["exptime"]))
    return value if value is not None and value >= 0 else None


def header_binning(header: fits.Header, conventions: Conventions | None = None
                   ) -> tuple[int, int]:
    """Return the (x, y) binning from XBINNING/YBINNING or a pair (CCDSUM='2 2'); else (1, 1)."""
    conv = conventions or load_conventions()
    xb = as_float(header_value(header, conv.keywords["xbinning"]))
    yb = as_float(header_value(header, conv.keywords["ybinning"]))
    if xb is None:
        pair = as_text(header_value(header, conv.keywords["binning_pair"]))
        numbers = re.findall(r"\d+", pair or "")
        if len(numbers) >= 2:
            xb, yb = float(numbers[0]), float(numbers[1])
    xb = int(xb) if xb and xb >= 1 else 1
    yb = int(yb) if yb and yb >= 1 else xb
    return (xb, yb)
