"""Plan a night: which frames build which master, and which masters serve each frame.

Planning reads headers only (through `ccdred.inventory`); it never touches pixels, so
``--dry-run`` is instant and the plan can be printed, tested and stored in the manifest.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..inventory import FrameInfo
from ..library import Match

__all__ = ["MasterPlan", "DarkChoice", "SciencePlan", "NightPlan", "choose_dark", "exptime_key",
           "setups", "output_names", "master_name", "safe_name", "same_exptime",
           "most_common", "middle", "temperature_ok", "filter_labels"]

EXPTIME_TOLERANCE = 0.01
"""Relative difference under which two exposure times count as equal (1 per cent)."""


def exptime_key(exptime: float) -> str:
    """Format an exposure time for file names: 300 -> '300s', 3.5 -> '3.5s'."""
    return f"{exptime:g}s"


def safe_name(text: str) -> str:
    """Make text safe in a file name (anything but letters, digits, ``.+-`` becomes ``-``)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "none"


@dataclass(frozen=True)
class DarkChoice:
    """A master dark applied to a frame, times ``scale`` (exposure ratio, or 1 when matched).

    With ``level_only`` only the dark's median level is subtracted: an estimate of the
    camera's pedestal for a frame that has no bias and no dark of its exposure.
    """

    master: str
    """The master's name, e.g. ``dark_300s``."""
    scale: float
    reason: str
    level_only: bool = False


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
    temperature: float | None = None
    """Mean sensor temperature of the inputs (deg C), when every input has one."""
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
    frames: tuple[FrameInfo, ...] = ()
    """Every usable raw frame, as read (and with the Bayer pattern an option set)."""

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
                 "darks": [None if d is None else {"master": d.master, "scale": d.scale,
                                                   "level_only": d.level_only}
                           for d in m.darks]}
                for m in self.masters],
            "science": [
                {"input": str(s.input.path), "output": f"reduced/{s.output}", "bias": s.bias,
                 "dark": None if s.dark is None else {"master": s.dark.master,
                                                      "scale": s.dark.scale,
                                                      "reason": s.dark.reason,
                                                      "level_only": s.dark.level_only},
                 "flat": s.flat}
                for s in self.science],
            "skipped": [{"path": str(i.path), "reason": i.error} for i in self.skipped],
            "warnings": list(self.warnings),
        }


def same_exptime(a: float, b: float) -> bool:
    """Tell whether two exposure times are equal within `EXPTIME_TOLERANCE`."""
    return abs(a - b) <= EXPTIME_TOLERANCE * max(abs(a), abs(b), 1e-3)


def choose_dark(exptime: float | None, darks: Sequence[MasterPlan],
                darktime: float | None = None, *, temperature: float | None = None,
                tolerance: float = 2.0, level_ok: bool = False) -> DarkChoice | None:
    """Pick the master dark for a frame of ``exptime`` seconds.

    Only darks within ``tolerance`` deg C of the frame's ``temperature`` serve (when both are
    known). A dark of the same exposure time is used as is. Otherwise only bias-subtracted
    (scalable) darks may serve, scaled by the exposure ratio; the one whose exposure is
    closest in ratio is taken (the longer on a tie), so the scaling stays small. When the frame
    and the dark both have a DARKTIME (the time charge really built up, shutter closed
    included), the scale is the ratio of dark times. With ``level_ok`` (a night without
    bias), a frame no dark can serve gets the shortest dark's median level as an estimate of
    the pedestal. Returns None when no dark can serve.
    """
    if exptime is None or exptime <= 0:
        return None
    darks = [d for d in darks if temperature_ok(d.temperature, temperature, tolerance)]
    if not darks:
        return None
    for dark in darks:
        if dark.exptime is not None and same_exptime(dark.exptime, exptime):
            return DarkChoice(dark.name, 1.0, f"matched exposure {exptime_key(dark.exptime)}")
    scalable = [d for d in darks if d.scalable and d.exptime and d.exptime > 0]
    if not scalable:
        return _pedestal_only(darks) if level_ok else None
    best = min(scalable, key=lambda d: (abs(math.log(exptime / d.exptime)), -d.exptime))
    if darktime and best.darktime:
        return DarkChoice(best.name, darktime / best.darktime,
                          f"scaled by dark time {best.darktime:g}s -> {darktime:g}s")
    scale = exptime / best.exptime
    return DarkChoice(best.name, scale,
                      f"scaled {exptime_key(best.exptime)} -> {exptime_key(exptime)}")


def _pedestal_only(darks: Sequence[MasterPlan]) -> DarkChoice | None:
    known = [d for d in darks if d.exptime is not None]
    if not known:
        return None
    shortest = min(known, key=lambda d: d.exptime)
    return DarkChoice(shortest.name, 1.0, f"pedestal only: the median level of {shortest.name} "
                                          f"(no bias, no dark of this exposure)", level_only=True)


