"""The camera's analogue-to-digital converter, read from its raw values.

Most CMOS cameras have a 12- or 14-bit ADC whose codes are written into 16-bit files
multiplied by 16 or 4: the values sit on a grid, one code is several ADU, the real full scale
is below 65535, and each value carries a quantisation error of a uniform code width
(variance ``step**2 / 12``). Some drivers scale one colour channel by a non-integer factor,
so the test allows a fraction of the values off the grid.
"""

from __future__ import annotations

import numpy as np

__all__ = ["grid_step", "saturation_from_values", "GRID_FRACTION"]

GRID_FRACTION = 0.5
"""A grid of step ``2**k`` holds at least this fraction of the values beyond what chance puts
there (``2**-k``); 16-bit data have about half their values even, and none in excess."""

MAX_GRID_BITS = 8


def grid_step(values: np.ndarray) -> int:
    """Return the step of the grid integer raw values sit on: 1, 2, 4, ... (16 for a 12-bit ADC).

    The largest ``2**k`` whose multiples hold at least `GRID_FRACTION` of the values in excess
    of chance (a fraction ``f`` of multiples counts ``(f - 2**-k) / (1 - 2**-k)``). Values
    are taken as integers; non-integer values give 1.
    """
    sample = np.asarray(values).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0 or not np.all(sample == np.round(sample)):
        return 1
    integers = sample.astype(np.int64)
    step = 1
    for k in range(1, MAX_GRID_BITS + 1):
        chance = 2.0 ** -k
        fraction = float(np.mean(integers % (2**k) == 0))
        if (fraction - chance) / (1 - chance) < GRID_FRACTION:
            break
        step = 2**k
    return step


def saturation_from_values(values: np.ndarray, full_scale: float, step: int,
                           min_count: int = 3) -> float:
    """Return the raw level at which the camera saturates: a pile-up just below full scale, else it.

    Saturated pixels pile up on one or a few values at the top of the ADC's range (an ASI224MC
    at 12 bits piles up at 65504, one code below its 65520 full scale). The lowest value
    within four codes of ``full_scale`` that at least ``min_count`` pixels share is the level;
    without such a pile-up, ``full_scale``.
    """
    data = np.asarray(values).ravel()
    top = data[data >= full_scale - 4 * step]
    if top.size < min_count:
        return float(full_scale)
    levels, counts = np.unique(top, return_counts=True)
    piled = levels[counts >= min_count]
    return float(min(piled.min(), full_scale)) if piled.size else float(full_scale)
