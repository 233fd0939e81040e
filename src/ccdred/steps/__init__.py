"""Calibration steps: each takes `Frame` objects (or row sources) and returns new frames.

Masters: `make_master_bias`, `make_master_dark`, `make_master_flat` (each is
`combine_master`, which can work in row bands put together by `stack_bands`, then
`finish_master`). Defects:
`find_hot_pixels`, `find_dead_pixels`. Science: `flag_saturation`,
`subtract_overscan`, `trim`, `add_noise_model`,
`subtract_bias`, `subtract_dark`, `flat_correct`, `reject_cosmics`, `repair`.
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
)
from .masters import (
    MASTER_KINDS,
    CombineOptions,
    combine_master,
    find_dead_pixels,
    find_hot_pixels,
    finish_master,
    make_master_bias,
    make_master_dark,
    make_master_flat,
    master_header,
    stack_bands,
)
from .overscan import subtract_overscan, trim

__all__ = [
    "MASTER_KINDS",
    "CombineOptions",
    "combine_master",
    "finish_master",
    "stack_bands",
    "add_noise_model",
    "find_dead_pixels",
    "find_hot_pixels",
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
    "subtract_bias",
    "subtract_dark",
    "subtract_overscan",
    "trim",
]
