"""Build a night's plan: each setup's masters (own or borrowed) and its science frames.

Planning reads headers only (through `ccdred.inventory`); it never touches pixels, so
``--dry-run`` is instant and the plan can be printed, tested and stored in the manifest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..files import require_directory
from ..inventory import FrameInfo, camera_name, find_duplicates, scan
from ..library import CalibrationLibrary, Rules
from .borrow import Borrower
from .groups import GROUPERS, temperature_text, warn_missing_darks
from .plan import (
    DarkChoice,
    MasterPlan,
    NightPlan,
    SciencePlan,
    choose_dark,
    exptime_key,
    filter_labels,
    master_name,
    output_names,
    setups,
)
from .recipes import RECIPES, Recipe

__all__ = ["build_plan", "plan_night", "library_path_for", "LIBRARY_NAME"]


LIBRARY_NAME = "calibrations.sqlite"
"""The calibration library's file name in an output folder (the default library)."""

def plan_night(raw_dir: str | Path, out_dir: str | Path | None = None, *,
               library: str | Path | None = None, rules: Rules | None = None,
               bayer: str | None = None, saturation: float | None = None) -> NightPlan:
    """Scan ``raw_dir`` and plan its reduction (headers only; nothing is written).

    Parameters
    ----------
    raw_dir : path
        The night's raw frames.
    out_dir : path, optional
        Where the products will go (excluded from the scan).
    library : path, optional
        Calibration library that serves what the night lacks; by default
        ``out_dir/calibrations.sqlite``. Used only when the file exists.
    rules : Rules, optional
        When a library master may serve (`ccdred.library.Rules`).
    bayer : str, optional
        The Bayer pattern of every frame, whatever the headers say (``RGGB``...).
    saturation : float, optional
        The saturation level the run is given (else the plan warns when floating-point
        frames carry none).

    Raises
    ------
    ValueError
        ``raw_dir`` is not a directory, or ``out_dir`` is the raw directory itself.
    """
    raw = require_directory(raw_dir)
    exclude = []
    if out_dir is not None:
        out = Path(out_dir)
        if out.resolve() == raw.resolve():
            raise ValueError(f"{out}: the output directory cannot be the raw directory itself")
        if not raw.resolve().is_relative_to(out.resolve()):
            exclude.append(out)  # an output above the raw folder holds it: never excluded
    library_path = library_path_for(library, out_dir)
    infos = scan(raw, exclude=exclude)
    products = [i.path for i in infos if i.product]
    infos = [i for i in infos if not i.product]
    duplicates = find_duplicates(i.path for i in infos if i.ok)
    dropped = {d.path for d in duplicates}
    infos = [i for i in infos if i.path not in dropped]
    notes = tuple(f"{_relative(d.path, raw)} holds the same data as {_relative(d.same_as, raw)}"
                  f" ({d.how}): used once" for d in duplicates)
    if products:
        notes += (f"{len(products)} file(s) written by ccdred (e.g. {_relative(products[0], raw)})"
                  f" are under the raw folder: not taken for raw frames",)
    if bayer is not None:
        infos = [replace(i, cfa=bayer) for i in infos]
    if library_path is None or not library_path.is_file():
        plan = build_plan(infos, raw, rules=rules)
    else:
        with CalibrationLibrary(library_path) as calibrations:
            plan = build_plan(infos, raw, calibrations, rules)
    if saturation is None:
        notes += _saturation_notes(plan.frames)
    return replace(plan, warnings=notes + plan.warnings)


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def library_path_for(library: str | Path | None, out_dir: str | Path | None) -> Path | None:
    """Return the library a run uses: the one given, else ``out_dir/calibrations.sqlite``."""
    if library is not None:
        return Path(library)
    return Path(out_dir) / LIBRARY_NAME if out_dir is not None else None


