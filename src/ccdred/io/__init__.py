"""All FITS (and XISF) input and output: the only package that touches files' contents.

XISF files (PixInsight, N.I.N.A.) are read by the same `read`, `read_header` and `FileRows`;
products are always FITS.

Reading finds the 2-D image HDU (primary, else the first image extension, compressed or not).
Writing is atomic (temporary file + rename): an output appears only when complete.
"""

from __future__ import annotations

from ..atomic import atomic_output
from .digests import sha256
from .fits_read import FITS_SUFFIXES, is_fits_name, is_image_name, read, read_header
from .fits_write import LAYOUTS, as_read_back, reduction_time, write, write_dq, write_raw
from .rows import FileRows
from .xisf_read import XISF_SUFFIXES, is_xisf_name

__all__ = [
    "read",
    "read_header",
    "write",
    "as_read_back",
    "write_dq",
    "write_raw",
    "sha256",
    "FileRows",
    "FITS_SUFFIXES",
    "is_fits_name",
    "XISF_SUFFIXES",
    "is_xisf_name",
    "is_image_name",
    "atomic_output",
    "reduction_time",
    "LAYOUTS",
]
