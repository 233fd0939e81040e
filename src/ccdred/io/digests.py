"""SHA-256 of files, remembered: a file hashed while it was written or read is not read again.

A remembered digest is used only while the file is the same one: same device, inode, size and
modification time (in nanoseconds); any change and the file is hashed afresh. Files are written
through `HashingWriter`, which can also release what it wrote from the page cache.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np

__all__ = ["sha256", "remember", "HashingWriter", "release_previous"]

_PIECE = 4 << 20
"""Bytes written between two releases: a frame's array goes to the kernel in pieces this size."""

_KNOWN: dict[str, tuple[tuple[int, int, int, int], str]] = {}
_LOCK = threading.Lock()
_WRITTEN_BEFORE: list[str] = []
"""The file this process wrote last with `release_previous`: its pages are dropped next time."""


def _identity(status: os.stat_result) -> tuple[int, int, int, int]:
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def remember(path: str | Path, digest: str) -> None:
    """Record ``digest`` as the SHA-256 of ``path`` as the file is now."""
    key = os.path.abspath(path)
    with _LOCK:
        _KNOWN[key] = (_identity(os.stat(key)), digest)


def sha256(path: str | Path, *, limit: int | None = None) -> str:
    """Return the hex SHA-256 of a file's bytes (remembered while the file is unchanged).

    With ``limit``, of its first ``limit`` bytes only (never remembered).
    """
    if limit is not None:
        return _sha256_head(path, limit)
    key = os.path.abspath(path)
    status = os.stat(key)
    with _LOCK:
        known = _KNOWN.get(key)
    if known is not None and known[0] == _identity(status):
        return known[1]
    digest = hashlib.sha256()
    with open(key, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    text = digest.hexdigest()
    with _LOCK:
        _KNOWN[key] = (_identity(status), text)
    return text


def _sha256_head(path: str | Path, limit: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(limit))
    return digest.hexdigest()


def release_previous(path: str | Path) -> None:
    """Drop from the page cache the file written before this one, and remember ``path``.

    Call it before writing ``path`` with `HashingWriter`'s ``release``: the end of the file
    written before was still on its way to the disk when that file was finished, and is by
    now (pages not yet on the disk stay cached). A file moved or deleted since is skipped.
    """
    with _LOCK:
        before, _WRITTEN_BEFORE[:] = list(_WRITTEN_BEFORE), [os.path.abspath(path)]
    for name in before:
        try:
            descriptor = os.open(name, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


class HashingWriter:
    """A binary file for astropy to write to that hashes every byte on its way to disk.

    Parameters
    ----------
    handle : file
        The file, open for binary writing.
    release : bool
        Release what is written from the page cache as it goes: every `_PIECE` bytes, the
        kernel is asked to write the new piece back and to drop the pieces it was asked to
        write back before (the pages it has written back by then; a page not yet on disk
        stays). The file's pages are then used again for the next piece instead of fresh
        memory. `finish` asks for the write-back of the rest; `release_previous` drops it.
    """

    mode = "wb"

    def __init__(self, handle, *, release: bool = False) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self._release = release and hasattr(os, "posix_fadvise")
        self._started = self._dropped = 0  # write-back asked up to; dropping asked up to

    def write(self, data) -> int:
        """Hash and write ``data`` (any object with the buffer interface)."""
        self.digest.update(data)
        if not self._release:
            return self._handle.write(data)
        pieces = memoryview(np.frombuffer(data, np.uint8))
        for start in range(0, len(pieces), _PIECE):
            self._handle.write(pieces[start:start + _PIECE])
            if self._handle.tell() - self._started >= _PIECE:
                self._release_pieces()
        return len(pieces)

    def finish(self) -> None:
        """Flush the file and, when releasing, ask for the write-back of all of it."""
        self._handle.flush()
        if self._release:
            os.posix_fadvise(self._handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)

    def _release_pieces(self) -> None:
        self._handle.flush()
        descriptor, written = self._handle.fileno(), self._handle.tell()
        if self._started > self._dropped:
            os.posix_fadvise(descriptor, self._dropped, self._started - self._dropped,
                             os.POSIX_FADV_DONTNEED)
        # On dirty pages, the same advice starts their write-back and drops none of them.
        os.posix_fadvise(descriptor, self._started, written - self._started,
                         os.POSIX_FADV_DONTNEED)
        self._dropped, self._started = self._started, written

    def flush(self) -> None:
        """Flush the file."""
        self._handle.flush()

    def tell(self) -> int:
        """Return the position in the file."""
        return self._handle.tell()

    @property
    def name(self) -> str:
        """Return the file's path (astropy's full-disk message looks at its folder)."""
        return self._handle.name

    @property
    def closed(self) -> bool:
        """Tell whether the file is closed."""
        return self._handle.closed
