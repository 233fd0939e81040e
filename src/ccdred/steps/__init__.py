"""Calibration steps: each takes `Frame` objects (or row sources) and returns new frames.

Masters: `make_master_bias`, `make_master_dark`, `make_master_flat`, built from
`combine_calibrated` (which can work in row bands put together by `stack_bands`),
`finish_dark` and `finish_flat`. Defects: `find_hot_pixels`, `find_dead_pixels`. Science:
`flag_nonfinite`, `flag_saturation`, `subtract_overscan`, `trim`, `add_noise_model`,
`subtract_bias`, `subtract_dark`, `optimal_dark_scale`, `flat_correct`, `reject_cosmics`,
`repair`.
"""

from .calibrate import (
    add_noise_model,
    flag_nonfinite,
    flag_saturation,
    flat_correct,
    optimal_dark_scale,
    reject_cosmics,
    repair,
    subtract_bias,
    subtract_dark,
    unusable_pixels,
)
from .masters import (
    CombineOptions,
    combine_calibrated,
    find_dead_pixels,
    find_hot_pixels,
    finish_dark,
    finish_flat,
    make_master_bias,
    make_master_dark,
    make_master_flat,
    master_header,
    stack_bands,
)
from .overscan import subtract_overscan, trim
from .stream import CalibratedRows

__all__ = [
    "CalibratedRows",
    "CombineOptions",
    "add_noise_model",
    "combine_calibrated",
    "find_dead_pixels",
    "find_hot_pixels",
    "finish_dark",
    "finish_flat",
    "flag_nonfinite",
    "flag_saturation",
    "flat_correct",
    "make_master_bias",
    "make_master_dark",
    "make_master_flat",
    "master_header",
    "optimal_dark_scale",
    "reject_cosmics",
    "repair",
    "unusable_pixels",
    "stack_bands",
    "subtract_bias",
    "subtract_dark",
    "subtract_overscan",
    "trim",
]
