"""What every worker task shares: its share of the cores, and masters read once per worker."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from .. import io
from ..frame import Frame
from .products import BADPIX

__all__ = ["MasterRef", "limit_threads", "load_master"]


@dataclass(frozen=True)
class MasterRef:
    """A master file a task reads: its name in the plan, path, product role and checksum."""

    name: str
    path: str
    role: str
    sha256: str


def limit_threads(threads: int) -> None:
    """Let this worker's compiled kernels use ``threads`` threads (no oversubscription)."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, stamp: tuple[int, int, int]) -> Frame:
    return io.read(path)


def load_master(ref: MasterRef) -> Frame:
    """Read a master in a worker, once per worker while the file is unchanged.

    A bad-pixel map holds its flags as the image: it comes back as a frame of zeros with
    those flags.
    """
    stat = os.stat(ref.path)
    frame = _read_cached(ref.path, (stat.st_ino, stat.st_size, stat.st_mtime_ns))
    if ref.role == BADPIX:
        return Frame(np.zeros(frame.shape, np.float32), dq=frame.data.astype(np.uint16))
    return frame
