"""Masters a night lacks, borrowed from the calibration library, and why each was chosen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..inventory import FrameInfo
from ..library import CalibrationLibrary, Match, Rules
from .plan import MasterPlan, master_name, middle, most_common
from .recipes import Recipe

__all__ = ["Borrower"]


@dataclass
class Borrower:
    """Finds library masters for what a setup's frames lack, and notes each choice."""

    library: CalibrationLibrary | None
    rules: Rules
    setup: tuple[Any, ...]
    suffix: str
    science: Sequence[FrameInfo]
    warnings: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    """How each filter is named (`ccdred.pipeline.plan.filter_labels`)."""

    def masters(self, recipe: Recipe, own: Sequence[MasterPlan], bias: str | None,
                served: Sequence[FrameInfo]) -> list[MasterPlan]:
        """Library masters of ``recipe``'s kind for the ``served`` frames ``own`` leaves out.

        One per setup (a bias), one per exposure time of the served frames (darks: only when
        the night has none of its own), one per filter the own masters lack (flats).
        """
        if self.library is None or not self.science or self.setup[0] is None:
            return []
        if recipe.group_by == "setup":
            return [] if own else self._single(recipe)
        if recipe.group_by == "exptime":
            return [] if own else self._per_exptime(recipe, bias is not None, served)
        have = {m.filter or "" for m in own}
        wanted = sorted({i.filter or "" for i in served} - have)
        return [plan for filt in wanted if (plan := self._per_filter(recipe, filt))]

    def _lookup(self, recipe: Recipe, **criteria: Any) -> Match | None:
        match, why = self.library.best(
            recipe.kind, instrument=most_common(i.instrument for i in self.science),
            shape=self.setup[0], binning=self.setup[1],
            date=middle(i.date for i in self.science), settings=tuple(self.setup[2:6]),
            rules=self.rules, **criteria)
        what = f"{recipe.kind} {criteria.get('filter') or ''}".strip()
        if match is None:
            self.warnings.append(f"no {what} frames in this night and {why}")
        else:
            self.warnings.append(f"no {what} frames in this night: using {match.path} "
                                 f"({match.reason})")
        return match

    def _single(self, recipe: Recipe) -> list[MasterPlan]:
        match = self._lookup(recipe)
        if match is None:
            return []
        return [MasterPlan(master_name(recipe.kind, "setup", None, self.suffix), recipe.kind, (),
                           exptime=0.0, setup=self.setup, library=match)]

    def _per_exptime(self, recipe: Recipe, have_bias: bool, served: Sequence[FrameInfo]
                     ) -> list[MasterPlan]:
        extra: dict[str, Any] = {}
        if "temperature" in recipe.library_criteria:
            extra["temperature"] = middle(i.temperature for i in served)
        scalable_ok = recipe.scalable_with_bias and have_bias
        plans: dict[int, MasterPlan] = {}
        for exptime in sorted({i.exptime for i in served if i.exptime}):
            match = self._lookup(recipe, exptime=exptime, scalable_ok=scalable_ok, **extra)
            if match is None or match.id in plans:
                continue
            name = master_name(recipe.kind, "exptime", match.exptime or exptime, self.suffix)
            if any(p.name == name for p in plans.values()):
                name += f"_lib{match.id}"  # two library masters of one exposure time
            plans[match.id] = MasterPlan(name, recipe.kind, (), exptime=match.exptime,
                                         setup=self.setup,
                                         scalable=match.scalable and scalable_ok,
                                         darktime=match.darktime, library=match)
        return list(plans.values())

    def _per_filter(self, recipe: Recipe, filt: str) -> MasterPlan | None:
        match = self._lookup(recipe, filter=filt or None)
        if match is None:
            return None
        name = master_name(recipe.kind, "filter", filt, self.suffix, self.labels)
        return MasterPlan(name, recipe.kind, (),
                          filter=filt, setup=self.setup, library=match)
