"""Benchmark the night report against the default reduction it reports on.

The issue's budget: the report costs at most 15% of a default ``ccdred reduce`` of a night.
Simulates a night of N science frames (default 120 x 1024x1024, like the ARCSAT night of the
issue; exposures of 300 s and 600 s) plus 9 biases, 7 darks and 7 flats, then times, through
the command line as a user runs it (one process each, the same ``--workers``), wall clock and
CPU (user + system of the processes):

1. ``ccdred reduce RAW -o OUT --no-report`` (the default reduction, cosmic rays rejected, without
   the report; numba's cache warmed first by a 3-frame night of the same frame size, with its
   report, so compilation is not counted (after a 256^2 warm-up, the first timed 1024^2
   reduction spent 23 s on its masters, the next one 3 s);
2. ``ccdred reduce RAW -o OUT2`` (the default run as a user runs it: each science frame's
   section drawn by its worker as the frame is written, then the page). 1 and 2 alternate for
   ``--rounds`` rounds (this machine drifts); the report's cost is the difference of the
   fastest of each, 2 - 1, against 1: the budget;
3. ``ccdred report OUT`` (every figure and check drawn again from the files: ``ccdred report``
   on a night reduced with ``--no-report``);
4. ``ccdred report OUT`` again (the re-run case: every product kept, nothing redrawn);
5. the report's per-section cost split into reading, checks and figure (in this process, on
   5 science frames after a first one that loads the compiled kernels), to see where the
   time goes.

Prints the times and fractions; exits 1 when (2 - 1) / 1, in wall-clock time, is over
``--budget`` (default 0.15). Outputs are removed at the end.
Run: ``python benchmarks/bench_report.py [--frames 120] [--size 1024] [--workers 2]
[--rounds 2]``.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def simulate(folder: Path, frames: int, size: int):
    from ccdred.simulate import CameraModel, simulate_night

    exptimes = tuple(300.0 if i % 2 == 0 else 600.0 for i in range(frames))
    model = CameraModel(size=size, science_exptimes=exptimes, n_stars=max(40, size // 8))
    return simulate_night(folder, model=model, seed=5)


def ccdred(*args: str) -> tuple[float, float]:
    """Run ``ccdred ARGS``; return its wall-clock and CPU seconds (its worker processes too)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ccdred", *args], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def split_costs(out: Path, count: int) -> tuple[float, float, float]:
    """Seconds per science section spent reading, in the checks and in the figure (one process).

    What `ccdred.report` does per section: masters read and what the checks take from them
    found once per worker (as the report caches them), each frame and its raw frame read, the
    checks run, the figure and thumbnail drawn.
    """
    from ccdred import io, qa
    from ccdred.pipeline.products import read_manifest
    from ccdred.quicklook import write_quicklook, write_thumbnail

    manifest = read_manifest(out)
    masters = {p.name: io.read(p.path) for p in manifest.masters()}
    maps = {}
    reading = checks = figures = 0.0
    # The first section loads the compiled kernels (a worker's first section): not counted.
    products = manifest.reduced()[:count + 1]
    for index, product in enumerate(products):
        if index == 1:
            reading = checks = figures = 0.0
        params = product.parameters
        dark = masters[params["dark"]["master"]] if params.get("dark") else None
        flat = masters[params["flat"]] if params.get("flat") else None
        key = (params["dark"]["master"] if dark else None, params.get("flat"))
        if key not in maps:  # found once per worker, as the report does: not counted
            maps[key] = qa.master_maps(dark=dark, flat=flat)
        start = time.perf_counter()
        reduced = io.read(product.path)
        raw = io.read(product.inputs[0].path)
        read = time.perf_counter()
        noise, sky = qa.local_noise(reduced), qa.sky_level(reduced)
        qa.science_checks(reduced, dark=dark, dark_scale=float(params["dark"]["scale"])
                          if dark is not None else 1.0, flat=flat, noise=noise, sky=sky,
                          maps=maps[key])
        checked = time.perf_counter()
        write_quicklook([(raw, "raw"), (reduced, "reduced")], out / "bench_figure.png")
        write_thumbnail(reduced, out / "bench_thumb.png")
        figures += time.perf_counter() - checked
        checks += checked - read
        reading += read - start
    n = max(1, len(products) - 1)
    return reading / n, checks / n, figures / n


def _rounds(times: list[tuple[float, float]]) -> str:
    return ", ".join(f"{wall:.1f}" for wall, _ in times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--budget", type=float, default=0.15)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    workers = ["--workers", str(args.workers)]
    with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
        root = Path(tmp)
        warm = simulate(root / "warm", 3, args.size)
        ccdred("reduce", str(warm.raw_dir), "-o", str(root / "warm_out"), *workers)
        night = simulate(root / "night", args.frames, args.size)
        out, out2 = root / "out", root / "out2"
        plain, whole = [], []
        for _ in range(args.rounds):
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(out2, ignore_errors=True)
            plain.append(ccdred("reduce", str(night.raw_dir), "-o", str(out), "--no-report",
                                *workers))
            whole.append(ccdred("reduce", str(night.raw_dir), "-o", str(out2), *workers))
        shutil.rmtree(out2, ignore_errors=True)
        report = ccdred("report", str(out), *workers)
        rerun = ccdred("report", str(out), *workers)
        reading_s, checks_s, figures_s = split_costs(out, 5)
        shutil.rmtree(out, ignore_errors=True)
    reduce_s, reduce_cpu = min(plain)[0], min(c for _, c in plain)
    whole_s, whole_cpu = min(whole)[0], min(c for _, c in whole)
    fraction = whole_s / reduce_s - 1
    print(f"night: {args.frames} science frames of {args.size}x{args.size}, "
          f"{args.workers} workers, default options (cosmic rays rejected)")
    print("                          wall (each round)        CPU, fastest")
    print(f"reduce --no-report      {reduce_s:8.1f} s ({_rounds(plain)})  {reduce_cpu:8.1f} s")
    print(f"reduce (its report)     {whole_s:8.1f} s ({_rounds(whole)})  {whole_cpu:8.1f} s")
    print(f"the report's cost       {fraction:+8.1%} wall (budget {args.budget:.0%}), "
          f"{whole_cpu / reduce_cpu - 1:+.1%} CPU")
    print(f"report from the files   {report[0]:8.1f} s = {report[0] / reduce_s:.1%} of the "
          f"reduction ({report[1]:.1f} s CPU)")
    print(f"report (re-run, kept)   {rerun[0]:8.1f} s")
    print(f"per science section from the files: reading {reading_s:.3f} s, checks "
          f"{checks_s:.3f} s, figure {figures_s:.3f} s (one process)")
    return 0 if fraction <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
