"""`ReduceOptions`: everything that decides how a night is reduced, validated on construction."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..instruments.camera import CFA_PATTERNS
from ..kernels.overscan import OVERSCAN_MODELS
from ..stacking import CombineOptions
from ..steps.masters import CFA_FLAT_SCALINGS

__all__ = ["ReduceOptions", "OptionsView", "UNITS", "REPAIR_POLICIES"]

UNITS = ("adu", "electron")
"""Units of the reduced science frames: ADU as read, or electrons (ADU x the gain used)."""

REPAIR_POLICIES = ("unusable", "all", "none")
"""Which flagged pixels a science frame's repair step fills (see `ReduceOptions.repair`)."""


@dataclass(frozen=True)
class ReduceOptions:
    """Everything that decides how a night is reduced (recorded in the manifest)."""

    combine: CombineOptions = CombineOptions()
    """How every master's stack is combined (a recipe may add its own needs, such as the
    flats' median scaling)."""
    hot_sigma: float = 5.0
    dead_sigma: float = 5.0
    min_flat: float = 0.1
    repair: str = "unusable"
    """Which flagged pixels get their neighbours' median (`REPAIR_POLICIES`): ``unusable``
    (only those calibration cannot make right, `ccdred.steps.unusable_pixels`), ``all``
    (every hot, dead, cosmic-ray, low-flat and no-data pixel) or ``none``. Flags are set the
    same way whatever the policy. ``True``/``False`` are read as ``all``/``none``."""
    dead_response: float = 0.5
    """``repair="unusable"``: a dead pixel is repaired when its flat response is below this."""
    hot_noise: float = 3.0
    """``repair="unusable"``: a hot pixel is repaired when its noise exceeds the sky's by this."""
    compress: bool = False
    """Write reduced frames in the compact layout (tile-compressed, no MASK; see
    `ccdred.io.write`) instead of astropy's CCDData one. Masters keep the CCDData layout."""
    cosmics: bool = True
    gain: float | None = None
    """Electrons per ADU; overrides headers and measurement."""
    read_noise: float | None = None
    """Electrons; overrides headers and measurement."""
    saturation: float | None = None
    """Raw ADU; overrides headers and the ADC limit."""
    skip_bad: bool = False
    sources: dict[str, str] = field(default_factory=dict)
    """Where ``gain``, ``read_noise`` or ``saturation`` came from when not the command line,
    e.g. ``{"gain": "instrument file arcsat.toml"}``; written into the headers."""
    optimize_dark: bool = False
    """Fit each science frame's dark factor (`ccdred.steps.optimal_dark_scale`) instead of
    using the exposure-time ratio, for cameras whose dark does not scale cleanly."""
    overscan: str | None = "median"
    """Overscan model where headers give a BIASSEC (median, mean, poly); None: no overscan
    subtraction and no trimming."""
    bayer: str | None = None
    """Bayer pattern at the first pixel (``RGGB``...) of every frame, for cameras whose headers
    do not say (or say wrong); None: as the headers say."""
    cfa_flat_scaling: str = "separate"
    """A colour flat normalised to 1 in each colour plane (``separate``) or over all pixels
    (``global``); see `ccdred.steps.finish_flat`."""
    units: str = "adu"
    """Units of the reduced science frames (`UNITS`): ``adu``, or ``electron`` (image and
    uncertainty multiplied by the gain used; masters stay in ADU)."""

    def __post_init__(self) -> None:
        if isinstance(self.repair, bool):
            object.__setattr__(self, "repair", "all" if self.repair else "none")
        if self.repair not in REPAIR_POLICIES:
            raise ValueError(f"repair must be one of {', '.join(REPAIR_POLICIES)}, "
                             f"got {self.repair!r}")
        if not 0 < self.dead_response < 1:
            raise ValueError(f"dead_response must be between 0 and 1, got {self.dead_response}")
        if not isinstance(self.combine, CombineOptions):
            raise TypeError(f"combine must be a CombineOptions, got {type(self.combine).__name__}")
        if self.overscan is not None and self.overscan not in OVERSCAN_MODELS:
            raise ValueError(f"overscan must be one of {', '.join(OVERSCAN_MODELS)}, "
                             f"got {self.overscan!r}")
        if self.bayer is not None and self.bayer not in CFA_PATTERNS:
            raise ValueError(f"bayer must be one of {', '.join(CFA_PATTERNS)}, got {self.bayer!r}")
        if self.cfa_flat_scaling not in CFA_FLAT_SCALINGS:
            raise ValueError(f"cfa_flat_scaling must be one of {', '.join(CFA_FLAT_SCALINGS)}, "
                             f"got {self.cfa_flat_scaling!r}")
        if self.units not in UNITS:
            raise ValueError(f"units must be one of {', '.join(UNITS)}, got {self.units!r}")
        for name in ("hot_sigma", "dead_sigma", "min_flat", "hot_noise"):
            if not _finite_positive(getattr(self, name)):
                raise ValueError(f"{name} must be a positive number, got "
                                 f"{getattr(self, name)}")
        for name in ("gain", "read_noise", "saturation"):
            value = getattr(self, name)
            if value is not None and not _finite_positive(value):
                raise ValueError(f"{name} must be a positive number, got {value}")

    def as_dict(self) -> dict[str, Any]:
        """Return the options as plain data (for the manifest and resume keys)."""
        return asdict(self)


def _finite_positive(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


class OptionsView:
    """Read access to the declared fields of a `ReduceOptions`, and to nothing else.

    A recipe reads its options through a view of the fields it declares; its resume key is
    made of the same fields, so an option that shapes a product always changes its key.
    """

    def __init__(self, options: ReduceOptions, names: Iterable[str]) -> None:
        known = {f.name for f in fields(ReduceOptions)}
        names = tuple(names)
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(f"no such option(s): {', '.join(unknown)}")
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_names", names)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._names:
            raise AttributeError(f"option {name!r} is read but not declared (declared: "
                                 f"{', '.join(self._names)}); add it to the recipe's options")
        return getattr(self._options, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("options are read-only")

    def values(self) -> dict[str, Any]:
        """Return the declared fields and their values (what a resume key is made of)."""
        return {name: _plain(getattr(self._options, name)) for name in sorted(self._names)}


def _plain(value: Any) -> Any:
    return value.as_dict() if hasattr(value, "as_dict") else value
