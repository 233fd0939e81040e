"""`CombineOptions`: how a stack is combined, validated once, the same default everywhere.

The default, for `ccdred.combine`, the night pipeline and both commands, is a mean after
iterative sigma clipping around the median with a *pooled* spread (see `ccdred.combine`):
it rejects cosmic rays and other outliers even among three frames and keeps 99.4-99.8 per cent
of good values, so the master is nearly as quiet as a plain mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..kernels import codes as _k

__all__ = ["CombineOptions", "METHODS", "REJECTIONS", "CENTRES", "SPREADS", "SCALINGS",
           "DEFAULT_MEMORY_LIMIT", "clip_description"]

METHODS = {"median": _k.MEDIAN, "mean": _k.MEAN, "sum": _k.SUM}
REJECTIONS = {"none": _k.REJECT_NONE, "sigclip": _k.REJECT_SIGCLIP, "minmax": _k.REJECT_MINMAX,
              "pclip": _k.REJECT_PCLIP, "winsorized": _k.REJECT_WINSOR,
              "ccdclip": _k.REJECT_CCDCLIP}
CENTRES = {"median": _k.CENTRE_MEDIAN, "mean": _k.CENTRE_MEAN}
SPREADS = {"pooled": _k.SPREAD_POOLED, "mad": _k.SPREAD_MAD, "std": _k.SPREAD_STD}
SCALINGS = ("median", "mean", "mode", "exptime")
ZEROS = ("median", "mean", "mode")
DEFAULT_MEMORY_LIMIT = 2 * 1024**3


@dataclass(frozen=True)
class CombineOptions:
    """How to combine a stack of frames (every field is checked on construction).

    Attributes
    ----------
    method : {'mean', 'median', 'sum'}
        Estimator over the values kept.
    reject : {'sigclip', 'none', 'minmax', 'pclip', 'winsorized', 'ccdclip'}
        Rejection before estimating (see `ccdred.combine`).
    sigma_low, sigma_high : float
        Clipping thresholds below and above the centre, in units of the spread.
    maxiters : int
        Maximum clipping passes (0: until nothing more is rejected).
    centre : {'median', 'mean'}
        Sigma clipping's centre.
    spread : {'pooled', 'mad', 'std'}
        Sigma clipping's spread.
    nlow, nhigh : int
        Values dropped at each end by ``minmax``.
    pclip : (float, float)
        Percentiles outside which ``pclip`` drops values.
    nkeep : int
        Never keep fewer than this many values at a pixel.
    gain, read_noise, snoise : float
        ``ccdclip``'s noise model: e-/ADU, e-, fractional sensitivity noise.
    scale : {'median', 'mean', 'mode', 'exptime'}, sequence of float or None
        Multiplicative scaling of each input (None: none).
    zero : {'median', 'mean', 'mode'}, sequence of float or None
        Additive offsets of each input (None: none).
    stat_section : str or None
        FITS section ``[x1:x2,y1:y2]`` the scale and zero statistics come from.
    memory_limit : int
        Bytes the working set (block buffers and outputs) may use.
    """

    method: str = "mean"
    reject: str = "sigclip"
    sigma_low: float = 3.0
    sigma_high: float = 3.0
    maxiters: int = 5
    centre: str = "median"
    spread: str = "pooled"
    nlow: int = 1
    nhigh: int = 1
    pclip: tuple[float, float] = (10.0, 90.0)
    nkeep: int = 1
    gain: float = 1.0
    read_noise: float = 0.0
    snoise: float = 0.0
    scale: str | tuple[float, ...] | None = None
    zero: str | tuple[float, ...] | None = None
    stat_section: str | None = None
    memory_limit: int = DEFAULT_MEMORY_LIMIT

    def __post_init__(self) -> None:
        for name in ("scale", "zero"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, name, tuple(float(v) for v in _flat(value)))
        object.__setattr__(self, "pclip", tuple(float(p) for p in self.pclip))
        _check_choices(self)
        _check_numbers(self)

    def replace(self, **changes: Any) -> CombineOptions:
        """Return a copy with some fields changed (validated again).

        Raises
        ------
        TypeError
            A name is not a field of `CombineOptions`.
        """
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"unknown combine option(s): {', '.join(unknown)}")
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Return the options as a plain dict (for manifests and resume keys)."""
        return asdict(self)

    def describe(self) -> str:
        """One line for headers and the plan."""
        reject = clip_description(self.reject, sigma_low=self.sigma_low,
                                  sigma_high=self.sigma_high, maxiters=self.maxiters,
                                  centre=self.centre, spread=self.spread, nlow=self.nlow,
                                  nhigh=self.nhigh, pclip=self.pclip, nkeep=self.nkeep)
        return f"{self.method}, rejection: {reject}"

    def for_stack(self, n: int) -> CombineOptions:
        """Options that make sense for ``n`` frames (min/max rejection needs enough of them)."""
        if self.reject == "minmax" and self.nlow + self.nhigh >= n:
            return replace(self, reject="none")
        return self


