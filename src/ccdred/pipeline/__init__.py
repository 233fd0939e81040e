"""Plan a night and run the plan."""

from .plan import NightPlan, build_plan, choose_dark
from .run import (
    SCIENCE_STEPS,
    NightResult,
    NoiseModel,
    ReduceOptions,
    calibrate_science,
    plan_night,
    reduce_night,
)

__all__ = ["NightPlan", "NightResult", "NoiseModel", "ReduceOptions", "SCIENCE_STEPS",
           "build_plan", "calibrate_science", "choose_dark", "plan_night", "reduce_night"]
