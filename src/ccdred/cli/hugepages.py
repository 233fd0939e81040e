"""numpy's request for huge pages, turned off where it makes fresh memory slow.

numpy asks Linux for transparent huge pages (``madvise``) for every array of 4 MB or more. A
virtual machine whose kernel reports its free memory to the host (virtio-balloon's free page
reporting, which Firecracker, QEMU/KVM and Cloud Hypervisor hosts can switch on) hands free
blocks of 2 MB and more back, and the host drops them. A huge page is exactly such a block: a
fresh one made of memory the host has taken back is faulted in again by the host, 2 MB at a
time, and the process waits. The README's *Speed* section gives what this cost on the machine
ccdred is benchmarked on; elsewhere huge pages make large arrays faster, and numpy's default is
kept. Only where transparent huge pages are set to ``madvise`` does numpy's request matter.

The ``ccdred`` command alone decides this, for its own process and the workers it starts (they
inherit its environment); the library never changes numpy's settings. A
``NUMPY_MADVISE_HUGEPAGE`` the user set is always kept.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["VARIABLE", "VIRTIO_DEVICES", "free_memory_reported_to_host",
           "avoid_huge_pages_on_reporting_vm"]

VARIABLE = "NUMPY_MADVISE_HUGEPAGE"
"""numpy's switch, read when numpy is imported (numpy's "Global state" page)."""

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


def avoid_huge_pages_on_reporting_vm(folder: str | Path = VIRTIO_DEVICES) -> bool:
    """Turn numpy's huge-page request off if free memory is reported to a host.

    Unless ``NUMPY_MADVISE_HUGEPAGE`` is set already: then nothing changes. Sets it to ``0``
    in this process's environment (for numpy's import here and in every worker started after)
    and, when numpy is imported already, tells numpy directly.

    Parameters
    ----------
    folder : path
        Linux's list of virtio devices (`free_memory_reported_to_host`).

    Returns
    -------
    bool
        Whether numpy's request was turned off.
    """
    if VARIABLE in os.environ or not free_memory_reported_to_host(folder):
        return False
    os.environ[VARIABLE] = "0"
    if "numpy" in sys.modules:  # numpy read the variable when it was imported
        try:
            from numpy._core.multiarray import _set_madvise_hugepage
        except ImportError:  # numpy 1.26 releases without the numpy._core names
            from numpy.core.multiarray import _set_madvise_hugepage
        _set_madvise_hugepage(False)
    return True
