"""Where a night's tasks run: in this process, in local processes, or on a Dask cluster.

Every executor runs the same picklable, top-level task functions on the same inputs, and each
task reads what it needs (raw files, written masters) from disk, so the products do not depend
on the executor. Remote Dask workers must therefore see the same file system (same paths).
"""

from __future__ import annotations

import atexit
import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from ..errors import WorkerLostError

__all__ = ["Executor", "InProcess", "LocalProcesses", "DaskCluster", "make_executor",
           "check_executor"]


class Executor(Protocol):
    """Runs tasks; ``workers`` is how many run at once."""

    workers: int
    description: str

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]
                      ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(items[index]))`` as tasks finish; the first error is raised."""

    def close(self, *, stop: bool = False) -> None:
        """Release workers; with ``stop``, end running tasks at once (an interrupted run)."""


def threads_per_worker(workers: int) -> int:
    """Compiled-kernel threads each worker may use so that workers x threads <= cores."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _start_worker(threads: int) -> None:
    """Prepare a local worker process: its share of the cores, and its tie to the main process.

    OpenMP libraries start a thread per core by default; in several workers at once that
    oversubscribes the machine, so the share is set before any loads. (Dask's workers set
    this themselves.) Ctrl-C reaches every process of the terminal's group: the main process
    alone handles it and stops the workers. A worker whose main process is gone (killed with
    SIGKILL or SIGTERM) exits at once instead of waiting for tasks forever. At its end, the
    garbage collector's walk over every object is skipped (`gc.freeze`; 0.3-0.4 s after a
    night's tasks, which the pool's shutdown waits for): a spawned worker ends as Python
    does, through its exit handlers (a forked one would end through ``os._exit``).
    """
    atexit.register(gc.freeze)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True,
                         name="ccdred-parent-watch").start()


def _exit_with(sentinel: int) -> None:
    """Wait until the main process ends, then end this worker (no cleanup: it is an orphan)."""
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


class InProcess:
    """Run every task here, one after the other (``--workers 1``)."""

    workers = 1
    description = "in-process"

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]
                      ) -> Iterator[tuple[int, Any]]:
        """Run the tasks in order."""
        for index, item in enumerate(items):
            yield index, fn(item)

    def close(self, *, stop: bool = False) -> None:
        """Nothing to release."""


class LocalProcesses:
    """A pool of ``workers`` spawned processes on this machine (the default)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.description = f"{workers} local processes"
        # Spawned, not forked: numba's and OpenMP's thread pools do not survive a fork.
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_start_worker,
                                         initargs=(threads_per_worker(workers),))

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]
                      ) -> Iterator[tuple[int, Any]]:
        """Submit every task; yield results as they finish."""
        futures: dict[Future, int] = {self._pool.submit(fn, item): i
                                      for i, item in enumerate(items)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        raise WorkerLostError(
                            "a worker process died before finishing its task (killed, or out "
                            "of memory?); what was written is complete: run the same command "
                            "again to resume, with fewer --workers if memory is short"
                        ) from None
                    yield futures[future], result
        finally:
            for future in pending:
                future.cancel()

    def close(self, *, stop: bool = False) -> None:
        """Shut the pool down; with ``stop``, end the running tasks now (an interrupted run)."""
        if stop:
            _stop_workers(self._pool)
        self._pool.shutdown(wait=True, cancel_futures=True)


STOP_SECONDS = 10.0
"""How long a stopped worker may take to end before it is killed."""


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End a pool's workers now, and make sure its result reader cannot wait for them forever.

    The pool has no public way to stop running tasks (what they were writing is a temporary
    file the next run removes). A worker ended while it was sending a result leaves half a
    message in the result pipe, and the pool's reader thread then waits for the rest, which
    never comes: the pool itself holds the pipe's other end open, so the reader never sees
    the end of the file, and `shutdown` (and the interpreter's exit) wait for that thread
    forever. Closing that end once the workers are gone ends the read: the pool takes itself
    for broken and shuts down.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    results = getattr(pool, "_result_queue", None)
    writer = getattr(results, "_writer", None)
    if writer is not None:
        writer.close()


MALLOC_TRIM = "MALLOC_TRIM_THRESHOLD_"
"""glibc variable Dask's nanny sets in its workers by default.

