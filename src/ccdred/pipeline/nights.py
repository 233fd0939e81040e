"""Many nights in one run, sharing one calibration library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..files import require_directory
from ..inventory import find_fits
from ..library import Rules
from .executors import Executor
from .options import ReduceOptions
from .plan import NightPlan
from .planner import plan_night
from .run import NightResult, Progress, run_night, validate_plan
from .science import ReducedHook

__all__ = ["Night", "find_nights", "plan_nights", "reduce_nights"]


@dataclass(frozen=True)
class Night:
    """One night: its raw folder and the folder its products go to."""

    raw_dir: Path
    out_dir: Path


def find_nights(raw_dirs: Sequence[str | Path], out_dir: str | Path, *,
                subfolders: bool = False) -> list[Night]:
    """Name the nights to reduce and where each goes.

    Each of ``raw_dirs`` is a night, or with ``subfolders`` each of their sub-folders that
    holds FITS files is. One night goes straight into ``out_dir``; several go into
    ``out_dir/<folder name>`` (made unique with the parent's name when two folders share one).

    Raises
    ------
    ValueError
        A raw folder is missing, or no night is found.
    """
    folders: list[Path] = []
    for raw in map(require_directory, raw_dirs):
        if subfolders:
            output = Path(out_dir).resolve()
            folders += [d for d in sorted(raw.iterdir()) if d.is_dir()
                        and not d.resolve().is_relative_to(output) and find_fits(d)]
        else:
            folders.append(raw)
    if not folders:
        raise ValueError(f"no night found in {', '.join(map(str, raw_dirs))}: no sub-folder "
                         f"holds FITS files")
    out = Path(out_dir)
    if len(folders) == 1 and not subfolders:
        return [Night(folders[0], out)]
    names = [d.name for d in folders]
    unique = [f"{d.parent.name}-{d.name}" if names.count(d.name) > 1 else d.name
              for d in folders]
    return [Night(d, out / name) for d, name in zip(folders, unique, strict=True)]


def plan_nights(nights: Sequence[Night], *, library: str | Path, rules: Rules | None = None,
                bayer: str | None = None, saturation: float | None = None) -> list[NightPlan]:
    """Plan every night against the library as it is now."""
    return [plan_night(n.raw_dir, n.out_dir, library=library, rules=rules, bayer=bayer,
                       saturation=saturation) for n in nights]


def reduce_nights(nights: Sequence[Night], library: str | Path, *,
                  options: ReduceOptions | None = None, progress: Progress | None = None,
                  executor: Executor | None = None, force: bool = False,
                  rules: Rules | None = None, on_reduced: ReducedHook | None = None
                  ) -> list[NightResult]:
    """Reduce several nights, each night's masters serving the others where the rules allow.

    First every night's own masters are built and registered in ``library``; then every
    night is planned again, so a night that lacks a calibration finds one from any other
    night (earlier or later), and reduced (its masters are kept: they are up to date).
    ``on_reduced``: as for `reduce_night`.
    """
    options = options or ReduceOptions()
    settings = {"options": options, "progress": progress, "executor": executor,
                "library": library}
    planned = {"library": library, "rules": rules, "bayer": options.bayer,
               "saturation": options.saturation}
    built: dict[Path, list[Path]] = {}
    plans = plan_nights(nights, **planned)
    for plan in plans:  # every night's inputs checked before any night is written
        validate_plan(plan, options)
    for night, plan in zip(nights, plans, strict=True):
        if any(m.library is None for m in plan.masters):
            first = run_night(night.raw_dir, night.out_dir, plan=plan, force_masters=force,
                            force_science=False, masters_only=True, **settings)
            built[night.out_dir] = first.rebuilt
    results = []
    for night, plan in zip(nights, plan_nights(nights, **planned),
                           strict=True):
        result = run_night(night.raw_dir, night.out_dir, plan=plan, force_masters=False,
                         force_science=force, masters_only=False, on_reduced=on_reduced,
                         **settings)
        result.rebuilt[:0] = built.get(night.out_dir, [])
        results.append(result)
    return results
