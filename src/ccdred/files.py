"""Finding a night's files: the folder tree (links followed once, loops refused) and duplicates.

Only names and file identities are looked at here, plus the bytes of files that may be copies
of each other; what a file holds is `ccdred.inventory`'s business.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from .io import is_image_name, sha256

__all__ = ["find_fits", "walk_fits", "Duplicate", "find_duplicates", "HEAD_BYTES",
           "require_directory"]


def require_directory(path: str | Path) -> Path:
    """Return ``path`` as a `Path` if it is a directory.

    Raises
    ------
    ValueError
        It does not exist, or it is not a directory (saying which).
    """
    path = Path(path)
    if not path.is_dir():
        problem = "is not a directory" if path.exists() else "does not exist"
        raise ValueError(f"{path}: {problem}")
    return path


def find_fits(root: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Every FITS or XISF file below ``root`` (recursive, any case), sorted, less ``exclude``.

    Directories whose names look like FITS files are returned too, so the caller can report them;
    so are links that lead nowhere or in a loop. Linked folders are followed, each folder once.
    """
    return walk_fits(Path(root), exclude)[0]


def walk_fits(root: Path, exclude: Iterable[Path] = ()
              ) -> tuple[list[Path], list[tuple[Path, str]]]:
    """FITS and XISF files below ``root``, and the entries that cannot be followed, with why."""
    excluded = {_identity_of(Path(p)) for p in exclude} - {None}
    seen: set[tuple[int, int]] = set()
    found: list[Path] = []
    problems: list[tuple[Path, str]] = []

    def unreadable(err: OSError) -> None:
        problems.append((Path(err.filename or root), f"folder cannot be read ({err.strerror})"))

    top = root.resolve()
    for folder, dirs, files in os.walk(root, followlinks=True, onerror=unreadable):
        ident = _identity_of(Path(folder))
        if ident is None or ident in seen or ident in excluded:
            dirs[:] = []  # a folder met again through a link, or the output
            continue
        seen.add(ident)
        for name in sorted(dirs):
            path = Path(folder) / name
            if is_image_name(path) and not name.startswith("."):
                found.append(path)  # a directory named like a FITS file: reported
            if path.is_symlink() and top.is_relative_to(path.resolve()):
                dirs.remove(name)
                problems.append((path, "a link back to a folder that holds it (a loop): "
                                       "not followed"))
        found += [Path(folder) / name for name in files
                  if is_image_name(Path(name)) and not name.startswith(".")]
    return sorted(set(found)), problems


def _identity_of(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except (OSError, RuntimeError):
        return None
    return (stat.st_dev, stat.st_ino)


class Duplicate(NamedTuple):
    """A file holding the very bytes of another (a copy, a symlink, a hard link)."""

    path: Path
    same_as: Path
    how: str
    """``symlink or hard link`` or ``same SHA-256 <first 12 digits>``."""


HEAD_BYTES = 1 << 16
"""Bytes hashed first: frames that differ almost always differ in their header."""


def find_duplicates(paths: Iterable[Path]) -> list[Duplicate]:
    """Find files whose bytes are another's, keeping one of each (the original, by name).

    Links are found by the file they point to; copies by size, then the SHA-256 of their
    first `HEAD_BYTES`, then of all their bytes, so distinct frames are rarely read twice.
    Of a set of equal files the one kept is a real file before a link, then the shortest
    name (``x.fits`` before ``x (1).fits``), then the first in order.
    """
    order = sorted(set(paths), key=lambda p: (p.is_symlink(), len(p.name), str(p)))
    groups: dict[Any, list[Path]] = {}
    for path in order:
        try:
            stat = path.stat()
        except OSError:
            continue
        if path.is_file():
            groups.setdefault(("inode", stat.st_dev, stat.st_ino), []).append(path)
    found = [Duplicate(p, members[0], "symlink or hard link to the same file")
             for members in groups.values() for p in members[1:]]
    firsts = [members[0] for members in groups.values()]
    for key in ("size", "head"):
        buckets: dict[Any, list[Path]] = {}
        for path in firsts:
            buckets.setdefault(_identity(path, key), []).append(path)
        firsts = [p for members in buckets.values() if len(members) > 1 for p in members]
    by_digest: dict[str, list[Path]] = {}
    for path in firsts:  # equal in all their bytes; kept in the preferred order
        by_digest.setdefault(sha256(path), []).append(path)
    found += [Duplicate(p, members[0], f"same SHA-256 {digest[:12]}")
              for digest, members in by_digest.items() for p in members[1:]]
    return found


def _identity(path: Path, key: str) -> Any:
    return path.stat().st_size if key == "size" else sha256(path, limit=HEAD_BYTES)
