"""Plan a night: which frames build which master, and which masters serve each frame.

Planning reads headers only (through `ccdred.inventory`); it never touches pixels, so
``--dry-run`` is instant and the plan can be printed, tested and stored in the manifest.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..inventory import FrameInfo
from ..library import CalibrationLibrary, Match, Rules

__all__ = ["MasterPlan", "DarkChoice", "SciencePlan", "NightPlan", "build_plan", "choose_dark",
           "exptime_key"]

EXPTIME_TOLERANCE = 0.01
"""Relative difference under which two exposure times count as equal (1 per cent)."""


def exptime_key(exptime: float) -> str:
    """Format an exposure time for file names: 300 -> '300s', 3.5 -> '3.5s'."""
    return f"{exptime:g}s"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "none"


@dataclass(frozen=True)
class DarkChoice:
    """A master dark applied to a frame, times ``scale`` (exposure ratio, or 1 when matched)."""

    master: str
    """The master's name, e.g. ``dark_300s``."""
    scale: float
    reason: str


@dataclass(frozen=True)
class MasterPlan:
    """One master to build."""

    name: str
    """``bias``, ``dark_<exptime>s`` or ``flat_<filter>`` (plus a setup suffix if needed)."""
    kind: str
    inputs: tuple[Path, ...]
    exptime: float | None = None
    filter: str | None = None
    setup: tuple[Any, ...] = ()
    bias: str | None = None
    darks: tuple[DarkChoice | None, ...] = ()
    """For flats: the dark applied to each input flat."""
    scalable: bool = False
    """For darks: bias-subtracted, so it scales with exposure time."""
    darktime: float | None = None
    """For darks: the mean DARKTIME of the inputs, when every input has one."""
    library: Match | None = None
    """A master taken from the calibration library instead of built (no inputs)."""

    @property
    def filename(self) -> str:
        """File name under ``masters/``."""
        return f"{self.name}.fits"

    @property
    def file(self) -> str:
        """Where the master is: ``masters/<name>.fits``, or the library master's path."""
        return self.library.path if self.library else f"masters/{self.filename}"


@dataclass(frozen=True)
class SciencePlan:
    """One science frame to calibrate and the masters that serve it."""

    input: FrameInfo
    output: str
    """File name under ``reduced/``."""
    bias: str | None
    dark: DarkChoice | None
    flat: str | None
    badpix: str | None


