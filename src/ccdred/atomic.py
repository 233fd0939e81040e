"""Atomic file output: a temporary file beside the target, renamed into place when complete."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError

__all__ = ["atomic_output", "file_mode", "RELEASE_VARIABLE", "release_written"]

RELEASE_VARIABLE = "CCDRED_RELEASE_WRITTEN"
"""Set to ``1``: the files ccdred writes are released from the page cache as they are written
(`ccdred.io.digests.HashingWriter`). The ``ccdred`` command sets it in a VM that reports free
memory to its host (`ccdred.cli.vm_memory`), where every fresh page of the cache is faulted in
by the host; a product read back is then read from the disk."""


def release_written() -> bool:
    """Tell whether written files are to be released from the page cache (`RELEASE_VARIABLE`)."""
    return os.environ.get(RELEASE_VARIABLE) == "1" and hasattr(os, "posix_fadvise")


@functools.cache
def file_mode() -> int:
    """Return the permissions a new file gets here: 0o666 less the umask (0644 for 022).

    Read from /proc where it is (no change to the process); elsewhere the umask is set and
    put back, once.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it becomes ``path`` only if the block succeeds.

    On any failure the temporary file is removed, so no partial output is ever left, and a
    system error (full disk, no permission) is raised as `OutputError` naming ``path``. The
    file gets the permissions the user's umask gives any new file (`file_mode`).

    Atomic is against a failed or killed process, not a power cut: the file is not forced to
    the disk (no ``fsync``, as astropy, Siril and ccdproc do not), which would cost a tenth of
    a second per product; durability is left to the operating system.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        # mkstemp makes the file private (0600): give it the permissions any new file gets,
        # so a shared calibration library or a served report can be read.
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(path, err.strerror or f"{err} (is the disk full?)") from err
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