Setting it turns off glibc's adaptive mmap threshold, so every frame-sized temporary is mapped
afresh and faulted in page by page: a science frame then makes 180,000 page faults instead of
12,000 and takes 45% longer (measured on 2048x2048 frames). ccdred's local workers inherit the
allocator variables of the environment that starts them, as local processes do: none (glibc's
defaults), or the ones the ``ccdred`` command sets in a VM that reports free memory to its
host (`ccdred.cli.vm_memory`). ``MALLOC_MMAP_MAX_=0`` among them keeps arrays from being
mapped afresh whatever the trim threshold.
"""


def environment_variable(name: str) -> str | None:
    """Return a variable of the calling process's environment (run on workers to inspect them).

    A top-level function, so Dask sends it by name; ``os.environ.get`` would travel with a copy
    of the sender's environment.
    """
    return os.environ.get(name)


def _local_cluster(workers: int):
    """Start a LocalCluster of single-threaded workers on loopback; they keep our `MALLOC_TRIM`."""
    import dask
    from dask.distributed import LocalCluster

    environment = os.environ.copy()
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{MALLOC_TRIM}": None}):
            # No dashboard; the scheduler's HTTP server (health, metrics) still starts: on a
            # free port, not Dask's 8787, which another cluster may hold.
            return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                host="127.0.0.1", dashboard_address=None,
                                scheduler_kwargs={"dashboard": False,
                                                  "dashboard_address": "127.0.0.1:0"})
    finally:
        # The nanny writes its workers' variables into this process's environment too: undo
        # just those changes (clearing the whole environment would race other threads).
        for name in set(os.environ) - set(environment):
            del os.environ[name]
        for name, value in environment.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


POLL_SECONDS = 5.0
"""How often a Dask run looks at its cluster while it waits for tasks."""

NO_WORKER_SECONDS = 120.0
"""A Dask run fails when its cluster has had no worker for this long (never a hang)."""


def _allowed_failures() -> int:
    import dask

    return int(dask.config.get("distributed.scheduler.allowed-failures", 3)) + 1


class DaskCluster:
    """Tasks on a Dask distributed cluster: an existing scheduler, or a LocalCluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler, e.g. ``tcp://10.0.0.5:8786``.
    local_workers : int, optional
        Start a LocalCluster of this many single-threaded worker processes on loopback
        instead (closed again by `close`).
    """

    def __init__(self, scheduler: str | None = None, local_workers: int | None = None) -> None:
        try:
            from dask.distributed import Client
        except ImportError as err:
            raise RuntimeError("Dask is not installed: pip install 'ccdred[dask]'") from err
        if (scheduler is None) == (local_workers is None):
            raise ValueError("give either a scheduler address or a number of local workers")
        self._cluster = None
        if scheduler is not None:
            self._client = Client(scheduler, timeout="30s")
            self.description = f"Dask cluster at {scheduler}"
        else:
            if local_workers < 1:
                raise ValueError(f"local_workers must be at least 1, got {local_workers}")
            self._cluster = _local_cluster(local_workers)
            self._client = Client(self._cluster)
            self.description = f"Dask LocalCluster of {local_workers} workers"
        self._client.wait_for_workers(1, timeout=60)
        self.workers = max(1, sum(w.get("nthreads", 1) for w in
                                  self._client.scheduler_info()["workers"].values()))
        if scheduler is not None and self._fresh_mappings():
            self.description += (f" (its workers set {MALLOC_TRIM}, which makes ccdred's "
                                 f"tasks about 45% slower: see the README's 'Executors')")

    def _fresh_mappings(self) -> bool:
        """Tell whether a worker maps its large arrays afresh: `MALLOC_TRIM` set, and mmap on."""
        trim = self._client.run(environment_variable, MALLOC_TRIM)
        mmap_max = self._client.run(environment_variable, "MALLOC_MMAP_MAX_")
        return any(trim[worker] is not None and mmap_max.get(worker) != "0" for worker in trim)

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]
                      ) -> Iterator[tuple[int, Any]]:
        """Submit every task to the cluster; yield results as they finish."""
        from dask.distributed import KilledWorker, wait

        futures = self._client.map(fn, list(items), pure=False)
        index = {future.key: i for i, future in enumerate(futures)}
        pending = set(futures)
        workerless_since: float | None = None
        try:
            while pending:
                try:
                    done, pending = wait(pending, timeout=POLL_SECONDS,
                                         return_when="FIRST_COMPLETED")
                except TimeoutError:
                    workerless_since = self._check_workers(workerless_since)
                    continue
                for future in done:
                    try:
                        result = future.result()
                    except KilledWorker as err:
                        raise WorkerLostError(
                            f"Dask workers died running a task {_allowed_failures()} times "
                            f"({err.last_worker.address if err.last_worker else 'no worker'}"
                            f"; out of memory?): what was written is complete; run the same "
                            f"command again to resume, on workers with more memory") from None
                    yield index[future.key], result
        finally:
            self._client.cancel([f for f in futures if not f.done()])

    def _check_workers(self, since: float | None) -> float | None:
        """Return since when the cluster has had no worker (None: it has some).

        Raises `WorkerLostError` once that has lasted `NO_WORKER_SECONDS`.
        """
        if self._client.scheduler_info().get("workers"):
            return None
        now = time.monotonic()
        if since is not None and now - since > NO_WORKER_SECONDS:
            raise WorkerLostError(f"the Dask cluster has had no worker for "
                                  f"{NO_WORKER_SECONDS:g} s: its workers died or left; what "
                                  f"was written is complete: run the same command again to "
                                  f"resume once workers are back")
        return since if since is not None else now

    def close(self, *, stop: bool = False) -> None:
        """Disconnect, and stop the LocalCluster this executor started (its workers too)."""
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(workers: int | None = None, *, scheduler: str | None = None,
                  dask_local: int | None = None) -> Executor:
    """Choose the executor from command-line style settings.

    ``scheduler`` or ``dask_local`` select Dask; otherwise ``workers`` local processes
    (default: every core), or this process alone for ``workers=1``.
    """
    check_executor(workers, scheduler=scheduler, dask_local=dask_local)
    if scheduler is not None or dask_local is not None:
        return DaskCluster(scheduler, dask_local)
    count = (os.cpu_count() or 1) if workers is None else workers
    return InProcess() if count == 1 else LocalProcesses(count)


def check_executor(workers: int | None = None, *, scheduler: str | None = None,
                   dask_local: int | None = None) -> None:
    """Refuse executor settings that cannot work, before any work (`make_executor` uses them).

    Raises
    ------
    ValueError
        ``workers`` or ``dask_local`` below 1, both Dask and local workers asked for, both a
        scheduler and a local cluster, or a scheduler address with spaces or nothing in it.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if dask_local is not None and dask_local < 1:
        raise ValueError(f"dask_local must be at least 1 worker, got {dask_local}")
    if (scheduler is not None or dask_local is not None) and workers is not None:
        raise ValueError("--workers applies to local processes; with Dask, the cluster's "
                         "workers run the tasks")
    if scheduler is not None and dask_local is not None:
        raise ValueError("give --scheduler (a running cluster) or --dask-local (a new one), "
                         "not both")
    if scheduler is not None and (not scheduler.strip() or any(c.isspace() for c in scheduler)):
        raise ValueError(f"scheduler must be an address like tcp://host:8786, got "
                         f"{scheduler!r}")
