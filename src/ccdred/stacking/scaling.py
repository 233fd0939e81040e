"""Each input's scale and zero offset for a combine: from headers, statistics or the caller."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..geometry import parse_section
from ..instruments.headers import header_exptime
from ..kernels.stats import robust_stats
from .options import CombineOptions
from .sources import RowSource

__all__ = ["input_scales", "input_zeros"]


def _sample(source: RowSource, section: str | None, max_rows: int = 64) -> np.ndarray:
    """Read a representative sample: the section, or up to ``max_rows`` rows spread evenly."""
    rows, cols = source.shape
    if section:
        try:
            area = parse_section(section, source.shape)
        except ValueError as err:
            raise ValueError(f"statistics section: {err}") from None
        return source.read_rows(area.row0, area.row1)[:, area.col0:area.col1]
    picks = np.unique(np.linspace(0, rows - 1, min(rows, max_rows)).astype(int))
    return np.concatenate([source.read_rows(r, r + 1) for r in picks])


def _statistic(sample: np.ndarray, kind: str) -> float:
    stats = robust_stats(sample)
    if kind == "median":
        return stats.median
    if kind == "mean":
        return stats.mean
    # Pearson's empirical mode of the clipped distribution.
    return 3.0 * stats.median - 2.0 * stats.mean


def _exptime(source: RowSource) -> float:
    header = getattr(source, "header", None)
    value = header_exptime(header) if header is not None else None
    if value is None or value <= 0:
        raise ValueError(f"{source.name}: scale='exptime' needs a positive exposure time")
    return value


def input_scales(sources: Sequence[RowSource], options: CombineOptions) -> np.ndarray | None:
    """Return each input's scale statistic (None: no scaling)."""
    spec = options.scale
    if spec is None:
        return None
    if spec == "exptime":
        values = np.array([_exptime(s) for s in sources])
    elif isinstance(spec, str):
        values = np.array([_statistic(_sample(s, options.stat_section), spec) for s in sources])
    else:
        values = np.asarray(spec, dtype=np.float64)
    _check_finite(sources, values, "scale")
    if np.any(values / values.mean() <= 0):
        raise ValueError(f"scale factors must be positive, got {values}")
    return values


def input_zeros(sources: Sequence[RowSource], options: CombineOptions, scales: np.ndarray
           ) -> np.ndarray:
    """Return each input's additive offset from the mean level, after scaling (zeros: none)."""
    spec = options.zero
    if spec is None:
        return np.zeros(len(sources))
    if isinstance(spec, str):
        values = np.array([_statistic(_sample(s, options.stat_section) / scales[i], spec)
                           for i, s in enumerate(sources)])
    else:
        values = np.asarray(spec, dtype=np.float64)
    _check_finite(sources, values, "zero")
    return values - values.mean()


def _check_finite(sources: Sequence[RowSource], values: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(values)):
        bad = [s.name for s, v in zip(sources, values, strict=True) if not np.isfinite(v)]
        raise ValueError(f"{what}: no finite statistic for {', '.join(bad)}")
