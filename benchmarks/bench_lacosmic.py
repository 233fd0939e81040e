"""Benchmark ccdred's L.A.Cosmic against astroscrappy, per 2048x2048 frame, on one thread.

A synthetic frame (sky 200 ADU, 300 stars, 3000 cosmic-ray tracks of 1-3 pixels) is searched
by ``ccdred.kernels.lacosmic.detect_cosmics`` and by ``astroscrappy.detect_cosmics`` with the
same settings (``sepmed=True, fsmode="median", cleantype="meanmask"``, 4 iterations); both are
held to one thread. The minimum of ``--rounds`` alternating runs is kept, and the two masks are
compared (they must be the same pixels).

Run: ``NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_lacosmic.py``
(``make bench`` sets both).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def frame(size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.normal(200, 10, (size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(300 * size * size // 2048**2):
        y, x = rng.uniform(0, size, 2)
        flux = rng.uniform(1e3, 1e5)
        box = slice(max(0, int(y) - 8), int(y) + 9), slice(max(0, int(x) - 8), int(x) + 9)
        image[box] += (flux * np.exp(-((yy[box] - y) ** 2 + (xx[box] - x) ** 2) / 4.5)
                       / (2 * np.pi * 2.25)).astype(np.float32)
    for _ in range(3000 * size * size // 2048**2):
        y, x = rng.integers(2, size - 3, 2)
        image[y, x:x + rng.integers(1, 4)] += rng.uniform(200, 3000)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import astroscrappy
    import numba

    from ccdred.kernels.lacosmic import detect_cosmics

    numba.set_num_threads(1)
    image = frame(args.size)
    settings = dict(gain=1.5, readnoise=6.0, sigclip=4.5, sigfrac=0.3, objlim=5.0, niter=4)
    detect_cosmics(image[:256, :256], **settings)  # compile (or load the cache)
    runs = {
        "ccdred": lambda: detect_cosmics(image, **settings)[0],
        "astroscrappy": lambda: astroscrappy.detect_cosmics(
            image, sepmed=True, fsmode="median", cleantype="meanmask", satlevel=np.inf,
            **settings)[0],
    }
    best, masks = {}, {}
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            masks[name] = run()
            best[name] = min(best.get(name, np.inf), time.perf_counter() - start)
    same = int((masks["ccdred"] != masks["astroscrappy"]).sum())
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"{args.size}^2 frame, {int(masks['ccdred'].sum())} cosmic-ray pixels, one thread "
          f"(numba 1, OMP_NUM_THREADS {threads}); minimum of {args.rounds} rounds")
    print(f"ccdred       {best['ccdred']:.3f} s\nastroscrappy {best['astroscrappy']:.3f} s\n"
          f"ratio {best['astroscrappy'] / best['ccdred']:.1f}x; pixels that differ: {same}")


if __name__ == "__main__":
    main()
