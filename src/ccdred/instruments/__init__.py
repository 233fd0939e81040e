"""Header conventions, kept as data in TOML files beside this module."""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType

__all__ = ["Conventions", "load_conventions", "load_instrument", "INSTRUMENT_KEYS", "normal"]


@dataclass(frozen=True)
class Conventions:
    """Keyword and value synonyms used to read headers and classify frames."""

    kinds: tuple[str, ...]
    """Every frame type, in the order the conventions list them."""
    needs_exptime: frozenset[str]
    """Frame types that cannot be used without an exposure time."""
    type_keywords: tuple[str, ...]
    type_values: Mapping[str, str]
    """Header value (`normal` form) -> frame type."""
    filename_tokens: Mapping[str, str]
    filename_substrings: tuple[tuple[str, str], ...]
    folders: Mapping[str, str]
    """Folder name (`normal` form) -> frame type."""
    keywords: Mapping[str, tuple[str, ...]]
    temperature_sentinels: frozenset[float]


def normal(text: str) -> str:
    """Lower-case ``text`` without spaces, '-' and '_': "Dark Flat" -> "darkflat"."""
    return re.sub(r"[\s_-]+", "", text.lower())


def _invert(table: Mapping[str, list[str]]) -> Mapping[str, str]:
    return MappingProxyType({normal(value): kind for kind, values in table.items()
                             for value in values})


@functools.cache
def load_conventions(name: str = "conventions.toml") -> Conventions:
    """Load the keyword conventions shipped with ccdred (cached)."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    frame_type = raw["frame_type"]
    return Conventions(
        kinds=tuple(frame_type["values"]),
        needs_exptime=frozenset(frame_type["needs_exptime"]),
        type_keywords=tuple(frame_type["keywords"]),
        type_values=_invert(frame_type["values"]),
        filename_tokens=_invert(frame_type["filename_tokens"]),
        filename_substrings=tuple(
            (sub, kind) for kind, subs in frame_type["filename_substrings"].items() for sub in subs
        ),
        folders=_invert(frame_type["folders"]),
        keywords=MappingProxyType({k: tuple(v) for k, v in raw["keywords"].items()}),
        temperature_sentinels=frozenset(float(v) for v in raw["sentinels"]["temperature"]),
    )


INSTRUMENT_KEYS = {"gain": "e-/ADU", "read_noise": "e-", "saturation": "raw ADU",
                   "bayer": "Bayer pattern at the first pixel: RGGB, BGGR, GRBG or GBRG"}


def load_instrument(path: str | Path) -> dict[str, float | str]:
    """Read a camera's settings from a TOML file: gain, read noise, saturation, Bayer pattern.

    Example::

        # arcsat.toml
        gain = 1.33        # e-/ADU of the saved file
        read_noise = 17.0  # e-
        saturation = 60000 # raw ADU
        bayer = "RGGB"     # a colour camera whose headers do not say

    Every key is optional; unknown keys, non-positive numbers and unknown patterns are refused.

    Raises
    ------
    ValueError
        The file cannot be read or holds something else.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"{path}: not a readable TOML file ({err})") from err
    unknown = sorted(set(raw) - set(INSTRUMENT_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}; "
                         f"known: {', '.join(INSTRUMENT_KEYS)}")
    settings: dict[str, float | str] = {}
    for key, value in raw.items():
        if key == "bayer":
            if value not in ("RGGB", "BGGR", "GRBG", "GBRG"):
                raise ValueError(f"{path}: bayer must be RGGB, BGGR, GRBG or GBRG, got {value!r}")
            settings[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                math.isfinite(value) and value > 0):
            raise ValueError(f"{path}: {key} must be a positive number "
                             f"({INSTRUMENT_KEYS[key]}), got {value!r}")
        settings[key] = float(value)
    return settings
