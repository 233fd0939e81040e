"""How a setup's frames of one kind are grouped into masters, and what missing darks leave."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ..inventory import FrameInfo
from .plan import DarkChoice, MasterPlan, same_exptime
from .recipes import Recipe

__all__ = ["GROUPERS", "warn_missing_darks", "temperature_text"]


def _by_setup(frames: Sequence[FrameInfo], recipe: Recipe, warnings: list[str]
              ) -> list[tuple[Any, list[FrameInfo]]]:
    return [(None, list(frames))]


def _by_exptime(frames: Sequence[FrameInfo], recipe: Recipe, warnings: list[str]
                ) -> list[tuple[Any, list[FrameInfo]]]:
    """One group per exposure time, and per cooler set point when the night has several."""
    groups: list[tuple[float, list[FrameInfo]]] = []
    for info in sorted(frames, key=lambda i: i.exptime or 0.0):
        if info.exptime is None:
            warnings.append(f"{info.path.name}: {recipe.frames} without an exposure time; not "
                            f"used")
            continue
        if groups and same_exptime(groups[-1][0], info.exptime):
            groups[-1][1].append(info)
        else:
            groups.append((info.exptime, [info]))
    set_points = {i.set_temperature for i in frames if i.set_temperature is not None}
    if len(set_points) <= 1:
        return list(groups)
    split = []
    for exptime, members in groups:
        by_point: dict[float | None, list[FrameInfo]] = defaultdict(list)
        for info in members:
            by_point[info.set_temperature].append(info)
        split += [((exptime, point), part) for point, part in sorted(
            by_point.items(), key=lambda item: (item[0] is None, item[0] or 0.0))]
    return split


def _by_filter(frames: Sequence[FrameInfo], recipe: Recipe, warnings: list[str]
               ) -> list[tuple[Any, list[FrameInfo]]]:
    groups: dict[str, list[FrameInfo]] = defaultdict(list)
    for info in frames:
        groups[info.filter or ""].append(info)
    if "" in groups and len(groups) > 1:
        warnings.append(f"{len(groups[''])} {recipe.frames}s have no filter keyword; they form "
                        f"their own group and serve only science frames without a filter")
    return sorted(groups.items())


GROUPERS = {"setup": _by_setup, "exptime": _by_exptime, "filter": _by_filter}


def temperature_text(temperature: float | None) -> str:
    """Return `` at -10.0 C`` for a known temperature, nothing otherwise."""
    return "" if temperature is None else f" at {temperature:+.1f} C"


def warn_missing_darks(name: str, frames: Sequence[FrameInfo],
                        choices: Sequence[DarkChoice | None], darks: Sequence[MasterPlan],
                        bias: str | None, warnings: list[str]) -> None:
    """Say which input frames go without their dark, and what that leaves in them."""
    missing = [f.path.name for f, c in zip(frames, choices, strict=True) if c is None]
    estimated = [c for c in choices if c is not None and c.level_only]
    kind = f"{frames[0].kind}s"
    if estimated:
        warnings.append(f"{name}: no bias and no dark-flat or dark of the {kind}' exposure: "
                        f"their pedestal is estimated from the median of {estimated[0].master}"
                        f" (take dark-flats)")
    if missing and not darks and bias is None:
        warnings.append(f"{name}: NO bias, dark-flat or dark for its {kind}: they keep the "
                        f"camera's pedestal, which skews every flat-fielded value (take "
                        f"dark-flats or biases)")
    elif missing and darks:
        warnings.append(f"no dark can serve {kind} {', '.join(missing)} (different exposure "
                        f"or temperature, and no bias to scale a dark): their dark current "
                        f"stays in them")
