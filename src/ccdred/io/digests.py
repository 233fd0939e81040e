"""SHA-256 of files, remembered: a file hashed while it was written or read is not read again.

A remembered digest is used only while the file is the same one: same device, inode, size and
modification time (in nanoseconds); any change and the file is hashed afresh.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

__all__ = ["sha256", "remember", "HashingWriter"]

_KNOWN: dict[str, tuple[tuple[int, int, int, int], str]] = {}
_LOCK = threading.Lock()


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


class HashingWriter:
    """A binary file for astropy to write to that hashes every byte on its way to disk."""

    mode = "wb"

    def __init__(self, handle) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def write(self, data) -> int:
        """Hash and write ``data``."""
        self.digest.update(data)
        return self._handle.write(data)

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
