"""Atomic file output: a temporary file beside the target, renamed into place when complete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError

__all__ = ["atomic_output"]


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it becomes ``path`` only if the block succeeds.

    On any failure the temporary file is removed, so no partial output is ever left, and a
    system error (full disk, no permission) is raised as `OutputError` naming ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(path, err.strerror or f"{err} (is the disk full?)") from err
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
