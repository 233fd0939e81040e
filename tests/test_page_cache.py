"""Files written with `ccdred.atomic.RELEASE_VARIABLE` set leave the page cache as they are
written (the pages the disk has by then), and are the same bytes."""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import sys

import numpy as np
import pytest
from astropy.io import fits

from ccdred import io
from ccdred.atomic import RELEASE_VARIABLE
from ccdred.frame import Frame
from ccdred.io.digests import HashingWriter, sha256

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="mincore and posix_fadvise as Linux has them")


def resident_fraction(path) -> float:
    """The fraction of a file's pages in the page cache (``mincore`` of a mapping of it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = os.path.getsize(path)
    pages = -(-size // mmap.PAGESIZE)
    with open(path, "rb") as handle:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, handle.fileno(), 0)
    assert address != ctypes.c_void_p(-1).value, os.strerror(ctypes.get_errno())
    try:
        resident = (ctypes.c_ubyte * pages)()
        assert libc.mincore(address, size, resident) == 0, os.strerror(ctypes.get_errno())
    finally:
        libc.munmap(address, size)
    return sum(page & 1 for page in resident) / pages


@pytest.fixture
def droppable(tmp_path):
    """A folder whose file system drops clean pages on request (not tmpfs, say)."""
    probe = tmp_path / "probe"
    with open(probe, "wb") as handle:
        handle.write(bytes(1 << 20))
        handle.flush()
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    if resident_fraction(probe) > 0:
        pytest.skip("this file system keeps clean pages when asked to drop them")
    return tmp_path


def frame(seed: int, size: int = 1500) -> Frame:
    rng = np.random.default_rng(seed)
    return Frame(rng.normal(100.0, 5.0, (size, size)).astype(np.float32),
                 variance=np.full((size, size), 25.0, np.float32),
                 dq=np.zeros((size, size), np.uint16),
                 header=fits.Header({"CCDRDATE": "2026-12-07T00:00:00"}))


def on_disk(path) -> None:
    """Wait until the file is on the disk, as the next frame's calibration gives it time to be."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@linux_only
@pytest.mark.parametrize(("setting", "left"), [("1", 0.0), ("0", 1.0)])
def test_a_product_leaves_the_page_cache_when_the_next_is_written(droppable, monkeypatch,
                                                                  setting, left):
    monkeypatch.setenv(RELEASE_VARIABLE, setting)
    first, second = droppable / "first.fits", droppable / "second.fits"
    io.write(frame(1), first)
    on_disk(first)
    io.write(frame(2), second)
    assert resident_fraction(first) == left


@linux_only
def test_each_piece_is_dropped_after_the_next_is_written(tmp_path, monkeypatch):
    advice = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, what: advice.append(
        (offset, length, what)))
    data = np.random.default_rng(1).random(5 * 2**20).astype(">f4")  # 20 MB: 5 pieces
    with open(tmp_path / "file", "wb") as handle:
        writer = HashingWriter(handle, release=True)
        writer.write(data.reshape(-1, 1024).data)  # as astropy passes an array
        writer.finish()
    assert (tmp_path / "file").read_bytes() == data.tobytes()
    assert writer.digest.hexdigest() == hashlib.sha256(data.tobytes()).hexdigest()
    piece, drop = 4 << 20, os.POSIX_FADV_DONTNEED
    # Piece k's write-back is asked once it is written, its pages dropped after piece k + 1.
    assert advice == [(0, piece, drop),
                      (0, piece, drop), (piece, piece, drop),
                      (piece, piece, drop), (2 * piece, piece, drop),
                      (2 * piece, piece, drop), (3 * piece, piece, drop),
                      (3 * piece, piece, drop), (4 * piece, piece, drop),
                      (0, 0, drop)]


@pytest.mark.parametrize("layout", ["ccddata", "compact"])
def test_products_written_with_release_are_the_same_files(tmp_path, monkeypatch, layout):
    files = {}
    for setting in ("0", "1"):
        monkeypatch.setenv(RELEASE_VARIABLE, setting)
        files[setting] = tmp_path / f"reduced_{setting}.fits"
        io.write(frame(3), files[setting], layout=layout)
    assert files["0"].read_bytes() == files["1"].read_bytes()
    # The digest remembered while writing is the file's.
    assert sha256(files["1"]) == hashlib.sha256(files["1"].read_bytes()).hexdigest()
