"""Quality checks: the notebook's questions, answered with numbers and a verdict.

Each check returns a `Metric` with its value, the thresholds it was judged by and a verdict:
``pass``, ``warn``, ``fail``, or ``info`` (a finding to look at, not a judgement). The checks
work on `Frame` objects and never modify them.

Science frames: `flatness` (is the flat field corrected?), `defect_residuals` (are hot and
dead pixels corrected?), `dark_residual` and `negative_outliers` (is the dark correctly
subtracted?), `flat_imprint` (did signals appear that were not in the raw frame?). Masters:
`master_noise`, `defect_count`, `find_donuts`. A colour frame is checked colour plane by colour
plane (its Bayer pattern read from its header).
"""

from __future__ import annotations

from .maps import LargeScale, large_scale, local_noise, sky_level
from .masters import (
    Donut,
    FlatDonuts,
    defect_count,
    donut_metric,
    find_donuts,
    flat_donuts,
    master_noise,
)
from .metric import VERDICTS, Metric
from .science import (
    DarkPattern,
    FlatPattern,
    MasterMaps,
    adu_to_frame_units,
    dark_pattern,
    dark_residual,
    defect_residuals,
    flat_imprint,
    flat_pattern,
    flatness,
    master_maps,
    negative_outliers,
    science_checks,
)

__all__ = ["Metric", "Donut", "flatness", "defect_residuals", "dark_residual",
           "negative_outliers", "flat_imprint", "master_noise", "defect_count", "find_donuts",
           "donut_metric", "science_checks", "adu_to_frame_units", "VERDICTS", "local_noise",
           "sky_level", "large_scale", "LargeScale", "FlatDonuts", "flat_donuts", "MasterMaps",
           "master_maps", "DarkPattern", "dark_pattern", "FlatPattern", "flat_pattern"]
