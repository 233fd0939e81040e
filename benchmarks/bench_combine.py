"""Benchmark ccdred.combine against ccdproc.combine and numpy's median.

Writes N uint16 FITS frames of SxS (default 20 x 2048x2048), then times each case in its own
subprocess (so peak memory is the case's own), after a warm-up run in that process:

- ccdred.combine from the files: median; mean with sigma clipping
- ccdproc.combine from the same files: median; average with sigma clipping (median / mad_std)
- numpy.median of the stacked in-memory array, against ccdred.combine on the same frames

Run: ``python benchmarks/bench_combine.py [--frames 20] [--size 2048]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = ["ccdred-median", "ccdproc-median", "ccdred-sigclip", "ccdproc-sigclip",
         "ccdred-median-memory", "numpy-median-memory"]


def write_frames(folder: Path, n: int, size: int) -> list[Path]:
    from astropy.io import fits

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        data = rng.normal(1000.0, 10.0, (size, size))
        hits = rng.random((size, size)) < 1e-4
        data[hits] += 5000.0
        path = folder / f"frame_{i:03d}.fits"
        fits.PrimaryHDU(np.clip(data, 0, 65535).astype(np.uint16)).writeto(path)
        paths.append(path)
    return paths


def load_stack(paths: list[Path]) -> np.ndarray:
    from astropy.io import fits

    return np.stack([fits.getdata(p).astype(np.float32) for p in paths])


def run_case(case: str, paths: list[Path]) -> dict:
    if case.startswith("ccdred"):
        import ccdred
        from ccdred import Frame

        if case == "ccdred-median":
            def work():
                return ccdred.combine(paths, method="median", reject="none")
        elif case == "ccdred-sigclip":
            def work():
                return ccdred.combine(paths, method="mean", reject="sigclip", sigma_low=3,
                                      sigma_high=3)
        else:
            frames = [Frame(plane) for plane in load_stack(paths)]

            def work():
                return ccdred.combine(frames, method="median", reject="none")
    elif case.startswith("ccdproc"):
        import warnings

        import ccdproc
        from astropy.stats import mad_std

        warnings.simplefilter("ignore")
        files = [str(p) for p in paths]
        if case == "ccdproc-median":
            def work():
                return ccdproc.combine(files, method="median", unit="adu", mem_limit=4e9)
        else:
            def work():
                return ccdproc.combine(files, method="average", sigma_clip=True,
                                       sigma_clip_low_thresh=3, sigma_clip_high_thresh=3,
                                       sigma_clip_func=np.ma.median,
                                       sigma_clip_dev_func=mad_std, unit="adu", mem_limit=4e9)
    else:
        stack = load_stack(paths)

        def work():
            return np.median(stack, axis=0)
    work()  # warm-up: compilation caches, imports, file cache
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": case, "seconds": seconds, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--case", choices=CASES)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    if args.case:
        paths = sorted(args.dir.glob("frame_*.fits"))
        print(json.dumps(run_case(args.case, paths)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_frames(folder, args.frames, args.size)
        results = {}
        for case in CASES:
            out = subprocess.run([sys.executable, __file__, "--case", case, "--dir", str(folder)],
                                 capture_output=True, text=True, check=True)
            results[case] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{case:22s} {results[case]['seconds']:8.2f} s   peak RSS "
                  f"{results[case]['peak_mib']:7.0f} MiB", flush=True)
    t = {k: v["seconds"] for k, v in results.items()}
    print(f"\n{args.frames} frames of {args.size}x{args.size} uint16")
    print(f"median from files:        ccdred {t['ccdproc-median'] / t['ccdred-median']:6.1f}x "
          f"faster than ccdproc.combine")
    print(f"sigma-clipped mean:       ccdred {t['ccdproc-sigclip'] / t['ccdred-sigclip']:6.1f}x "
          f"faster than ccdproc.combine")
    ratio = t["numpy-median-memory"] / t["ccdred-median-memory"]
    print(f"median of in-memory stack: ccdred {ratio:5.1f}x faster than numpy.median")


if __name__ == "__main__":
    main()
