"""Executors give the same bytes; re-runs resume; a killed run finishes where it stopped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import ccdred
from ccdred import io
from ccdred.combine import combine
from ccdred.pipeline import DaskCluster, InProcess, LocalProcesses, ReduceOptions
from ccdred.simulate import CameraModel, simulate_night
from ccdred.steps import CombineOptions, combine_master, stack_bands

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


def test_every_executor_writes_the_same_bytes(night, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    outputs = {}
    stages: dict[str, set[str]] = {}
    executors = {"in-process": lambda: InProcess(), "processes": lambda: LocalProcesses(2),
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
