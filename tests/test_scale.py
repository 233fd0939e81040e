"""Executors give the same bytes; re-runs resume; a killed run finishes where it stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import pytest

import ccdred
from ccdred import io
from ccdred.cli.vm_memory import ALLOCATOR_VARIABLES
from ccdred.pipeline import DaskCluster, InProcess, LocalProcesses, ReduceOptions
from ccdred.pipeline.executors import MALLOC_TRIM, environment_variable
from ccdred.pipeline.masters import combine_master
from ccdred.simulate import CameraModel, simulate_night
from ccdred.stacking import combine
from ccdred.steps import CombineOptions, stack_bands

from .conftest import ccdred_command

EPOCH = "1700000000"


def _products(out: Path) -> dict[str, str]:
    """SHA-256 of every product file, by path relative to the output folder."""
    return {str(p.relative_to(out)): io.sha256(p)
            for folder in ("masters", "reduced") for p in sorted((out / folder).glob("*.fits"))}


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A small night with six science frames (enough for tasks to interleave)."""
    model = CameraModel(size=192, n_stars=25, n_bias=5, n_dark=5, n_flat=5,
                        science_exptimes=(300.0, 120.0, 300.0, 60.0, 300.0, 120.0))
    return simulate_night(tmp_path_factory.mktemp("scale"), model=model, seed=11)


def test_row_bands_put_together_are_the_full_combine(sim_night):
    flats = sim_night.files["flat"]
    options = CombineOptions(method="mean", reject="sigclip")
    full = combine_master("flat", flats, options=options, overscan="median")
    bands = [combine_master("flat", flats, options=options, overscan="median", rows=(a, b))
             for a, b in ((0, 37), (37, 200), (200, 256))]
    stacked = stack_bands(bands)
    for got, want in ((stacked.frame.data, full.frame.data),
                      (stacked.frame.variance, full.frame.variance),
                      (stacked.count, full.count), (stacked.frame.dq, full.frame.dq)):
        assert np.array_equal(got, want, equal_nan=True)
    with pytest.raises(ValueError, match="rows must satisfy"):
        combine(flats, rows=(10, 10))


@pytest.fixture(scope="module")
def in_process_products(night, tmp_path_factory):
    """The night's products made in this process: what every other executor must match."""
    out = tmp_path_factory.mktemp("in_process")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", EPOCH)
        ccdred.reduce_night(night.raw_dir, out, executor=InProcess())
    return _products(out)


def test_every_executor_writes_the_same_bytes(night, in_process_products, tmp_path,
                                              monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    outputs = {"in-process": in_process_products}
    stages: dict[str, set[str]] = {}
    executors = {"processes": lambda: LocalProcesses(2),
                 "dask": lambda: DaskCluster(local_workers=2)}
    for name, make in executors.items():
        executor = make()
        seen: set[str] = set()
        try:
            ccdred.reduce_night(night.raw_dir, tmp_path / name, executor=executor,
                                progress=lambda stage, done, total, s=seen: s.add(stage))
        finally:
            executor.close()
        outputs[name] = _products(tmp_path / name)
        stages[name] = seen
    # bias, dark_300s, flat_R, badpix and six reduced frames
    assert len(outputs["in-process"]) == 4 + 6
    assert outputs["processes"] == outputs["in-process"]
    assert outputs["dask"] == outputs["in-process"]
    assert all(s == {"masters", "science"} for s in stages.values())


# None: glibc's defaults; the ccdred command's settings in a VM that reports free memory.
@pytest.mark.parametrize("allocator", [{MALLOC_TRIM: None, "MALLOC_MMAP_MAX_": None},
                                       ALLOCATOR_VARIABLES])
def test_a_local_dask_cluster_keeps_this_process_allocator_settings_and_environment(
        monkeypatch, allocator):
    for name, value in allocator.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(value))
    before = dict(os.environ)
    executor = DaskCluster(local_workers=1)
    try:
        assert dict(os.environ) == before
        seen = dict(executor.map_unordered(environment_variable, list(allocator)))
        assert [seen[i] for i in range(len(allocator))] == [
            None if value is None else str(value) for value in allocator.values()]
    finally:
        executor.close()


def test_a_local_dask_cluster_starts_beside_another_on_dask_s_default_port():
    # A dashboard or another cluster holds 8787: a warning (an error here) if ccdred wanted it.
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with suppress(OSError):  # already held, by another test's cluster: the same case
            held.bind(("127.0.0.1", 8787))
            held.listen()
        executor = DaskCluster(local_workers=1)
        try:
            assert executor.workers == 1
        finally:
            executor.close()


@contextmanager
def _dask_cluster(folder: Path, environment: dict[str, str]):
    """A running Dask cluster as a user starts one ('dask scheduler', 'dask worker'): address."""
    from dask.distributed import Client

    dask = str(Path(sys.executable).parent / "dask")
    address_file = folder / "scheduler.json"
    common = ["--scheduler-file", str(address_file), "--no-dashboard"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": environment,
             "start_new_session": True}
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   *common], **quiet)]
    try:
        deadline = time.monotonic() + 60
        while not address_file.exists():
            assert time.monotonic() < deadline, "the Dask scheduler did not start"
            time.sleep(0.1)
        processes.append(subprocess.Popen([dask, "worker", "--nworkers", "2", "--nthreads", "1",
                                           "--host", "127.0.0.1", *common], **quiet))
        address = json.loads(address_file.read_text())["address"]
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)