def build_plan(infos: Sequence[FrameInfo], raw_dir: Path,
               library: CalibrationLibrary | None = None, rules: Rules | None = None) -> NightPlan:
    """Decide the masters and the calibration of every science frame.

    Within each readout setup (shape, binning), every kind of master in
    `ccdred.pipeline.recipes.RECIPES` is planned from the frames of its kind: one master bias;
    one master dark per exposure time, bias-subtracted (hence scalable) when a master bias
    exists; one master flat per filter, each input flat with bias and its own matched or
    scaled dark removed. Each science frame gets the bias, the dark chosen by `choose_dark` and
    the flat of its filter. When the night lacks a kind of master, the best one in the
    ``library`` serves (`CalibrationLibrary.best` with ``rules``), and the plan says which and
    why. A frame with no suitable master goes uncorrected for that step, and the plan says so.
    """
    warnings: list[str] = []
    usable = _name_unnamed_cameras([i for i in infos if i.ok], warnings)
    setup_suffixes = setups(usable)
    masters: list[MasterPlan] = []
    science: list[SciencePlan] = []
    out_names = output_names([i for i in usable if i.kind == "science"], raw_dir)
    planners = []
    for setup, suffix in setup_suffixes.items():
        group = [i for i in usable if i.setup == setup]
        planner = _SetupPlanner(setup, suffix, group, library, rules or Rules(), warnings)
        masters.extend(planner.masters())
        science.extend(planner.science(out_names))
        planners.append(planner)
    warnings.extend(_settings_notes(planners))
    if not usable:
        warnings.append("no usable frames found")
    warnings.extend(_header_notes(usable))
    return NightPlan(raw_dir=raw_dir, masters=tuple(masters), science=tuple(science),
                     skipped=tuple(i for i in infos if not i.ok),
                     warnings=tuple(dict.fromkeys(warnings)), setups=setup_suffixes,
                     frames=tuple(usable))


def _saturation_notes(infos: Sequence[FrameInfo]) -> tuple[str, ...]:
    """Say when floating-point frames carry no saturation level (nothing can be flagged)."""
    unknown = [i for i in infos if i.bitpix is not None and i.bitpix < 0
               and i.saturation is None]
    if not unknown:
        return ()
    return (f"{len(unknown)} floating-point frame(s) (BITPIX {unknown[0].bitpix}, e.g. "
            f"{unknown[0].path.name}) have no saturation keyword (SATURATE/DATAMAX): saturated "
            f"pixels cannot be flagged; give --saturation LEVEL (raw ADU)",)


def _name_unnamed_cameras(infos: list[FrameInfo], warnings: list[str]) -> list[FrameInfo]:
    """Frames without INSTRUME belong to the night's camera when the night names only one.

    With several cameras named, an unnamed frame cannot be told to belong to any: it forms
    its own setup (never combined with or applied to a named camera's frames), and the plan
    says so.
    """
    named = {camera_name(i.instrument): i.instrument for i in infos if i.instrument}
    unnamed = [i for i in infos if camera_name(i.instrument) is None]
    if not unnamed or not named:
        return infos
    if len(named) == 1:
        (instrument,) = named.values()
        return [i if camera_name(i.instrument) else replace(i, instrument=instrument)
                for i in infos]
    warnings.append(f"{len(unnamed)} frame(s) name no camera (no INSTRUME, e.g. "
                    f"{unnamed[0].path.name}) in a night of {len(named)} cameras "
                    f"({', '.join(sorted(named.values()))}): they are calibrated only with "
                    f"each other")
    return infos


def _header_notes(infos: Sequence[FrameInfo]) -> list[str]:
    """One warning per distinct header note (e.g. an ignored BIASSEC), with how many files."""
    files: dict[str, list[str]] = defaultdict(list)
    for info in infos:
        for note in info.notes:
            files[note].append(info.path.name)
    return [f"{note} ({len(names)} file{'s' if len(names) > 1 else ''}, e.g. {names[0]})"
            for note, names in files.items()]


