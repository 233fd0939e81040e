"""Combine a stack of frames or files into one, streaming row blocks through compiled kernels.

`combine` is the one entry point every master goes through; `CombineOptions` the one options
object (validated on construction) that `combine`, the night pipeline and both commands share.
Inputs are files (each opened once and read in row blocks), `Frame` objects, or any
`RowSource`; rows are read in blocks sized so the working set stays under ``memory_limit``,
and every pixel's result is independent of the block size.
"""

from .options import (
    DEFAULT_MEMORY_LIMIT,
    METHODS,
    REJECTIONS,
    SCALINGS,
    CombineOptions,
    clip_description,
)
from .sources import FileSource, FrameRows, RowSource, as_source
from .stack import CombineResult, combine, rows_per_block

__all__ = ["combine", "CombineOptions", "CombineResult", "RowSource", "FrameRows", "FileSource",
           "as_source", "rows_per_block", "clip_description", "METHODS", "REJECTIONS",
           "SCALINGS", "DEFAULT_MEMORY_LIMIT"]