@dataclass(frozen=True)
class NightPlan:
    """Everything a run will do, decided from headers alone."""

    raw_dir: Path
    masters: tuple[MasterPlan, ...]
    science: tuple[SciencePlan, ...]
    skipped: tuple[FrameInfo, ...] = ()
    warnings: tuple[str, ...] = ()
    setups: dict[tuple[Any, ...], str] = field(default_factory=dict)

    def master(self, name: str) -> MasterPlan:
        """Return the master called ``name``."""
        for plan in self.masters:
            if plan.name == name:
                return plan
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready description of the plan."""
        return {
            "raw_dir": str(self.raw_dir),
            "masters": [
                {"name": m.name, "kind": m.kind, "file": m.file,
                 "library": m.library.reason if m.library else None,
                 "inputs": [str(p) for p in m.inputs], "exptime": m.exptime,
                 "filter": m.filter, "bias": m.bias, "scalable": m.scalable,
                 "darks": [None if d is None else {"master": d.master, "scale": d.scale}
                           for d in m.darks]}
                for m in self.masters],
            "science": [
                {"input": str(s.input.path), "output": f"reduced/{s.output}", "bias": s.bias,
                 "dark": None if s.dark is None else {"master": s.dark.master,
                                                      "scale": s.dark.scale,
                                                      "reason": s.dark.reason},
                 "flat": s.flat}
                for s in self.science],
            "skipped": [{"path": str(i.path), "reason": i.error} for i in self.skipped],
            "warnings": list(self.warnings),
        }


def _same_exptime(a: float, b: float) -> bool:
    return abs(a - b) <= EXPTIME_TOLERANCE * max(abs(a), abs(b), 1e-3)


def choose_dark(exptime: float | None, darks: Sequence[MasterPlan],
                darktime: float | None = None) -> DarkChoice | None:
    """Pick the master dark for a frame of ``exptime`` seconds.

    A dark of the same exposure time is used as is. Otherwise only bias-subtracted (scalable)
    darks may serve, scaled by the exposure ratio; the one whose exposure is closest in ratio
    is taken (the longer on a tie), so the scaling stays small. When the frame and the dark
    both have a DARKTIME (the time charge really built up, shutter closed included), the
    scale is the ratio of dark times. Returns None when no dark can serve.
    """
    if exptime is None or exptime <= 0 or not darks:
        return None
    for dark in darks:
        if dark.exptime is not None and _same_exptime(dark.exptime, exptime):
            return DarkChoice(dark.name, 1.0, f"matched exposure {exptime_key(dark.exptime)}")
    scalable = [d for d in darks if d.scalable and d.exptime and d.exptime > 0]
    if not scalable:
        return None
    best = min(scalable, key=lambda d: (abs(math.log(exptime / d.exptime)), -d.exptime))
    if darktime and best.darktime:
        return DarkChoice(best.name, darktime / best.darktime,
                          f"scaled by dark time {best.darktime:g}s -> {darktime:g}s")
    scale = exptime / best.exptime
    return DarkChoice(best.name, scale,
                      f"scaled {exptime_key(best.exptime)} -> {exptime_key(exptime)}")


def _setups(infos: Iterable[FrameInfo]) -> dict[tuple[Any, ...], str]:
    keys = sorted({i.setup for i in infos}, key=str)
    if len(keys) <= 1:
        return {key: "" for key in keys}
    return {key: f"_{key[0][1]}x{key[0][0]}_bin{key[1][0]}x{key[1][1]}" for key in keys}


def _output_names(science: Sequence[FrameInfo], raw_dir: Path) -> dict[Path, str]:
    """Reduced file names: the input stem, made unique with its folders when stems collide."""
    def stem(path: Path) -> str:
        name = path.name
        for suffix in (".gz", ".fz"):
            name = name.removesuffix(suffix)
        return Path(name).stem

    counts: dict[str, int] = defaultdict(int)
    for info in science:
        counts[stem(info.path).lower()] += 1
    names = {}
    for info in science:
        base = stem(info.path)
        if counts[base.lower()] > 1:
            rel = info.path.relative_to(raw_dir) if info.path.is_relative_to(raw_dir) else (
                info.path)
            base = "__".join([*rel.parent.parts, base])
        names[info.path] = f"{base}.fits"
    return names


def build_plan(infos: Sequence[FrameInfo], raw_dir: Path,
               library: CalibrationLibrary | None = None, rules: Rules | None = None) -> NightPlan:
    """Decide the masters and the calibration of every science frame.

    Rules: one master bias per readout setup (shape, binning); one master dark per exposure
    time, bias-subtracted (hence scalable) when a master bias exists; one master flat per
    filter, each input flat with bias and its own matched or scaled dark removed; each science
    frame gets the bias, the dark chosen by `choose_dark` and the flat of its filter. When the
    night has no bias, no darks, or no flat of a science filter, the best master in the
    ``library`` serves (`CalibrationLibrary.best` with ``rules``), and the plan says which and
    why. A frame with no suitable master goes uncorrected for that step, and the plan says so.
    """
    usable = [i for i in infos if i.ok]
    skipped = tuple(i for i in infos if not i.ok)
    warnings: list[str] = []
    setups = _setups(usable)
    masters: list[MasterPlan] = []
    science: list[SciencePlan] = []
    science_frames = [i for i in usable if i.kind == "science"]
    out_names = _output_names(science_frames, raw_dir)
    for setup, suffix in setups.items():
        group = [i for i in usable if i.setup == setup]
        by_kind: dict[str, list[FrameInfo]] = defaultdict(list)
        for info in group:
            by_kind[info.kind].append(info)
        for kind in ("bias", "dark"):
            if len(by_kind[kind]) == 1:
                warnings.append(f"a single {kind} frame ({by_kind[kind][0].path.name}): its "
                                f"noise and any cosmic ray go into every frame (take several)")
        borrow = _Borrower(library, rules or Rules(), setup, suffix, by_kind["science"], warnings)
        bias_name = None
        if by_kind["bias"]:
            bias_name = f"bias{suffix}"
            masters.append(MasterPlan(bias_name, "bias", tuple(i.path for i in by_kind["bias"]),
                                      exptime=0.0, setup=setup))
        elif (borrowed := borrow.bias()) is not None:
            bias_name = borrowed.name
            masters.append(borrowed)
        dark_plans = (_plan_darks(by_kind["dark"], bias_name, suffix, setup, warnings)
                      if by_kind["dark"] else borrow.darks(bias_name is not None))
        masters.extend(dark_plans)
        flat_names = {}
        own_filters = {f.filter or "" for f in by_kind["flat"]}
        for filt in sorted({i.filter or "" for i in by_kind["science"]} - own_filters):
            if (borrowed := borrow.flat(filt)) is not None:
                flat_names[filt] = borrowed.name
                masters.append(borrowed)
        for filt, flats in _by_filter(by_kind["flat"], warnings).items():
            name = f"flat_{_safe(filt)}{suffix}"
            flat_names[filt] = name
            choices = tuple(choose_dark(f.exptime, dark_plans, f.darktime) for f in flats)
            _warn_missing_darks(flats, choices, dark_plans, warnings)
            masters.append(MasterPlan(name, "flat", tuple(f.path for f in flats), filter=filt,
                                      setup=setup, bias=bias_name, darks=choices))
            if len(flats) == 1:
                warnings.append(f"{name}: a single flat; its noise goes straight into every "
                                f"science frame (take several)")
        badpix = f"badpix{suffix}" if (dark_plans or flat_names) else None
        for info in by_kind["science"]:
            dark = choose_dark(info.exptime, dark_plans, info.darktime)
            if dark is None and dark_plans:
                darks = ", ".join(exptime_key(d.exptime) for d in dark_plans)
                warnings.append(f"{info.path.name}: no dark for {info.exptime}s "
                                f"(darks are {darks}"
                                f"{'' if bias_name else ' and there is no bias to scale them'}):"
                                f" dark current not subtracted")
            flat = flat_names.get(info.filter or "")
            if flat is None and flat_names:
                warnings.append(f"{info.path.name}: no flat for filter {info.filter!r} "
                                f"(flats: {', '.join(sorted(flat_names))}): not flat-fielded")
            science.append(SciencePlan(info, out_names[info.path], bias_name, dark, flat,
                                       badpix))
        if not bias_name and not dark_plans and (by_kind["science"] or by_kind["flat"]):
            warnings.append("no bias and no dark frames: the bias level stays in every frame")
        if by_kind["science"] and not flat_names:
            warnings.append("no flat frames: science frames are not flat-fielded")
    if not usable:
        warnings.append("no usable frames found")
    warnings.extend(_header_notes(usable))
    return NightPlan(raw_dir=raw_dir, masters=tuple(masters), science=tuple(science),
                     skipped=skipped, warnings=tuple(dict.fromkeys(warnings)), setups=setups)


def _header_notes(infos: Sequence[FrameInfo]) -> list[str]:
    """One warning per distinct header note (e.g. an ignored BIASSEC), with how many files."""
    files: dict[str, list[str]] = defaultdict(list)
    for info in infos:
        for note in info.notes:
            files[note].append(info.path.name)
    return [f"{note} ({len(names)} file{'s' if len(names) > 1 else ''}, e.g. {names[0]})"
            for note, names in files.items()]


def _plan_darks(darks: Sequence[FrameInfo], bias_name: str | None, suffix: str,
                setup: tuple[Any, ...], warnings: list[str]) -> list[MasterPlan]:
    groups: list[tuple[float, list[FrameInfo]]] = []
    for info in sorted(darks, key=lambda i: i.exptime or 0.0):
        if info.exptime is None:
            warnings.append(f"{info.path.name}: dark without an exposure time; not used")
            continue
        if groups and _same_exptime(groups[-1][0], info.exptime):
            groups[-1][1].append(info)
        else:
            groups.append((info.exptime, [info]))
    plans = []
    for exptime, members in groups:
        name = f"dark_{exptime_key(exptime)}{suffix}"
        darktimes = [m.darktime for m in members if m.darktime and m.darktime > 0]
        darktime = sum(darktimes) / len(darktimes) if len(darktimes) == len(members) else None
        plans.append(MasterPlan(name, "dark", tuple(m.path for m in members), exptime=exptime,
                                setup=setup, bias=bias_name, scalable=bias_name is not None,
                                darktime=darktime))
    return plans


def _by_filter(flats: Sequence[FrameInfo], warnings: list[str]) -> dict[str, list[FrameInfo]]:
    groups: dict[str, list[FrameInfo]] = defaultdict(list)
    for info in flats:
        groups[info.filter or ""].append(info)
    if "" in groups and len(groups) > 1:
        warnings.append(f"{len(groups[''])} flats have no filter keyword; they form their own "
                        f"group and serve only science frames without a filter")
    return dict(sorted(groups.items()))


def _warn_missing_darks(flats: Sequence[FrameInfo], choices: Sequence[DarkChoice | None],
                        darks: Sequence[MasterPlan], warnings: list[str]) -> None:
    if not darks:
        return
    missing = [f.path.name for f, c in zip(flats, choices, strict=True) if c is None]
    if missing:
        warnings.append(f"no dark can serve flats {', '.join(missing)} (different exposure and "
                        f"no bias to scale a dark): their dark current stays in the flat")


@dataclass
class _Borrower:
    """Finds library masters for what a setup's frames lack, and notes each choice."""

    library: CalibrationLibrary | None
    rules: Rules
    setup: tuple[Any, ...]
    suffix: str
    science: Sequence[FrameInfo]
    warnings: list[str]

    def _lookup(self, kind: str, **extra: Any) -> Match | None:
        if self.library is None or not self.science or self.setup[0] is None:
            return None
        match, why = self.library.best(kind, instrument=_most_common(
            i.instrument for i in self.science), shape=self.setup[0], binning=self.setup[1],
            date=_middle(i.date for i in self.science), rules=self.rules, **extra)
        what = f"{kind} {extra.get('filter') or ''}".strip()
        if match is None:
            self.warnings.append(f"no {what} frames in this night and {why}")
        else:
            self.warnings.append(f"no {what} frames in this night: using {match.path} "
                                 f"({match.reason})")
        return match

    def bias(self) -> MasterPlan | None:
        match = self._lookup("bias")
        return MasterPlan(f"bias{self.suffix}", "bias", (), exptime=0.0, setup=self.setup,
                          library=match) if match else None

    def darks(self, have_bias: bool) -> list[MasterPlan]:
        temperature = _middle(i.temperature for i in self.science)
        plans: dict[int, MasterPlan] = {}
        for exptime in sorted({i.exptime for i in self.science if i.exptime}):
            match = self._lookup("dark", exptime=exptime, temperature=temperature,
                                 scalable_ok=have_bias)
            if match is not None and match.id not in plans:
                name = f"dark_{exptime_key(match.exptime or exptime)}{self.suffix}"
                if any(p.name == name for p in plans.values()):
                    name += f"_lib{match.id}"  # two library darks of one exposure time
                plans[match.id] = MasterPlan(
                    name, "dark", (), exptime=match.exptime, setup=self.setup,
                    scalable=match.scalable and have_bias, darktime=match.darktime,
                    library=match)
        return list(plans.values())

    def flat(self, filt: str) -> MasterPlan | None:
        match = self._lookup("flat", filter=filt or None)
        return MasterPlan(f"flat_{_safe(filt)}{self.suffix}", "flat", (), filter=filt,
                          setup=self.setup, library=match) if match else None


def _most_common(values: Iterable[Any]) -> Any:
    ranked = Counter(values).most_common(1)
    return ranked[0][0] if ranked else None


def _middle(values: Iterable[Any]) -> Any:
    """Return the median of the known values (dates as ISO text sort in time order)."""
    known = sorted(v for v in values if v is not None)
    return known[len(known) // 2] if known else None
