"""Plan a night and run the plan, on any executor; many nights sharing a library.

Modules, each with one job: `options` (ReduceOptions), `recipes` (the product table),
`plan` and `planner` (what builds what, and why), `borrow` (masters from the library),
`noise` (gain, read noise, saturation), `masters` (build a master from its recipe), `science`
(the science step table and its task), `products` (Product records, the manifest, resume
keys), `tasks` (what workers share), `executors`, `run` (a night end to end), `nights`.
"""

from .executors import DaskCluster, InProcess, LocalProcesses, make_executor
from .nights import Night, find_nights, reduce_nights
from .noise import NoiseModel
from .options import ReduceOptions
from .plan import NightPlan, choose_dark
from .planner import build_plan
from .recipes import RECIPES, Recipe
from .run import LIBRARY_NAME, NightResult, plan_night, reduce_night
from .science import SCIENCE_STEPS, calibrate_science

__all__ = ["LIBRARY_NAME", "DaskCluster", "InProcess", "LocalProcesses", "Night", "NightPlan",
           "NightResult", "NoiseModel", "RECIPES", "Recipe", "ReduceOptions", "SCIENCE_STEPS",
           "build_plan", "calibrate_science", "choose_dark", "find_nights", "make_executor",
           "plan_night", "reduce_night", "reduce_nights"]
