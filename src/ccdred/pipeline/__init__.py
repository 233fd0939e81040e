"""Plan a night and run the plan, on any executor; many nights sharing a library."""

from .executors import DaskCluster, InProcess, LocalProcesses, make_executor
from .nights import Night, find_nights, reduce_nights
from .plan import NightPlan, build_plan, choose_dark
from .run import (
    LIBRARY_NAME,
    SCIENCE_STEPS,
    NightResult,
    NoiseModel,
    ReduceOptions,
    calibrate_science,
    plan_night,
    reduce_night,
)

__all__ = ["LIBRARY_NAME", "DaskCluster", "InProcess", "LocalProcesses", "Night", "NightPlan",
           "NightResult", "NoiseModel", "ReduceOptions", "SCIENCE_STEPS", "build_plan",
           "calibrate_science", "choose_dark", "find_nights", "make_executor", "plan_night",
           "reduce_night", "reduce_nights"]
