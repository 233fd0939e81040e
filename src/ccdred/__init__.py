"""ccdred: reduce a night of raw CCD frames into science-ready images.

The public API: `read`, `write`, `combine` (with `CombineOptions`), `reduce_night`,
`plan_night`, `scan`, the steps in `ccdred.steps`, the `Frame` type and the `Flag` registry.
Each is imported when first used, so ``import ccdred`` (and the command line's start) stays
quick: numba, scipy and astropy load only for the work that needs them.
"""

from __future__ import annotations

import importlib

from ._version import __version__

_HOMES = {
    "BadInputError": "errors",
    "CombineOptions": "stacking",
    "CombineResult": "stacking",
    "Flag": "flags",
    "Frame": "frame",
    "FrameInfo": "inventory",
    "combine": "stacking",
    "plan_night": "pipeline",
    "read": "io",
    "reduce_night": "pipeline",
    "scan": "inventory",
    "write": "io",
}
"""Where each public name lives (a submodule of this package)."""

__all__ = ["BadInputError", "CombineOptions", "CombineResult", "Flag", "Frame", "FrameInfo",
           "__version__", "combine", "plan_night", "read", "reduce_night", "scan", "write"]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ccdred' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
