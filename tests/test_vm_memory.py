"""In a VM that reports its free memory to the host, the command turns off numpy's huge pages
and glibc's return of freed memory, and has the files it writes released from the page cache."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from ccdred.atomic import RELEASE_VARIABLE
from ccdred.cli import vm_memory
from ccdred.cli.vm_memory import (
    ALLOCATOR_VARIABLES,
    HUGE_PAGE_VARIABLE,
    adapt_to_reporting_vm,
    free_memory_reported_to_host,
)

ROOT = Path(__file__).resolve().parents[1]

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="numpy asks for huge pages on Linux only")
GLIBC = vm_memory._glibc()
MALLINFO2 = GLIBC and hasattr(ctypes.CDLL(None), "mallinfo2")  # glibc 2.33 and newer
OURS = (HUGE_PAGE_VARIABLE, *ALLOCATOR_VARIABLES, RELEASE_VARIABLE, "GLIBC_TUNABLES")
"""Every variable the command may set or must leave alone."""


def numpy_multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.26 releases without the numpy._core names
        from numpy.core import multiarray
    return multiarray


def unset(monkeypatch, name: str) -> None:
    """Unset a variable for this test; whatever the test sets is undone after it."""
    monkeypatch.setenv(name, "placeholder")  # so that monkeypatch restores the original
    monkeypatch.delenv(name)


def fake_devices(folder: Path, devices: dict[str, tuple[str, str]]) -> Path:
    """Write a /sys/bus/virtio/devices look-alike: name -> (device ID, feature bits)."""
    folder.mkdir()
    for name, (device, features) in devices.items():
        (folder / name).mkdir()
        (folder / name / "device").write_text(device + "\n")
        (folder / name / "features").write_text(features + "\n")
    return folder


REPORTING = "0110010100000000000000000000000010"  # this VM's balloon: bit 5 set
NOT_REPORTING = "0110000100000000000000000000000010"


@pytest.mark.parametrize(("devices", "expected"), [
    ({"virtio0": ("0x0005", REPORTING), "virtio1": ("0x0002", "1" * 40)}, True),
    ({"virtio0": ("0x0005", NOT_REPORTING)}, False),
    # Bit 5 of another device (a block device here) is another feature.
    ({"virtio1": ("0x0002", REPORTING)}, False),
    ({}, False),
])
def test_a_balloon_with_free_page_reporting_is_recognised(tmp_path, devices, expected):
    assert free_memory_reported_to_host(fake_devices(tmp_path / "devices", devices)) is expected


def test_no_virtio_folder_and_unreadable_devices_mean_no_reporting(tmp_path):
    assert free_memory_reported_to_host(tmp_path / "absent") is False
    folder = fake_devices(tmp_path / "devices", {"virtio0": ("0x0005", REPORTING)})
    (folder / "virtio0" / "features").unlink()
    assert free_memory_reported_to_host(folder) is False


@pytest.fixture
def untouched(monkeypatch):
    """numpy's huge-page module with the flag on; no variable set; mallopt calls recorded.

    numpy's flag and the environment are restored after the test; the test process's own
    allocator is never changed (the subprocess tests below change a command's).
    """
    multiarray = numpy_multiarray()
    before = multiarray._get_madvise_hugepage()
    for name in (*OURS, "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"):
        unset(monkeypatch, name)
    multiarray._set_madvise_hugepage(True)
    calls = []
    monkeypatch.setattr(vm_memory, "_mallopt", lambda *call: calls.append(call) or True)
    yield multiarray, calls
    multiarray._set_madvise_hugepage(before)


@linux_only
def test_the_settings_are_made_for_workers_and_this_process(tmp_path, untouched):
    multiarray, calls = untouched
    devices = fake_devices(tmp_path / "devices", {"virtio0": ("0x0005", REPORTING)})
    expected = (("huge pages", "freed memory", "written files") if GLIBC
                else ("huge pages", "written files"))
    assert adapt_to_reporting_vm(devices) == expected
    assert os.environ[RELEASE_VARIABLE] == "1"
    assert multiarray._get_madvise_hugepage() is False
    if GLIBC:  # M_MMAP_MAX 0, M_TRIM_THRESHOLD 2 GiB
        assert calls == [(-4, 0), (-1, 2**31 - 1)]
    # A worker started after it (spawned, as local workers are) has numpy's request off and
    # an allocator that keeps a freed 64 MB array in its heap.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        setting, huge_pages, allocator, release = pool.submit(worker_setting).result(timeout=120)
    assert (setting, huge_pages, release) == ("0", False, "1")
    if MALLINFO2:
        assert allocator == (False, True)


def worker_setting() -> tuple[str | None, bool, tuple[bool, bool] | None, str | None]:
    return (os.environ.get(HUGE_PAGE_VARIABLE), bool(numpy_multiarray()._get_madvise_hugepage()),
            freed_array_kept() if MALLINFO2 else None, os.environ.get(RELEASE_VARIABLE))


@linux_only
def test_without_a_reporting_balloon_nothing_changes(tmp_path, untouched):
    multiarray, calls = untouched
    devices = fake_devices(tmp_path / "devices", {"virtio0": ("0x0005", NOT_REPORTING)})
    assert adapt_to_reporting_vm(devices) == ()
    assert not set(OURS) & set(os.environ)
    assert multiarray._get_madvise_hugepage() is True
    assert calls == []


@pytest.mark.parametrize(("name", "value"), [
    ("MALLOC_TRIM_THRESHOLD_", "65536"),  # as Dask's nanny sets it
    ("MALLOC_MMAP_MAX_", "65536"),
    ("MALLOC_MMAP_THRESHOLD_", "1048576"),  # which MALLOC_MMAP_MAX_=0 would silence
    ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576"),
])
def test_allocator_settings_the_user_made_are_kept(tmp_path, monkeypatch, untouched,
                                                   name, value):
    _, calls = untouched
    monkeypatch.setenv(name, value)
    devices = fake_devices(tmp_path / "devices", {"virtio0": ("0x0005", REPORTING)})
    assert adapt_to_reporting_vm(devices) == ("huge pages", "written files")
    assert os.environ[name] == value
    assert not set(ALLOCATOR_VARIABLES) - {name} & set(os.environ)
    assert calls == []


@pytest.mark.parametrize(("name", "change"), [(HUGE_PAGE_VARIABLE, "huge pages"),
                                            (RELEASE_VARIABLE, "written files")])
def test_a_setting_the_user_made_is_kept(tmp_path, monkeypatch, untouched, name, change):
    monkeypatch.setenv(name, "7")
    devices = fake_devices(tmp_path / "devices", {"virtio0": ("0x0005", REPORTING)})
    assert change not in adapt_to_reporting_vm(devices)
    assert os.environ[name] == "7"


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def mallinfo2() -> _Mallinfo2:
    function = ctypes.CDLL(None).mallinfo2
    function.restype = _Mallinfo2
    return function()


def freed_array_kept() -> tuple[bool, bool]:
    """Allocate and free a 64 MB array (above glibc's largest mmap threshold, 32 MB).

    Returns whether it was mapped on its own (glibc's default) and whether its memory stayed
    in the heap, free for the next array, once it was freed.
    """
    mapped_before = mallinfo2().hblkhd
    array = np.ones(2**23)
    mapped = mallinfo2().hblkhd - mapped_before >= array.nbytes
    del array
    return mapped, mallinfo2().fordblks >= 2**26


COMMAND = """
import functools, sys
import ccdred.cli as cli
from ccdred.cli import vm_memory
cli.adapt_to_reporting_vm = functools.partial(vm_memory.adapt_to_reporting_vm, sys.argv.pop(1))
sys.argv[0] = "ccdred"
try:
    cli.main()
except SystemExit as done:
    assert not done.code, done.code
try:
    from numpy._core.multiarray import _get_madvise_hugepage
except ImportError:
    from numpy.core.multiarray import _get_madvise_hugepage
from test_vm_memory import MALLINFO2, freed_array_kept
import os
print("huge pages:", _get_madvise_hugepage(), "allocator:", MALLINFO2 and freed_array_kept(),
      "release:", os.environ.get("CCDRED_RELEASE_WRITTEN"))
"""


@linux_only
@pytest.mark.parametrize(("features", "user", "huge_pages", "allocator", "release"), [
    (REPORTING, {}, "False", "(False, True)", "1"),
    (REPORTING, {HUGE_PAGE_VARIABLE: "1"}, "True", "(False, True)", "1"),  # the user's wins
    (REPORTING, {"MALLOC_TRIM_THRESHOLD_": "65536"}, "False", "(True, False)", "1"),
    (REPORTING, {RELEASE_VARIABLE: "0"}, "False", "(False, True)", "0"),
    (NOT_REPORTING, {}, "True", "(True, False)", "None"),  # the defaults (numpy on Linux 4.6+)
    (NOT_REPORTING, {HUGE_PAGE_VARIABLE: "1"}, "True", "(True, False)", "None"),
    (NOT_REPORTING, {HUGE_PAGE_VARIABLE: "0"}, "False", "(True, False)", "None"),
])
@linux_only
def test_the_command_decides_before_numpy_is_imported(tmp_path, features, user, huge_pages,
                                                      allocator, release):
    devices = fake_devices(tmp_path / "devices", {"virtio0": ("0x0005", features)})
    image = tmp_path / "frame.fits"
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(image)
    env = {key: value for key, value in os.environ.items() if key not in OURS} | user
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT / "tests"),
                                                      env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", COMMAND, str(devices), "info", str(image)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    expected = (f"huge pages: {huge_pages} allocator: {allocator if MALLINFO2 else False} "
                f"release: {release}")
    assert done.stdout.strip().splitlines()[-1] == expected
