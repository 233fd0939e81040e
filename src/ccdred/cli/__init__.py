"""The ``ccdred`` command: a thin layer over the Python API.

Exit status: 0 success, 1 the work failed, 2 bad input or bad arguments (nothing written),
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import atexit
import gc
import signal

from . import frames, library, reduce  # noqa: F401 - the commands register themselves
from .app import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, app, parse_size, stop_on
from .vm_memory import adapt_to_reporting_vm

__all__ = ["app", "main", "parse_size", "EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT"]


def main() -> None:
    """Entry point of the ``ccdred`` console script.

    SIGTERM ends a run as Ctrl-C does: one line, the workers stopped, exit status 143. Both
    go through `stop_on`, which remembers them: a run whose interrupt Python swallowed (raised
    while a finaliser ran, where exceptions are only printed) still ends with 128 + signum.

    In a virtual machine that hands its free memory back to the host, numpy's request for
    huge pages and glibc's return of freed memory are turned off first, and the files written
    are released from the page cache (`ccdred.cli.vm_memory`).

    At exit, the objects left are not walked by the garbage collector (`gc.freeze`): after a
    night, that walk over what numba and astropy made took 0.3-0.4 s of every command.
    """
    atexit.unregister(gc.freeze)  # once, however many times main() runs in a process
    atexit.register(gc.freeze)
    adapt_to_reporting_vm()
    signal.signal(signal.SIGTERM, stop_on)
    signal.signal(signal.SIGINT, stop_on)
    app()
