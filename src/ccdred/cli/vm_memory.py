"""Fresh memory in a virtual machine that hands its free memory back to the host.

A VM whose kernel reports its free memory to the host (virtio-balloon's free page reporting,
which Firecracker, QEMU/KVM and Cloud Hypervisor hosts can switch on) hands free blocks of 2 MB
and more back, and the host drops them. Memory made of such blocks is faulted in again by the
host when it is next touched, and the process waits. Two habits make a reduction touch fresh
memory over and over, and the ``ccdred`` command turns both off there:

- numpy asks Linux for transparent huge pages (``madvise``) for every array of 4 MB or more: a
  fresh huge page is exactly such a block (it matters where huge pages are set to ``madvise``);
- glibc's allocator maps the largest arrays afresh and unmaps them when they are freed (its
  ``mmap`` threshold grows to 32 MB at most; a 2048x2048 float64 array is just above it), and
  gives the top of its heap back to the kernel: every frame's temporaries are faulted in page
  by page again. The command keeps freed memory in the process instead, to be used again: its peak
  memory is what it was, but it is not given back until the process ends.

The README's *Speed* section gives what each cost on the machine ccdred is benchmarked on;
elsewhere the defaults are kept. The ``ccdred`` command alone decides this, for its own process
and the workers it starts (they inherit its environment); the library never changes numpy's
or the allocator's settings. A setting the user made is always kept.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["VARIABLE", "ALLOCATOR_VARIABLES", "VIRTIO_DEVICES", "free_memory_reported_to_host",
           "adapt_to_reporting_vm", "avoid_huge_pages", "keep_freed_memory"]

VARIABLE = "NUMPY_MADVISE_HUGEPAGE"
"""numpy's switch, read when numpy is imported (numpy's "Global state" page)."""

ALLOCATOR_VARIABLES = {"MALLOC_MMAP_MAX_": 0, "MALLOC_TRIM_THRESHOLD_": 2**31 - 1}
"""glibc's variables, read when a process starts: no ``mmap`` for arrays (the heap grows
instead), and no trimming of the heap until 2 GiB of it are free (``man mallopt``)."""

_MALLOPT_PARAMETERS = {"MALLOC_MMAP_MAX_": -4, "MALLOC_TRIM_THRESHOLD_": -1}
"""``M_MMAP_MAX`` and ``M_TRIM_THRESHOLD`` (malloc.h): the same settings for a running process."""

VIRTIO_DEVICES = Path("/sys/bus/virtio/devices")
"""Where Linux lists virtio devices, one folder each."""

_BALLOON_DEVICE = "0x0005"
"""virtio's device ID of the memory balloon."""

_REPORTING_BIT = 5
"""``VIRTIO_BALLOON_F_REPORTING``: the guest reports free pages (linux/virtio_balloon.h)."""


def free_memory_reported_to_host(folder: str | Path = VIRTIO_DEVICES) -> bool:
    """Tell whether a virtio memory balloon here has free page reporting on.

    Parameters
    ----------
    folder : path
        Linux's list of virtio devices: each device's folder holds its ``device`` ID and its
        negotiated ``features`` (one ``0``/``1`` per feature bit, bit 0 first).

    Returns
    -------
    bool
        False when there is no such balloon, or no such folder (another system).
    """
    try:
        devices = list(Path(folder).iterdir())
    except OSError:
        return False
    for device in devices:
        try:
            kind = (device / "device").read_text().strip()
            features = (device / "features").read_text().strip()
        except OSError:
            continue
        if kind == _BALLOON_DEVICE and features[_REPORTING_BIT:_REPORTING_BIT + 1] == "1":
            return True
    return False


def adapt_to_reporting_vm(folder: str | Path = VIRTIO_DEVICES) -> tuple[str, ...]:
    """Turn off numpy's huge pages and glibc's return of freed memory if free memory is reported.

    Parameters
    ----------
    folder : path
        Linux's list of virtio devices (`free_memory_reported_to_host`).

    Returns
    -------
    tuple of str
        What was changed: ``"huge pages"``, ``"freed memory"``, both or neither.
    """
    if not free_memory_reported_to_host(folder):
        return ()
    changes = {"huge pages": avoid_huge_pages(), "freed memory": keep_freed_memory()}
    return tuple(name for name, changed in changes.items() if changed)


def avoid_huge_pages() -> bool:
    """Turn numpy's huge-page request off, unless ``NUMPY_MADVISE_HUGEPAGE`` is set already.

    Sets it to ``0`` in this process's environment (for numpy's import here and in every worker
    started after) and, when numpy is imported already, tells numpy directly.

    Returns
    -------
    bool
        Whether numpy's request was turned off.
    """
    if VARIABLE in os.environ:
        return False
    os.environ[VARIABLE] = "0"
    if "numpy" in sys.modules:  # numpy read the variable when it was imported
        try:
            from numpy._core.multiarray import _set_madvise_hugepage
        except ImportError:  # numpy 1.26 releases without the numpy._core names
            from numpy.core.multiarray import _set_madvise_hugepage
        _set_madvise_hugepage(False)
    return True


def keep_freed_memory() -> bool:
    """Make glibc's allocator keep freed memory for reuse, unless its settings are the user's.

    Nothing changes where the C library is not glibc, or where any of `ALLOCATOR_VARIABLES`
    or a ``glibc.malloc`` tunable (``GLIBC_TUNABLES``) is set already. Otherwise sets the
    variables in this process's environment (every worker started after reads them when it
    starts) and the same settings in this process with ``mallopt``.

    Returns
    -------
    bool
        Whether the settings were changed.
    """
    user_set = (any(name in os.environ for name in ALLOCATOR_VARIABLES)
                or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""))
    if user_set or not _glibc():
        return False
    for name, value in ALLOCATOR_VARIABLES.items():
        os.environ[name] = str(value)
        _mallopt(_MALLOPT_PARAMETERS[name], value)
    return True


def _mallopt(parameter: int, value: int) -> None:
    """Change a setting of glibc's allocator in this process."""
    import ctypes

    ctypes.CDLL(None).mallopt(parameter, value)


def _glibc() -> bool:
    """Whether this process runs on glibc (whose allocator reads `ALLOCATOR_VARIABLES`)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # no such name here: another C library
        return False
