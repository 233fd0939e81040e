"""ccdred: reduce a night of raw CCD frames into science-ready images.

The public API: `read`, `write`, `combine` (with `CombineOptions`), `reduce_night`,
`plan_night`, `scan`, the steps in `ccdred.steps`, the `Frame` type and the `Flag` registry.
"""

from __future__ import annotations

from ._version import __version__
from .combine import CombineOptions, CombineResult, combine
from .errors import BadInputError
from .flags import Flag
from .frame import Frame
from .inventory import FrameInfo, scan
from .io import read, write

__all__ = [
    "BadInputError",
    "CombineOptions",
    "CombineResult",
    "Flag",
    "Frame",
    "FrameInfo",
    "__version__",
    "combine",
    "plan_night",
    "read",
    "reduce_night",
    "scan",
    "write",
]


def __getattr__(name: str):
    # The pipeline pulls in more; load it only when asked for.
    if name in ("reduce_night", "plan_night"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'ccdred' has no attribute {name!r}")
