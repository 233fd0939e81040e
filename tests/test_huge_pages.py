"""The command turns numpy's huge pages off in a VM that reports its free memory to the host."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from ccdred.cli.hugepages import (
    VARIABLE,
    avoid_huge_pages_on_reporting_vm,
    free_memory_reported_to_host,
)

ROOT = Path(__file__).resolve().parents[1]

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="numpy asks for huge pages on Linux only")


def numpy_multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.26 releases without the numpy._core names
        from numpy.core import multiarray
    return multiarray


def unset(monkeypatch) -> None:
    """Unset numpy's variable for this test; whatever the test sets is undone after it."""
    monkeypatch.setenv(VARIABLE, "placeholder")  # so that monkeypatch restores the original
    monkeypatch.delenv(VARIABLE)


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
def numpy_on(monkeypatch):
    """numpy's module holding the huge-page flag, the flag on and the variable unset.

    Both are restored after the test.
    """
    multiarray = numpy_multiarray()
    before = multiarray._get_madvise_hugepage()
    unset(monkeypatch)
    multiarray._set_madvise_hugepage(True)
    yield multiarray
    multiarray._set_madvise_hugepage(before)


@linux_only
def test_the_switch_is_set_for_workers_and_told_to_an_imported_numpy(tmp_path, numpy_on):
    devices = fake_devices(tmp_path / "devices", {"virtio0": ("0x0005", REPORTING)})
    assert avoid_huge_pages_on_reporting_vm(devices) is True
    assert numpy_on._get_madvise_hugepage() is False
    # A worker started after it (spawned, as local workers are) has numpy's request off.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        assert pool.submit(worker_setting).result(timeout=120) == ("0", False)


def worker_setting() -> tuple[str | None, bool]:
    return os.environ.get(VARIABLE), bool(numpy_multiarray()._get_madvise_hugepage())


@linux_only
def test_without_a_reporting_balloon_nothing_changes(tmp_path, numpy_on):
    devices = fake_devices(tmp_path / "devices", {"virtio0": ("0x0005", NOT_REPORTING)})
    assert avoid_huge_pages_on_reporting_vm(devices) is False
    assert VARIABLE not in os.environ
    assert numpy_on._get_madvise_hugepage() is True


def test_a_setting_the_user_made_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(VARIABLE, "1")
    devices = fake_devices(tmp_path / "devices", {"virtio0": ("0x0005", REPORTING)})
    assert avoid_huge_pages_on_reporting_vm(devices) is False
    assert os.environ[VARIABLE] == "1"


COMMAND = """
import functools, sys
import ccdred.cli as cli
from ccdred.cli import hugepages
cli.avoid_huge_pages_on_reporting_vm = functools.partial(
    hugepages.avoid_huge_pages_on_reporting_vm, sys.argv.pop(1))
sys.argv[0] = "ccdred"
try:
    cli.main()
except SystemExit as done:
    assert not done.code, done.code
try:
    from numpy._core.multiarray import _get_madvise_hugepage
except ImportError:
    from numpy.core.multiarray import _get_madvise_hugepage
print("huge pages:", _get_madvise_hugepage())
"""


@linux_only
@pytest.mark.parametrize(("features", "user", "expected"), [
    (REPORTING, None, "False"),
    (REPORTING, "1", "True"),  # the user's choice wins
    (NOT_REPORTING, None, "True"),  # numpy's default (on Linux 4.6 and newer)
    (NOT_REPORTING, "1", "True"),
    (NOT_REPORTING, "0", "False"),
])
def test_the_command_decides_before_numpy_is_imported(tmp_path, features, user, expected):
    devices = fake_devices(tmp_path / "devices", {"virtio0": ("0x0005", features)})
    image = tmp_path / "frame.fits"
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(image)
    env = {key: value for key, value in os.environ.items() if key != VARIABLE}
    if user is not None:
        env[VARIABLE] = user
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                      env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", COMMAND, str(devices), "info", str(image)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"huge pages: {expected}"
