"""Benchmark the night report against the default reduction it reports on.

The issue's budget: the report costs at most 15% of a default ``ccdred reduce`` of a night.
Simulates a night of N science frames (default 120 x 1024x1024, like the ARCSAT night of the
issue; exposures of 300 s and 600 s) plus 9 biases, 7 darks and 7 flats, then times, through
the command line as a user runs it (one process each, the same ``--workers``):

1. ``ccdred reduce RAW -o OUT --no-report`` (the default reduction, cosmic rays rejected, without
   the report; numba's cache warmed first by a 3-frame night of the same frame size, with its
   report, so compilation is not counted (after a 256^2 warm-up, the first timed 1024^2
   reduction spent 23 s on its masters, the next one 3 s);
2. ``ccdred report OUT`` (every figure and check drawn: the cost of the default report);
3. ``ccdred report OUT`` again (the re-run case: every product kept, nothing redrawn);
4. ``ccdred reduce RAW -o OUT2`` (the default run as a user runs it, report included);
5. the report's per-section cost split into reading, checks and figure (in this process, on
   5 science frames after a first one that loads the compiled kernels), to see where the
   time goes.

Prints the times, the report's fraction of the reduction (2 / 1) and of the whole default run
(2 / 4, and (4 - 1) / 4); exits 1 when 2 / 1 is over ``--budget`` (default 0.15). Outputs are
removed at the end.
Run: ``python benchmarks/bench_report.py [--frames 120] [--size 1024] [--workers 2]``.
"""

from __future__ import annotations

import argparse
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


def ccdred(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ccdred", *args], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--budget", type=float, default=0.15)
    args = parser.parse_args()
    workers = ["--workers", str(args.workers)]
    with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
        root = Path(tmp)
        warm = simulate(root / "warm", 3, args.size)
        ccdred("reduce", str(warm.raw_dir), "-o", str(root / "warm_out"), *workers)
        night = simulate(root / "night", args.frames, args.size)
        out = root / "out"
        reduce_s = ccdred("reduce", str(night.raw_dir), "-o", str(out), "--no-report", *workers)
        report_s = ccdred("report", str(out), *workers)
        rerun_s = ccdred("report", str(out), *workers)
        whole_s = ccdred("reduce", str(night.raw_dir), "-o", str(root / "out2"), *workers)
        shutil.rmtree(root / "out2", ignore_errors=True)
        reading_s, checks_s, figures_s = split_costs(out, 5)
        shutil.rmtree(out, ignore_errors=True)
    fraction = report_s / reduce_s
    print(f"night: {args.frames} science frames of {args.size}x{args.size}, "
          f"{args.workers} workers, default options (cosmic rays rejected)")
    print(f"reduce (no report)      {reduce_s:8.1f} s")
    print(f"report (everything)     {report_s:8.1f} s  = {fraction:.1%} of the reduction "
          f"(budget {args.budget:.0%})")
    print(f"report (re-run, kept)   {rerun_s:8.1f} s")
    print(f"reduce with its report  {whole_s:8.1f} s  (report {report_s / whole_s:.1%} of it "
          f"standalone; the run {whole_s / reduce_s - 1:+.1%} over the reduction alone)")
    print(f"per science section: reading {reading_s:.2f} s, checks {checks_s:.2f} s, figure "
          f"{figures_s:.2f} s (one process)")
    return 0 if fraction <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
