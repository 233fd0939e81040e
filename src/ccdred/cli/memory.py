"""numpy's request for huge pages, turned off where it makes fresh memory slow.

numpy asks Linux for transparent huge pages (``madvise``) for every array of 4 MB or more. In a
virtual machine whose kernel reports its free memory to the host (virtio-balloon's free page
reporting, as Firecracker and QEMU/KVM guests do), free blocks of 2 MB and more are handed
back and the host drops them. A huge page is exactly such a block: each fresh one is then
faulted in again by the host, 2 MB at a time, and the process waits. On the 2-core VM ccdred
is benchmarked on, a 64 MB array first written 3 s after memory was freed took 160-340 ms in
huge pages and 30-40 ms in 4 KB pages; with numpy's request turned off, an 8-frame 2048^2
night took 18.7-19.2 s instead of 26.5-27.6 s, and a 30 x 4096^2 median combine 4.7-5.1 s
instead of 6.3-7.2 s. Elsewhere huge pages make large arrays faster, and numpy's default is
kept.

The ``ccdred`` command alone decides this, for its own process and the workers it starts (they
inherit its environment); the library never changes numpy's settings. A
``NUMPY_MADVISE_HUGEPAGE`` the user set is always kept.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["free_memory_reported_to_host", "avoid_huge_pages_on_reporting_vm"]

VARIABLE = "NUMPY_MADVISE_HUGEPAGE"
"""numpy's switch, read when numpy is imported (numpy's "Global state" page)."""

_BALLOON_DEVICE = "0x0005"
"""virtio's device ID of the memory balloon."""

_REPORTING_BIT = 5
"""``VIRTIO_BALLOON_F_REPORTING``: the guest reports free pages (linux/virtio_balloon.h)."""


def free_memory_reported_to_host(devices: str | Path = "/sys/bus/virtio/devices") -> bool:
    """Tell whether a virtio memory balloon here has free page reporting on.

    Reads each virtio device's ``device`` ID and ``features`` (one ``0``/``1`` per feature
    bit, bit 0 first) under ``devices``; False when there is none, or on another system.
    """
    try:
        folders = list(Path(devices).iterdir())
    except OSError:
        return False
    for folder in folders:
        try:
            device = (folder / "device").read_text().strip()
            features = (folder / "features").read_text().strip()
        except OSError:
            continue
        if device == _BALLOON_DEVICE and features[_REPORTING_BIT:_REPORTING_BIT + 1] == "1":
            return True
    return False


def avoid_huge_pages_on_reporting_vm(devices: str | Path = "/sys/bus/virtio/devices") -> bool:
    """Turn numpy's huge-page request off if free memory is reported to a host.

    Unless ``NUMPY_MADVISE_HUGEPAGE`` is set already: then nothing changes. Sets it to ``0``
    in this process's environment (for numpy's import here and in every worker started after)
    and, when numpy is imported already, tells numpy directly. Returns whether it did.
    """
    if VARIABLE in os.environ or not free_memory_reported_to_host(devices):
        return False
    os.environ[VARIABLE] = "0"
    if "numpy" in sys.modules:  # numpy read the variable when it was imported
        try:
            from numpy._core.multiarray import _set_madvise_hugepage
        except ImportError:  # numpy 1.x
            from numpy.core.multiarray import _set_madvise_hugepage
        _set_madvise_hugepage(False)
    return True