def _flat(value: object) -> list[Any]:
    import numpy as np

    return list(np.asarray(value, dtype=np.float64).ravel())


def _one_of(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")


def _check_choices(options: CombineOptions) -> None:
    _one_of("method", options.method, METHODS)
    _one_of("reject", options.reject, REJECTIONS)
    _one_of("centre", options.centre, CENTRES)
    _one_of("spread", options.spread, SPREADS)
    if isinstance(options.scale, str) and options.scale not in SCALINGS:
        raise ValueError(f"scale must be one of {SCALINGS} or an array, got {options.scale!r}")
    if isinstance(options.zero, str) and options.zero not in ZEROS:
        raise ValueError(f"zero must be 'median', 'mean', 'mode' or an array, got "
                         f"{options.zero!r}")


MAX_MEMORY_LIMIT = 2**50
"""The largest working memory accepted (1 PiB): more is a typing error, not a machine."""


def _check_numbers(options: CombineOptions) -> None:
    if not (options.sigma_low > 0 and options.sigma_high > 0):
        raise ValueError(f"sigma_low and sigma_high must be positive, got {options.sigma_low}, "
                         f"{options.sigma_high}")
    if options.maxiters < 0:
        raise ValueError(f"maxiters must be >= 0, got {options.maxiters}")
    if options.nlow < 0 or options.nhigh < 0:
        raise ValueError(f"nlow and nhigh must be >= 0, got {options.nlow}, {options.nhigh}")
    low, high = options.pclip
    if not (0 <= low < high <= 100):
        raise ValueError(f"pclip must be two percentiles 0 <= low < high <= 100, got "
                         f"{options.pclip}")
    if options.nkeep < 0:
        raise ValueError(f"nkeep must be >= 0, got {options.nkeep}")
    if options.reject == "ccdclip" and not (options.gain > 0 and options.read_noise >= 0):
        raise ValueError(f"ccdclip needs gain > 0 and read_noise >= 0, got {options.gain}, "
                         f"{options.read_noise}")
    if not options.snoise >= 0:
        raise ValueError(f"snoise must be >= 0, got {options.snoise}")
    limit = options.memory_limit
    if isinstance(limit, bool) or not (isinstance(limit, int | float) and math.isfinite(limit)
                                       and limit > 0):
        raise ValueError(f"memory_limit must be a positive number of bytes, got {limit!r}")
    if limit > MAX_MEMORY_LIMIT:
        raise ValueError(f"memory_limit must be at most 1024T (2**50 bytes), got {limit:.4g}")


def clip_description(reject: str, *, sigma_low: float, sigma_high: float, maxiters: int,
                     centre: str, spread: str, nlow: int, nhigh: int, pclip: tuple[float, float],
                     nkeep: int) -> str:
    """Describe a rejection setting in a few words, for headers and the plan."""
    if reject in ("sigclip", "winsorized", "ccdclip"):
        text = f"{reject} -{sigma_low:g}/+{sigma_high:g} sigma, maxiters={maxiters}"
        if reject == "sigclip":
            text += f", centre={centre}, spread={spread}"
    elif reject == "minmax":
        text = f"minmax nlow={nlow} nhigh={nhigh}"
    elif reject == "pclip":
        text = f"pclip {pclip[0]:g}-{pclip[1]:g} percentile"
    else:
        return "none"
    return f"{text}, nkeep={nkeep}" if nkeep else text
