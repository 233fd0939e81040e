"""Whether the compiled kernels are cached on disk yet (numba-free, so asking costs nothing).

numba compiles ccdred's kernels for the machine the first time they run and keeps them
(``cache=True``) beside the sources, or under ``NUMBA_CACHE_DIR``; later runs load them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["kernels_cached"]

_PROBE = "combine.combine_block-*.nbi"  # the index of the one kernel every run needs


def kernels_cached() -> bool:
    """Tell whether numba's cache holds ccdred's kernels (False: this run compiles them)."""
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    if cache_dir:  # numba then looks nowhere else
        return any(Path(cache_dir).rglob(_PROBE))
    return any((Path(__file__).parent / "__pycache__").glob(_PROBE))