@pytest.fixture
def dask_cluster(tmp_path):
    """A Dask cluster started with Dask's default worker settings."""
    with _dask_cluster(tmp_path, dict(os.environ)) as address:
        yield address


def test_the_command_line_reduces_on_a_running_dask_cluster(night, in_process_products,
                                                             dask_cluster, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([*ccdred_command(), "reduce", str(night.raw_dir), "-o", str(out),
                             "--no-report", "--scheduler", dask_cluster],
                            env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert _products(out) == in_process_products
    # Workers started with Dask's defaults set MALLOC_TRIM_THRESHOLD_: the user is told.
    assert f"its workers set {MALLOC_TRIM}" in " ".join(result.stdout.split())


def test_rerun_keeps_what_is_up_to_date_and_redoes_what_changed(night, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(night.raw_dir, raw)
    out = tmp_path / "out"
    options = ReduceOptions(cosmics=False)
    first = ccdred.reduce_night(raw, out, options=options)
    assert len(first.rebuilt) == 4 + 6
    before = _products(out)
    times = {p: p.stat().st_mtime_ns for p in out.rglob("*.fits")}
    again = ccdred.reduce_night(raw, out, options=options)
    assert again.rebuilt == []
    assert _products(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.fits")} == times

    # A changed parameter redoes what depends on it: not the bias.
    hot = ccdred.reduce_night(raw, out, options=ReduceOptions(cosmics=False, hot_sigma=6.0))
    remade = {p.name for p in hot.rebuilt}
    assert "bias.fits" not in remade
    assert {"dark_300s.fits", "badpix.fits"} <= remade
    assert len([p for p in hot.rebuilt if p.parent.name == "reduced"]) == 6

    # A changed raw frame redoes that frame only.
    science = sorted(night.files["science"])[0]
    target = raw / science.relative_to(night.raw_dir)
    frame = io.read(target)
    header = frame.header.copy()
    header["OBSERVER"] = "someone else"
    target.unlink()
    io.write_raw(frame.data.astype(np.uint16), header, target)
    changed = ccdred.reduce_night(raw, out, options=ReduceOptions(cosmics=False, hot_sigma=6.0))
    assert [p.parent.name for p in changed.rebuilt] == ["reduced"]

    forced = ccdred.reduce_night(raw, out, options=ReduceOptions(cosmics=False, hot_sigma=6.0),
                                 force=True)
    assert len(forced.rebuilt) == 4 + 6


def test_a_killed_run_resumes_to_the_same_products(night, tmp_path):
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    base = [*ccdred_command(), "reduce", str(night.raw_dir), "--no-report", "--workers", "1"]
    whole = tmp_path / "whole"
    subprocess.run([*base, "-o", str(whole)], env=env, check=True, capture_output=True)

    out = tmp_path / "killed"
    process = subprocess.Popen([*base, "-o", str(out)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list((out / "reduced").glob("*.fits"))) < 2:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list((out / "reduced").glob("*.fits")))
    assert 2 <= done_before < 6, "the kill came too late to test anything"
    assert not (out / "manifest.json").exists()

    rerun = subprocess.run([*base, "-o", str(out)], env=env, check=True, capture_output=True,
                           text=True)
    assert f"({6 - done_before} made," in rerun.stdout.replace("\n", " ")
    assert _products(out) == _products(whole)
    assert not list(out.rglob("*.part"))


def _die(_item):
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_dead_worker_is_a_clear_error_not_a_broken_pool():
    from ccdred.errors import WorkerLostError

    executor = LocalProcesses(2)
    try:
        with pytest.raises(WorkerLostError, match="run the same command again to resume"):
            list(executor.map_unordered(_die, [1, 2]))
    finally:
        executor.close()


def test_the_command_line_reports_a_killed_worker_in_one_line_and_resumes(night, tmp_path):
    import psutil

    from ccdred.cli import EXIT_FAILED

    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    out = tmp_path / "out"
    command = [*ccdred_command(), "reduce", str(night.raw_dir), "-o", str(out), "--no-report",
               "--workers", "2"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((out / "reduced").glob("*.fits")):
        assert process.poll() is None, "the run ended before a worker could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    workers = [child for child in psutil.Process(process.pid).children(recursive=True)
               if "resource_tracker" not in " ".join(child.cmdline())]
    assert workers
    workers[0].send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the run finished before the kill reached a busy worker")
    assert process.returncode == EXIT_FAILED
    assert "worker process died" in stderr
    assert "Traceback" not in stderr
    rerun = subprocess.run(command, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert not list(out.rglob("*.part"))


@pytest.mark.parametrize("setup", ["config", "allocator"])
def test_workers_configured_as_the_readme_says_are_not_warned_about(tmp_path, setup):
    environment = {**os.environ}
    environment.pop(MALLOC_TRIM, None)
    if setup == "config":
        # The README's recipe for 'dask worker': a Dask configuration file dropping the variable.
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "ccdred.yaml").write_text(
            "distributed:\n  nanny:\n    pre-spawn-environ:\n      MALLOC_TRIM_THRESHOLD_: null\n")
        environment["DASK_CONFIG"] = str(tmp_path / "config")
    else:
        # Dask's defaults, started as the ccdred command starts workers in a VM that reports
        # free memory: no array is mapped afresh, whatever the trim threshold.
        environment |= {name: str(value) for name, value in ALLOCATOR_VARIABLES.items()}
    with _dask_cluster(tmp_path, environment) as address:
        executor = DaskCluster(address)
        try:
            assert executor.description == f"Dask cluster at {address}"
            assert executor.workers == 2
        finally:
            executor.close()
