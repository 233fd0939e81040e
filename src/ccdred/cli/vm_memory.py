"""Fresh memory in a virtual machine that hands its free memory back to the host.

A VM whose kernel reports its free memory to the host (virtio-balloon's free page reporting,
which Firecracker, QEMU/KVM and Cloud Hypervisor hosts can switch on) hands free blocks of 2 MB
and more back, and the host drops them. Memory made of such blocks is faulted in again by the
host when it is next touched, and the process waits. Three habits make a reduction touch fresh
memory over and over, and the ``ccdred`` command changes all three there:

- numpy asks Linux for transparent huge pages (``madvise``) for every array of 4 MB or more: a
  fresh huge page is exactly such a block (it matters where huge pages are set to ``madvise``);
- glibc's allocator maps the largest arrays afresh and unmaps them when they are freed (its
  ``mmap`` threshold grows to 32 MB at most; a 2048x2048 float64 array is just above it), and
  gives the top of its heap back to the kernel: every frame's temporaries are faulted in page
  by page again. The command keeps freed memory in the process instead, to be used again (in
  threads other than the main one, glibc still maps requests over 64 MB afresh): the peak
  memory grows a little (a heap cannot give back a free block between blocks in use), and is
  not given back until the process ends;
- Linux keeps every file written in its page cache, in pages taken from free memory: a night's
  products are gigabytes of them. The command has the files it writes released from the page
  cache as they are written (`ccdred.atomic.RELEASE_VARIABLE`), so that the same pages
  hold the next piece; reading a product back then reads the disk.

The README's *Speed* section gives what each cost on the machine ccdred is benchmarked on;
elsewhere the defaults are kept. The ``ccdred`` command alone decides this, for its own process
and the workers it starts (they inherit its environment); the library never changes these
settings. A setting the user made is always kept.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import MappingProxyType

from ..atomic import RELEASE_VARIABLE

__all__ = ["HUGE_PAGE_VARIABLE", "ALLOCATOR_VARIABLES", "VIRTIO_DEVICES",
           "free_memory_reported_to_host", "adapt_to_reporting_vm"]

HUGE_PAGE_VARIABLE = "NUMPY_MADVISE_HUGEPAGE"
"""numpy's switch, read when numpy is imported (numpy's "Global state" page)."""

ALLOCATOR_VARIABLES = MappingProxyType({"MALLOC_MMAP_MAX_": 0,
                                        "MALLOC_TRIM_THRESHOLD_": 2**31 - 1})
"""glibc's variables, read when a process starts: no ``mmap`` for arrays (the heap grows
instead), and no trimming until 2 GiB at the top of the heap are free (``man mallopt``)."""

_USER_ALLOCATOR_VARIABLES = (*ALLOCATOR_VARIABLES, "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
"""Any of these set means the user has chosen the allocator's settings."""

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
    """Adapt numpy, glibc's allocator and ccdred's writes if free memory is reported to the host.

    Parameters
    ----------
    folder : path
        Linux's list of virtio devices (`free_memory_reported_to_host`).

    Returns
    -------
    tuple of str
        What was changed, among ``"huge pages"``, ``"freed memory"`` and ``"written files"``.
    """
    if not free_memory_reported_to_host(folder):
        return ()
    changes = {"huge pages": _avoid_huge_pages(), "freed memory": _keep_freed_memory(),
               "written files": _release_written_files()}
    return tuple(name for name, changed in changes.items() if changed)


def _avoid_huge_pages() -> bool:
    """Turn numpy's huge-page request off, unless ``NUMPY_MADVISE_HUGEPAGE`` is set already.

    Sets it to ``0`` in this process's environment (for numpy's import here and in every worker
    started after) and, when numpy is imported already, tells numpy directly.

    Returns
    -------
    bool
        Whether numpy's request was turned off.
    """
    if HUGE_PAGE_VARIABLE in os.environ:
        return False
    os.environ[HUGE_PAGE_VARIABLE] = "0"
    if "numpy" in sys.modules:  # numpy read the variable when it was imported
        try:
            from numpy._core.multiarray import _set_madvise_hugepage
        except ImportError:  # numpy 1.26 releases without the numpy._core names
            from numpy.core.multiarray import _set_madvise_hugepage
        _set_madvise_hugepage(False)
    return True


def _keep_freed_memory() -> bool:
    """Make glibc's allocator keep freed memory for reuse, unless its settings are the user's.

    Nothing changes where the C library is not glibc, or where the user has set any of
    `_USER_ALLOCATOR_VARIABLES` or a ``glibc.malloc`` tunable (``GLIBC_TUNABLES``). Otherwise
    sets `ALLOCATOR_VARIABLES` in this process's environment (every worker started after reads
    them when it starts) and the same settings in this process with ``mallopt``.

    Returns
    -------
    bool
        Whether the settings were changed in this process.
    """
    user_set = (any(name in os.environ for name in _USER_ALLOCATOR_VARIABLES)
                or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""))
    if user_set or not _glibc():
        return False
    changed = True
    for name, value in ALLOCATOR_VARIABLES.items():
        os.environ[name] = str(value)
        changed &= _mallopt(_MALLOPT_PARAMETERS[name], value)
    return changed


def _release_written_files() -> bool:
    """Have ccdred release the files it writes from the page cache, unless the user decided.

    Sets `ccdred.atomic.RELEASE_VARIABLE` to ``1`` in this process's environment (read
    at every write, here and in every worker started after), unless it is set already.

    Returns
    -------
    bool
        Whether the setting was made.
    """
    if RELEASE_VARIABLE in os.environ:
        return False
    os.environ[RELEASE_VARIABLE] = "1"
    return True


def _mallopt(parameter: int, value: int) -> bool:
    """Change a setting of glibc's allocator in this process; tell whether it took."""
    import ctypes

    return ctypes.CDLL(None).mallopt(parameter, value) == 1


def _glibc() -> bool:
    """Whether this process runs on glibc (whose allocator reads `ALLOCATOR_VARIABLES`)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # no such name here: another C library
        return False
