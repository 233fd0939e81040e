"""All FITS input and output: the only package that touches files' contents.

Reading finds the 2-D image HDU (primary, else the first image extension, compressed or not).
Writing is atomic (temporary file + rename): an output appears only when complete.
"""

from __future__ import annotations

from ..atomic import atomic_output
from .fits_read import FITS_SUFFIXES, is_fits_name, read, read_header, sha256
from .fits_write import LAYOUTS, reduction_time, write, write_dq, write_raw
from .rows import FileRows

__all__ = [
    "read",
    "read_header",
    "write",
    "write_dq",
    "write_raw",
    "sha256",
    "FileRows",
    "FITS_SUFFIXES",
    "is_fits_name",
    "atomic_output",
    "reduction_time",
    "LAYOUTS",
]