@dataclass
class _SetupPlanner:
    """Plans one readout setup: its masters (own or borrowed) and its science frames."""

    setup: tuple[Any, ...]
    suffix: str
    frames: Sequence[FrameInfo]
    library: CalibrationLibrary | None
    rules: Rules
    warnings: list[str]
    planned: dict[str, list[MasterPlan]] = field(default_factory=dict)
    labels: dict[str, str] = field(init=False)
    """How each filter of the setup's frames is named in product names."""

    def __post_init__(self) -> None:
        self.labels = filter_labels(i.filter for i in self.frames)

    def of_kind(self, kind: str) -> list[FrameInfo]:
        return [i for i in self.frames if i.kind == kind]

    def masters(self) -> list[MasterPlan]:
        """Every kind's masters, in recipe order (borrowed before own, as they are named)."""
        borrow = Borrower(self.library, self.rules, self.setup, self.suffix,
                          self.of_kind("science"), self.warnings, self.labels)
        out: list[MasterPlan] = []
        for recipe in RECIPES.values():
            frames = self.of_kind(recipe.frames)
            if len(frames) == 1 and recipe.group_by != "filter":
                self.warnings.append(f"a single {recipe.frames} frame ({frames[0].path.name}): "
                                     f"its noise and any cosmic ray go into every frame (take "
                                     f"several)")
            own = self._own(recipe)
            borrowed = (borrow.masters(recipe, own, self.bias, self.of_kind(recipe.serves))
                        if self._borrowable(recipe) else [])
            self.planned[recipe.kind] = borrowed + own
            out.extend(borrowed + own)
        return out

    def _borrowable(self, recipe: Recipe) -> bool:
        """Whether the library is asked for this kind when the night lacks it.

        A kind that serves other masters' inputs only (dark-flats, for flats) is not needed
        when the night has frames of another kind that can serve them (darks).
        """
        if recipe.serves == "science":
            return True
        users = [r for r in RECIPES.values() if recipe.kind in r.dark_kinds]
        others = {kind for user in users for kind in user.dark_kinds} - {recipe.kind}
        return not any(self.of_kind(RECIPES[kind].frames) for kind in others)

    @property
    def bias(self) -> str | None:
        plans = self.planned.get("bias")
        return plans[0].name if plans else None

    def _darks_for(self, recipe: Recipe) -> list[MasterPlan]:
        for kind in recipe.dark_kinds:
            if self.planned.get(kind):
                return self.planned[kind]
        return []

    def _own(self, recipe: Recipe) -> list[MasterPlan]:
        frames = self.of_kind(recipe.frames)
        if not frames:
            return []
        bias = self.bias if recipe.subtract_bias else None
        groups = GROUPERS[recipe.group_by](frames, recipe, self.warnings)
        plans = []
        for key, members in groups:
            plans.append(self._master(recipe, key, members, bias))
        return plans

    def _master(self, recipe: Recipe, key: Any, members: Sequence[FrameInfo],
                bias: str | None) -> MasterPlan:
        name = master_name(recipe.kind, recipe.group_by, key, self.suffix, self.labels)
        darks: tuple[DarkChoice | None, ...] = ()
        serving = self._darks_for(recipe)
        if recipe.dark_kinds:
            darks = tuple(self._choose_dark(f, serving, level_ok=bias is None) for f in members)
            warn_missing_darks(name, members, darks, serving, bias, self.warnings)
        if recipe.group_by == "filter" and len(members) == 1:
            self.warnings.append(f"{name}: a single {recipe.frames}; its noise goes straight "
                                 f"into every science frame (take several)")
        exptime = 0.0 if recipe.group_by == "setup" else (
            key if recipe.group_by == "exptime" else None)
        if isinstance(exptime, tuple):
            exptime = exptime[0]  # (exposure, set temperature)
        darktimes = [m.darktime for m in members if m.darktime and m.darktime > 0]
        temperatures = [m.temperature for m in members if m.temperature is not None]
        return MasterPlan(
            name, recipe.kind, tuple(m.path for m in members), exptime=exptime,
            temperature=(float(sum(temperatures) / len(temperatures))
                         if len(temperatures) == len(members) else None),
            filter=key if recipe.group_by == "filter" else None, setup=self.setup, bias=bias,
            darks=darks, scalable=recipe.scalable_with_bias and bias is not None,
            darktime=(sum(darktimes) / len(darktimes)
                      if recipe.group_by == "exptime" and len(darktimes) == len(members)
                      else None))

    def science(self, out_names: dict[Path, str]) -> list[SciencePlan]:
        """Each science frame with the bias, dark and flat that serve it."""
        darks = self.planned.get("dark", [])
        flats = {m.filter or "": m.name for m in self.planned.get("flat", [])}
        defects = any(RECIPES[m.kind].defect_flag is not None
                      for plans in self.planned.values() for m in plans)
        badpix = f"badpix{self.suffix}" if defects else None
        plans = [SciencePlan(info, out_names[info.path], self.bias,
                             self._science_dark(info, darks), self._science_flat(info, flats),
                             badpix)
                 for info in self.of_kind("science")]
        if not self.bias and not darks and (plans or self.of_kind("flat")):
            self.warnings.append("no bias and no dark frames: the bias level stays in every "
                                 "frame")
        if plans and not flats:
            self.warnings.append("no flat frames: science frames are not flat-fielded")
        return plans

    def _choose_dark(self, info: FrameInfo, darks: Sequence[MasterPlan], *, level_ok: bool
                     ) -> DarkChoice | None:
        return choose_dark(info.exptime, darks, info.darktime, temperature=info.temperature,
                           tolerance=self.rules.temperature_tolerance, level_ok=level_ok)

    def _science_dark(self, info: FrameInfo, darks: Sequence[MasterPlan]) -> DarkChoice | None:
        dark = self._choose_dark(info, darks, level_ok=self.bias is None)
        if (dark is None or dark.level_only) and darks:
            listed = ", ".join(exptime_key(d.exptime) + temperature_text(d.temperature)
                               for d in darks)
            what = (f"{info.exptime}s" if info.temperature is None
                    else f"{info.exptime}s at {info.temperature:+.1f} C")
            done = ("the pedestal is estimated from the median of " + dark.master
                    if dark else "not subtracted")
            self.warnings.append(
                f"{info.path.name}: no dark for {what} (darks are {listed}"
                f"{'' if self.bias else ', no bias to scale them'}; within "
                f"{self.rules.temperature_tolerance:g} C): dark current {done}")
        return dark

    def _science_flat(self, info: FrameInfo, flats: dict[str, str]) -> str | None:
        flat = flats.get(info.filter or "")
        if flat is None and flats:
            self.warnings.append(f"{info.path.name}: no flat for filter {info.filter!r} "
                                 f"(flats: {', '.join(sorted(flats))}): not "
                                 f"flat-fielded")
        return flat


def _settings_notes(planners: Sequence[_SetupPlanner]) -> list[str]:
    """Say when a setup's lights lack a kind of master that frames at other settings have.

    A dark or flat taken at another gain setting, offset or readout mode is never applied:
    the plan names the settings that differ.
    """
    notes = []
    for planner in planners:
        if not planner.of_kind("science"):
            continue
        for kind in ("dark", "flat"):
            if planner.planned.get(kind):
                continue
            others = [p for p in planners if p is not planner and p.planned.get(kind)
                      and _geometry(p.setup) == _geometry(planner.setup)]
            for other in others:
                notes.append(f"the lights at {_settings(planner.setup)} get no {kind}: the "
                             f"night's {kind}s are at {_settings(other.setup)}, and a {kind} "
                             f"of other camera settings is never applied")
    return notes


def _geometry(setup: Any) -> tuple[Any, ...]:
    """Shape, binning and camera: what differs only in settings shares."""
    return (*setup[:2], setup[6] if len(setup) > 6 else None)


def _settings(setup: Any) -> str:
    names = ("gain", "offset", "readout mode", "Bayer pattern")
    parts = [f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
             for name, value in zip(names, setup[2:6], strict=False) if value is not None]
    return ", ".join(parts) or "no camera settings"