def temperature_ok(dark: float | None, frame: float | None, tolerance: float) -> bool:
    """Tell whether a dark's sensor temperature is within ``tolerance`` of a frame's."""
    return dark is None or frame is None or abs(dark - frame) <= tolerance


def setups(infos: Iterable[FrameInfo]) -> dict[tuple[Any, ...], str]:
    """Each setup of the frames and its suffix in product names (none if there is only one).

    The suffix names what differs between the night's setups: ``_1024x1024_bin2x2``,
    ``_g100_o50``, ``_RGGB``...; two setups never share one.
    """
    keys = sorted({i.setup for i in infos}, key=str)
    if len(keys) <= 1:
        return {key: "" for key in keys}
    parts = {key: _setup_parts(key) for key in keys}
    differing = [i for i in range(len(parts[keys[0]]))
                 if len({parts[key][i] for key in keys}) > 1]
    if differing and differing[0] < 2:  # the geometry differs: name it in full, as always
        differing = [0, 1] + [i for i in differing if i >= 2]
    names = {key: "_" + "_".join(parts[key][i] for i in differing) for key in keys}
    if len({n.casefold() for n in names.values()}) < len(names):  # alike: number them
        names = {key: f"{name}_{n}" for n, (key, name) in enumerate(names.items(), start=1)}
    return names


def _setup_parts(setup: Any) -> list[str]:
    shape, binning = setup[0], setup[1]
    parts = [f"{shape[1]}x{shape[0]}" if shape else "noshape", f"bin{binning[0]}x{binning[1]}"]
    extra = list(setup[2:]) + [None] * (5 - len(setup[2:]))
    gain, offset, mode, cfa, camera = extra[:5]
    parts += [f"g{gain:g}" if gain is not None else "g-", f"o{offset:g}" if offset is not None
              else "o-", safe_name(mode) if mode else "mode-", cfa or "mono",
              safe_name(camera) if camera else "nocamera"]
    return parts


def output_names(science: Sequence[FrameInfo], raw_dir: Path) -> dict[Path, str]:
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
    # Names still alike (x.fits beside x.fits.gz, folders differing in case): a short hash of
    # the file's own path keeps them apart on any file system.
    taken = Counter(name.casefold() for name in names.values())
    for path, name in names.items():
        if taken[name.casefold()] > 1:
            digest = hashlib.sha1(str(path).encode()).hexdigest()[:6]
            names[path] = f"{Path(name).stem}_{digest}.fits"
    return names


def filter_labels(filters: Iterable[str | None]) -> dict[str, str]:
    """How each filter is named in product names: never two alike, whatever the file system.

    A filter's name is made safe for a file name (`safe_name`; no filter is ``none``). When
    two filters would read alike that way, or differ only in case (``r'`` and ``r``,
    ``H alpha`` and ``H-alpha``, ``R`` and ``r``), each gets a short hash of its true name.
    """
    keys = sorted({f or "" for f in filters})
    bases = {key: safe_name(key) for key in keys}
    alike: dict[str, list[str]] = defaultdict(list)
    for key, base in bases.items():
        alike[base.casefold()].append(key)
    return {key: base if len(alike[base.casefold()]) == 1 else
            f"{base}_{hashlib.sha1(key.encode()).hexdigest()[:6]}"
            for key, base in bases.items()}


def master_name(kind: str, group_by: str, key: Any, suffix: str,
                labels: dict[str, str] | None = None) -> str:
    """``bias``, ``dark_300s``, ``flat_R``: the kind, the group's key, the setup's suffix.

    ``labels`` names filters (`filter_labels`); without it, `safe_name` does.
    """
    if group_by == "setup":
        return f"{kind}{suffix}"
    if group_by == "exptime" and isinstance(key, tuple):
        exptime, point = key
        temperature = "" if point is None else f"_{point:+g}C"
        return f"{kind}_{exptime_key(exptime)}{temperature}{suffix}"
    if group_by == "exptime":
        return f"{kind}_{exptime_key(key)}{suffix}"
    label = (labels or {}).get(key or "") or safe_name(key)
    return f"{kind}_{label}{suffix}"


def most_common(values: Iterable[Any]) -> Any:
    """Return the most common of ``values`` (None when there are none)."""
    ranked = Counter(values).most_common(1)
    return ranked[0][0] if ranked else None


def middle(values: Iterable[Any]) -> Any:
    """Return the median of the known values (dates as ISO text sort in time order)."""
    known = sorted(v for v in values if v is not None)
    return known[len(known) // 2] if known else None
