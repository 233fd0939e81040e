"""The product table: for each kind of master, how it is made.

Each `Recipe` declares what a master is combined from, what is subtracted from each input
first, the combine settings it needs, how the combined stack is finished, the defects found in
it, its header cards, the variance model for stacks too small to measure one, how the library
matches it to other nights, what the report checks, and *the option fields it depends on*.
Its options are read through a view of exactly those fields (`OptionsView`) and its resume
key is made of them, so an option that shapes a master always changes the master's key.

Adding a kind of master is one entry in `RECIPES` (plus its step functions if it needs new
ones); the plan, the build, the library, the report and the command line read the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import steps
from ..flags import Flag
from ..frame import Frame
from ..kernels.mosaic import plane_slices
from ..kernels.stats import block_medians
from ..stacking import CombineResult
from .noise import NOISE_OPTIONS, NoiseModel

if TYPE_CHECKING:
    from .options import OptionsView
    from .plan import MasterPlan

__all__ = ["Recipe", "RECIPES", "recipe_for", "GROUPINGS"]

GROUPINGS = ("setup", "exptime", "filter")
"""How a kind's frames are split into masters: one per readout setup, per exposure time, or
per filter (always within a setup)."""

Finish = Callable[[CombineResult, "Frame | None", "float | None", "OptionsView", "str | None"],
                  CombineResult]
Defects = Callable[[Frame, "OptionsView", "str | None"], Frame]
Cards = Callable[[Frame, "MasterPlan", "OptionsView"], dict[str, Any]]
Variance = Callable[[Frame, int, NoiseModel], "np.ndarray | None"]


@dataclass(frozen=True)
class Recipe:
    """How one kind of master is made (see the module's description)."""

    kind: str
    """The master's kind, as in the manifest, the library and ``IMAGETYP = 'MASTER <KIND>'``."""
    frames: str
    """The frame kind (`ccdred.inventory.KINDS`) it is combined from."""
    group_by: str
    """One master per readout ``setup``, per ``exptime`` or per ``filter`` (`GROUPINGS`)."""
    serves: str
    """The frame kind it calibrates: when a night lacks this master, the library is asked for
    one for each group of those frames."""
    variance: Variance
    """Variance model where the stack was too small to measure one (a single frame)."""
    finish: Finish = field(default=lambda result, bias, saturation, view, cfa: result)
    """Finishing of the combined stack: ``finish(result, bias, saturation, view, cfa)``."""
    subtract_bias: bool = False
    """The master bias is subtracted from each input first (when there is one)."""
    dark_kinds: tuple[str, ...] = ()
    """Masters that may remove each input's own dark, in order of preference."""
    combine: Mapping[str, Any] = field(default_factory=dict)
    """`CombineOptions` fields this kind always needs (the flats' median scaling)."""
    defects: Defects | None = None
    defect_flag: Flag | None = None
    """The defect it finds (HOT, DEAD): counted in its header and put in the bad-pixel map."""
    cards: Cards = field(default=lambda frame, master, view: {})
    notes: tuple[str, ...] = ()
    """HISTORY lines saying how it was made."""
    represents_exposure: bool = True
    """Its EXPTIME is the exposure it stands for (a flat's is not)."""
    scalable_with_bias: bool = False
    """With a master bias it is bias-subtracted, hence scales with exposure time."""
    records_read_noise: bool = False
    """It records the read noise of its raw frames (``RNADU``) for nights that borrow it."""
    library_criteria: tuple[str, ...] = ()
    """What a library master of this kind must match besides the camera and setup:
    ``exptime`` (same, or scalable), ``temperature``, ``filter``."""
    report: tuple[str, ...] = ()
    """Checks the night report makes: ``noise`` (against read noise), ``defects``, ``donuts``."""
    options: tuple[str, ...] = ()
    """The `ReduceOptions` fields it reads; with the noise model's, they make its key."""

    @property
    def key_fields(self) -> tuple[str, ...]:
        """Every option field this kind of master depends on (its resume key's options)."""
        return tuple(sorted(set(self.options) | set(NOISE_OPTIONS)))


def _read_noise_adu2(noise: NoiseModel) -> float:
    return (noise.read_noise / noise.gain) ** 2 + noise.quantisation


def _signal(frame: Frame) -> np.ndarray:
    return np.maximum(np.nan_to_num(frame.data.astype(np.float64)), 0)


def _bias_variance(frame: Frame, n: int, noise: NoiseModel) -> np.ndarray:
    return np.full(frame.shape, _read_noise_adu2(noise) / n)


def _dark_variance(frame: Frame, n: int, noise: NoiseModel) -> np.ndarray:
    return (_read_noise_adu2(noise) + _signal(frame) / noise.gain) / n


def _flat_variance(frame: Frame, n: int, noise: NoiseModel) -> np.ndarray | None:
    level = _flat_levels(frame)
    if not np.all(level > 0):
        return None
    return (_read_noise_adu2(noise) + _signal(frame) * level / noise.gain) / (level**2 * n)


def _flat_levels(frame: Frame) -> np.ndarray:
    """Return the raw level a flat value of 1 stands for, per pixel (per colour plane)."""
    if "FLATLV1" not in frame.header:
        return np.full(frame.shape, float(frame.header.get("FLATLVL", 0.0)))
    levels = np.empty(frame.shape)
    for n, (rows, cols) in enumerate(plane_slices("RGGB"), start=1):
        levels[rows, cols] = float(frame.header.get(f"FLATLV{n}", 0.0))
    return levels


def _finish_dark(result: CombineResult, bias: Frame | None, saturation: float | None,
                 view: OptionsView, cfa: str | None) -> CombineResult:
    return steps.finish_dark(result, bias=bias, saturation=saturation)


def _finish_flat(result: CombineResult, bias: Frame | None, saturation: float | None,
                 view: OptionsView, cfa: str | None) -> CombineResult:
    return steps.finish_flat(result, min_flat=view.min_flat, cfa=cfa,
                             scaling=view.cfa_flat_scaling)


def _hot_pixels(frame: Frame, view: OptionsView, cfa: str | None) -> Frame:
    return steps.find_hot_pixels(frame, k=view.hot_sigma, cfa=cfa)


def _dead_pixels(frame: Frame, view: OptionsView, cfa: str | None) -> Frame:
    return steps.find_dead_pixels(frame, k=view.dead_sigma, cfa=cfa)


def _dark_cards(frame: Frame, master: MasterPlan, view: OptionsView) -> dict[str, Any]:
    return {"NHOTPIX": (int(frame.has(Flag.HOT).sum()),
                        f"hot pixels (> local level + {view.hot_sigma:g} sigma)"),
            "DARKSCAL": (master.scalable, "bias-subtracted: scales with exposure time"),
            **_glow_cards(frame, master)}


GLOW_RATIO = 2.0
"""A scalable dark shows amp glow when its brightest cells stand this many times its median
dark current above it (a dark-current gradient across a CCD is a fraction of it)."""


def _glow_cards(frame: Frame, master: MasterPlan) -> dict[str, Any]:
    """Measure large-scale structure in a bias-subtracted dark: amp glow does not scale."""
    if not master.scalable:
        return {}
    cells = block_medians(frame.data, frame.bad)
    cells = cells[np.isfinite(cells)]
    if cells.size < 4:
        return {}
    level = float(np.median(cells))
    excess = float(np.percentile(cells, 99)) - level
    glow = excess > GLOW_RATIO * max(abs(level), 1e-6)
    return {"DARKGLOW": (glow, "large-scale glow: does not scale with exposure"),
            "GLOWADU": (round(excess, 2), "[adu] brightest 1% of 32x32 cells above median")}


def _darkflat_cards(frame: Frame, master: MasterPlan, view: OptionsView) -> dict[str, Any]:
    return {"DARKSCAL": (master.scalable, "bias-subtracted: scales with exposure time")}


def _flat_cards(frame: Frame, master: MasterPlan, view: OptionsView) -> dict[str, Any]:
    levels = {key: (frame.header[key], frame.header.comments[key]) for key in
              ("CFASCALE", "FLATLV1", "FLATLV2", "FLATLV3", "FLATLV4") if key in frame.header}
    return {"FILTER": master.filter or "",
            "FLATLVL": (frame.header["FLATLVL"], "[adu] raw level of a flat value of 1"),
            **levels,
            "NDEADPIX": (int(frame.has(Flag.DEAD).sum()),
                         f"dead/weak pixels (< local - {view.dead_sigma:g} sig)")}


_COMBINED = ("combine", "saturation", "overscan", "bayer")
"""Every master reads how to combine, the raw saturation level, the overscan model and the
Bayer pattern (an option can set it)."""

RECIPES: Mapping[str, Recipe] = MappingProxyType({recipe.kind: recipe for recipe in (
    Recipe("bias", frames="bias", group_by="setup", serves="science", variance=_bias_variance,
           records_read_noise=True, report=("noise",), options=_COMBINED),
    Recipe("dark", frames="dark", group_by="exptime", serves="science", variance=_dark_variance,
           finish=_finish_dark, subtract_bias=True, defects=_hot_pixels,
           defect_flag=Flag.HOT, cards=_dark_cards, scalable_with_bias=True,
           library_criteria=("exptime", "temperature"), report=("defects",),
           options=(*_COMBINED, "hot_sigma")),
    Recipe("darkflat", frames="darkflat", group_by="exptime", serves="flat",
           variance=_dark_variance, finish=_finish_dark, subtract_bias=True,
           cards=_darkflat_cards, scalable_with_bias=True,
           library_criteria=("exptime", "temperature"), options=_COMBINED),
    Recipe("flat", frames="flat", group_by="filter", serves="science", variance=_flat_variance,
           finish=_finish_flat, subtract_bias=True, dark_kinds=("darkflat", "dark"),
           combine={"scale": "median"}, defects=_dead_pixels, defect_flag=Flag.DEAD,
           cards=_flat_cards, represents_exposure=False,
           notes=("each flat normalised by its median, combined, normalised to mean 1",),
           library_criteria=("filter",), report=("defects", "donuts"),
           options=(*_COMBINED, "dead_sigma", "min_flat", "cfa_flat_scaling")),
)})
"""Every kind of master, in the order a night builds them (each after what it needs)."""


def recipe_for(kind: str) -> Recipe:
    """Return the recipe of a master kind.

    Raises
    ------
    ValueError
        No such kind.
    """
    try:
        return RECIPES[kind]
    except KeyError:
        raise ValueError(f"unknown kind of master {kind!r}; known: "
                         f"{', '.join(RECIPES)}") from None
