"""Combine a stack of frames or files into one, streaming row blocks through compiled kernels.

`combine` is the one entry point every master goes through; `CombineOptions` the one options
object (validated on construction) that `combine`, the night pipeline and both commands share.
Inputs are files (each opened once and read in row blocks), `Frame` objects, or any
`RowSource`; rows are read in blocks sized so the working set stays under ``memory_limit``,
and every pixel's result is independent of the block size.

The options load at once (the command line validates them before any work); the streaming
stack and its compiled kernels when first used.
"""

import importlib

from .options import (
    DEFAULT_MEMORY_LIMIT,
    METHODS,
    REJECTIONS,
    SCALINGS,
    CombineOptions,
    clip_description,
)

_LAZY = {"FileSource": "sources", "FrameRows": "sources", "RowSource": "sources",
         "as_source": "sources", "CombineResult": "stack", "combine": "stack",
         "rows_per_block": "stack"}

__all__ = ["combine", "CombineOptions", "CombineResult", "RowSource", "FrameRows", "FileSource",
           "as_source", "rows_per_block", "clip_description", "METHODS", "REJECTIONS",
           "SCALINGS", "DEFAULT_MEMORY_LIMIT"]


def __getattr__(name: str) -> object:
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value
