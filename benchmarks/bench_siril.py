"""Benchmark ccdred against Siril, side by side, from the command line as a user runs each.

Siril (``siril-cli``, C, multithreaded) is the tool an observer would pick instead. Each job is
run as a fresh process of each tool, from files on disk to written files, in alternating rounds
(the minimum of ``--rounds`` is kept; ratio = Siril's time / ccdred's, below 1 means Siril is
faster):

- combine N x SxS uint16 frames (20 and 100 by default): median; sigma clipping 3/3 (Siril's
  ``rej s 3 3``, ccdred's ``--reject sigclip``); Siril writes a float32 master (``set32bits``),
  ccdred a master with UNCERT, MASK and DQ extensions;
- a simulated night of ``--night`` science frames (bias, dark of the lights' exposure, flats):
  Siril's classical script (stack biases and darks, flats calibrated by the bias and stacked with
  multiplicative normalisation, lights calibrated by dark and flat) against ``ccdred reduce
  --no-cosmics --no-report`` (Siril has no cosmic-ray rejection); and ccdred's default
  ``ccdred reduce`` (cosmic rays, report) beside them;
- calibration per science frame: Siril's light calibration step alone / N, against ccdred's
  marginal cost per frame, (T(night of N) - T(night of 10)) / (N - 10).

Run: ``python benchmarks/bench_siril.py`` (``make bench``); the issue's 4096^2 combine:
``python benchmarks/bench_siril.py --frames 30 --size 4096 --night 0``. Without ``siril-cli``
on PATH only ccdred is timed and the script says so.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIRIL = shutil.which("siril-cli")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {platform.system()}, "
            f"load average {load:.2f} at the start")


def timed(command: list[str], cwd: Path | None = None) -> float:
    env = {**os.environ, "USER": os.environ.get("USER", "bench")}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])}... failed:\n{result.stdout[-2000:]}\n"
                           f"{result.stderr[-2000:]}")
    return seconds


def ccdred(*args: str) -> list[str]:
    return [sys.executable, "-m", "ccdred", *args]


def siril_script(folder: Path, name: str, lines: list[str]) -> list[str]:
    script = folder / f"{name}.ssf"
    script.write_text("\n".join(["requires 1.0.0", "setext fits", "set32bits", *lines]) + "\n")
    return [SIRIL, "-s", str(script)]


def write_frames(folder: Path, n: int, size: int) -> list[Path]:
    from astropy.io import fits

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        data = rng.normal(1000.0, 10.0, (size, size))
        data[rng.random((size, size)) < 1e-4] += 5000.0
        path = folder / f"frame_{i:03d}.fits"
        fits.PrimaryHDU(np.clip(data, 0, 65535).astype(np.uint16)).writeto(path)
        paths.append(path)
    return paths


def combine_jobs(work: Path, n: int, size: int) -> dict[str, list[str]]:
    """Commands of the combine jobs on ``n`` frames: name -> argv.

    Each round writes over the last round's master: ccdred needs ``--force`` for that (Siril
    overwrites without asking).
    """
    frames = write_frames(work / f"in{n}", n, size)
    files = [str(p) for p in frames]
    jobs = {
        f"ccdred combine {n} median": ccdred("combine", *files, "-o", str(work / "c_med.fits"),
                                             "--method", "median", "--reject", "none", "--force"),
        f"ccdred combine {n} sigclip": ccdred("combine", *files, "-o", str(work / "c_sc.fits"),
                                              "--method", "mean", "--reject", "sigclip", "--force"),
    }
    if SIRIL:
        seq = work / f"seq{n}"
        link = [f"cd {frames[0].parent}", f"link frame -out={seq}", f"cd {seq}"]
        jobs[f"siril combine {n} median"] = siril_script(
            work, f"median{n}", [*link, f"stack frame median -nonorm -out={work}/s_med"])
        jobs[f"siril combine {n} sigclip"] = siril_script(
            work, f"sigclip{n}", [*link, f"stack frame rej s 3 3 -nonorm -out={work}/s_sc"])
    return jobs


def simulate_night(folder: Path, frames: int, size: int) -> dict[str, list[Path]]:
    """A raw night whose lights all have the darks' exposure; files by kind."""
    from ccdred.simulate import CameraModel
    from ccdred.simulate import simulate_night as simulate

    model = CameraModel(size=size, science_exptimes=(300.0,) * frames, dark_exptime=300.0,
                        n_stars=max(40, size // 8))
    return {kind: sorted(paths) for kind, paths in simulate(folder, model=model, seed=3)
            .files.items()}


def subset_night(files: dict[str, list[Path]], folder: Path, science: int) -> Path:
    """The same calibration frames and the first ``science`` lights, as symbolic links."""
    folder.mkdir(parents=True)
    for kind, paths in files.items():
        for path in paths[:science] if kind == "science" else paths:
            (folder / path.name).symlink_to(path)
    return folder


def siril_night_scripts(files: dict[str, list[Path]], work: Path) -> tuple[list[str], ...]:
    """Siril's classical night: (masters script, lights script)."""
    by_kind = {}
    for kind, paths in files.items():
        folder = work / f"siril_{kind}"
        folder.mkdir()
        for path in paths:
            (folder / path.name).symlink_to(path)
        by_kind[kind] = folder
    w = work / "siril_work"
    masters = []
    for kind, rest in (("bias", []), ("dark", [])):
        masters += [f"cd {by_kind[kind]}", f"link {kind} -out={w}/{kind}", f"cd {w}/{kind}",
                    f"stack {kind} rej s 3 3 -nonorm -out={w}/master_{kind}", *rest]
    masters += [f"cd {by_kind['flat']}", f"link flat -out={w}/flat", f"cd {w}/flat",
                f"preprocess flat -bias={w}/master_bias",
                f"stack pp_flat rej s 3 3 -norm=mul -out={w}/master_flat"]
    lights = [f"cd {by_kind['science']}", f"link light -out={w}/light", f"cd {w}/light",
              f"preprocess light -dark={w}/master_dark -flat={w}/master_flat"]
    return siril_script(work, "night_masters", masters), siril_script(work, "night_lights",
                                                                          lights)


def warm_up(work: Path) -> None:
    """Reduce a tiny night once, untimed, so that numba's cache holds every kernel."""
    from ccdred.simulate import CameraModel
    from ccdred.simulate import simulate_night as simulate

    night = simulate(work / "warm", model=CameraModel(size=256), seed=1)
    timed(ccdred("reduce", str(night.raw_dir), "-o", str(work / "warm_out")))
    timed(ccdred("combine", *map(str, night.files["bias"]), "-o", str(work / "warm.fits")))
    shutil.rmtree(work / "warm")
    shutil.rmtree(work / "warm_out")


def best_of(rounds: int, jobs: dict[str, object]) -> dict[str, float]:
    """Run every job once per round, alternating; keep each job's minimum."""
    best: dict[str, float] = {}
    for round_ in range(rounds):
        for name, job in jobs.items():
            seconds = job() if callable(job) else timed(job)
            best[name] = min(best.get(name, np.inf), seconds)
            print(f"  round {round_ + 1}: {name:38s} {seconds:8.2f} s", flush=True)
    return best


def ratio_line(what: str, siril: float | None, ours: float) -> str:
    if siril is None:
        return f"| {what} | {ours:.2f} s | (no Siril) | |"
    return f"| {what} | {ours:.2f} s | {siril:.2f} s | {siril / ours:.2f} |"


def night_rows(work: Path, night: int, size: int, rounds: int) -> list[str]:
    """Time the night jobs (a night of ``night`` lights, and its first 10) and return table rows."""
    print(f"night of {night} science frames of {size}^2", flush=True)
    files = simulate_night(work / "night", night, size)
    small = subset_night(files, work / "night10", 10)
    out = work / "out"

    def reduce(raw: Path, *extra: str):
        def job() -> float:
            shutil.rmtree(out, ignore_errors=True)
            return timed(ccdred("reduce", str(raw), "-o", str(out), *extra))
        return job

    jobs: dict[str, object] = {
        "ccdred night, no cosmics, no report": reduce(work / "night" / "raw",
                                                      "--no-cosmics", "--no-report"),
        "ccdred night of 10, no cosmics": reduce(small, "--no-cosmics", "--no-report"),
        "ccdred night, default": reduce(work / "night" / "raw"),
    }
    if SIRIL:
        masters, lights = siril_night_scripts(files, work)

        def siril_masters() -> float:
            shutil.rmtree(work / "siril_work", ignore_errors=True)
            return timed(masters)
        jobs["siril night: masters"] = siril_masters
        jobs["siril night: lights"] = lambda: timed(lights)
    best = best_of(rounds, jobs)
    siril_night = (best["siril night: masters"] + best["siril night: lights"]) if SIRIL else None
    ours = best["ccdred night, no cosmics, no report"]
    per_frame = (ours - best["ccdred night of 10, no cosmics"]) / (night - 10)
    return [
        ratio_line(f"calibrate, per science frame ({size}^2; bias, dark, flat)",
                   best["siril night: lights"] / night if SIRIL else None, per_frame),
        ratio_line(f"night of {night}, no cosmic rays, no report", siril_night, ours),
        ratio_line(f"night of {night}, ccdred default (cosmic rays, report) vs Siril without",
                   siril_night, best["ccdred night, default"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="*", default=[20, 100],
                        help="combine jobs of these many frames (none: the night only)")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--night", type=int, default=50,
                        help="science frames in the night (more than 10; 0: no night)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.night and args.night <= 10:
        parser.error("--night must be more than 10 (the per-frame cost is the difference "
                     "from a night of 10), or 0 for no night")
    print(machine())
    print(f"Siril: {SIRIL or 'not installed (make bench installs it where apt can)'}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_siril_") as tmp:
        work = Path(tmp)
        warm_up(work)
        for n in args.frames:
            print(f"combine {n} x {args.size}^2 uint16", flush=True)
            best = best_of(args.rounds, combine_jobs(work, n, args.size))
            for how in ("median", "sigclip"):
                rows.append(ratio_line(f"combine {n} x {args.size}^2, {how} (CLI)",
                                       best.get(f"siril combine {n} {how}"),
                                       best[f"ccdred combine {n} {how}"]))
            shutil.rmtree(work / f"in{n}")
        if args.night:
            rows.extend(night_rows(work, args.night, args.size, args.rounds))
    print(f"\nminimum of {args.rounds} alternating rounds (machine above)\n")
    print("| job | ccdred | Siril | ratio (Siril / ccdred) |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
