"""Combine a stack of frames or files into one, streaming row blocks through compiled kernels.

`combine` is the one entry point every master goes through. Inputs are files (each opened once
and memory-mapped), `Frame` objects, or any `RowSource`; rows are read in blocks sized so the
working set stays under ``memory_limit``, and every pixel's result is independent of the block
size.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numba
import numpy as np
from astropy.io import fits

from .flags import BAD, Flag
from .frame import Frame
from .kernels import combine as _k
from .kernels.stats import robust_stats

__all__ = ["combine", "CombineResult", "RowSource", "FrameRows", "CalibratedRows", "METHODS",
           "REJECTIONS", "SCALINGS"]

METHODS = {"median": _k.MEDIAN, "mean": _k.MEAN, "sum": _k.SUM}
REJECTIONS = {"none": _k.REJECT_NONE, "sigclip": _k.REJECT_SIGCLIP, "minmax": _k.REJECT_MINMAX,
              "pclip": _k.REJECT_PCLIP, "winsorized": _k.REJECT_WINSOR,
              "ccdclip": _k.REJECT_CCDCLIP}
CENTRES = {"median": _k.CENTRE_MEDIAN, "mean": _k.CENTRE_MEAN}
SPREADS = {"pooled": _k.SPREAD_POOLED, "mad": _k.SPREAD_MAD, "std": _k.SPREAD_STD}
SCALINGS = ("median", "mean", "mode", "exptime")
DEFAULT_MEMORY_LIMIT = 2 * 1024**3


@runtime_checkable
class RowSource(Protocol):
    """Anything that yields row blocks of one image: files, frames, calibrated files."""

    name: str
    shape: tuple[int, int]

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as float32, NaN where the value must not be used."""

    def read_variance_rows(self, start: int, stop: int) -> np.ndarray | None:
        """Variance of those rows, or None when unknown."""


class FrameRows:
    """Rows of an in-memory `Frame`; pixels with a BAD flag come back as NaN."""

    def __init__(self, frame: Frame, name: str | None = None) -> None:
        self.frame = frame
        self.name = name or (frame.path.name if frame.path else "frame")
        self.shape = frame.shape
        self.header = frame.header

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows as float32 with flagged pixels set to NaN."""
        block = self.frame.data[start:stop]
        bad = (self.frame.dq[start:stop] & np.uint16(BAD)) != 0
        return np.where(bad, np.float32(np.nan), block).astype(np.float32, copy=False)

    def read_variance_rows(self, start: int, stop: int) -> np.ndarray | None:
        """Variance rows, or None."""
        if self.frame.variance is None:
            return None
        return self.frame.variance[start:stop]

    def close(self) -> None:
        """Nothing to release."""


class _FileSource:
    """Adapts `ccdred.io.FileRows` to `RowSource` (no variance)."""

    def __init__(self, path: Path) -> None:
        from .io import FileRows

        self._rows = FileRows(path)
        self.name = self._rows.name
        self.shape = self._rows.shape
        self.header = self._rows.header
        self.path = Path(path)

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        return self._rows.read_rows(start, stop)

    def read_variance_rows(self, start: int, stop: int) -> None:
        return None

    def close(self) -> None:
        self._rows.close()


@dataclass
class CalibratedRows:
    """A raw source with calibration applied on the fly, row block by row block.

    In order: raw values at or above ``saturation`` become NaN, so they never enter a
    combine; with an ``overscan`` model, each row's overscan level (BIASSEC) is subtracted and
    the frame trimmed (TRIMSEC/DATASEC), as `ccdred.steps.overscan` reads them from the
    source's header; then ``out = raw - sum(factor * frame)`` for each ``(frame, factor)`` in
    ``subtract``.
    """

    source: RowSource
    subtract: Sequence[tuple[Frame, float]] = ()
    saturation: float | None = None
    overscan: str | None = None
    """Overscan model (``median``, ``mean``, ``poly``), or None to leave the frame as it is."""
    name: str = field(init=False)
    shape: tuple[int, int] = field(init=False)

    def __post_init__(self) -> None:
        from .steps.overscan import readout_geometry

        self.name = self.source.name
        self.header = getattr(self.source, "header", None)
        geometry = None
        if self.overscan is not None and self.header is not None:
            geometry = readout_geometry(self.header, self.source.shape)
        self._trim = geometry.trimsec if geometry else None
        self._levels = (self._overscan_levels(geometry.biassec)
                        if geometry and geometry.biassec else None)
        self.shape = self._trim.shape if self._trim else self.source.shape
        for frame, _ in self.subtract:
            if frame.shape != self.shape:
                raise ValueError(
                    f"{self.name} is {self.shape[1]}x{self.shape[0]} but the calibration frame "
                    f"{frame.path.name if frame.path else ''} is {frame.shape[1]}x{frame.shape[0]}")

    def _raw_rows(self, start: int, stop: int) -> np.ndarray:
        block = self.source.read_rows(start, stop)
        if self.saturation is not None:
            block = np.where(block >= self.saturation, np.float32(np.nan), block)
        return block

    def _overscan_levels(self, biassec) -> np.ndarray:
        from .steps.overscan import overscan_levels

        rows, cols = biassec.slices
        step = 256
        overscan = np.concatenate([self._raw_rows(r, min(r + step, self.source.shape[0]))[:, cols]
                                   for r in range(0, self.source.shape[0], step)])
        levels = np.zeros(self.source.shape[0])
        levels[rows] = overscan_levels(overscan[rows], model=self.overscan)
        return levels

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of the calibrated (and trimmed) image."""
        offset = self._trim.row0 if self._trim else 0
        block = self._raw_rows(start + offset, stop + offset)
        if self._levels is not None:
            block = block - self._levels[start + offset:stop + offset, None].astype(np.float32)
        if self._trim is not None:
            block = block[:, self._trim.col0:self._trim.col1]
        for frame, factor in self.subtract:
            # Flagged calibration pixels (hot pixels in a dark) still hold the right value to
            # subtract; only pixels without any value become NaN.
            rows = frame.data[start:stop]
            missing = (frame.dq[start:stop] & np.uint16(Flag.NO_DATA)) != 0
            rows = np.where(missing, np.float32(np.nan), rows)
            block = block - np.float32(factor) * rows
        return block

    def read_variance_rows(self, start: int, stop: int) -> np.ndarray | None:
        """Raw files carry no variance."""
        return None

    def close(self) -> None:
        """Release the source."""
        close = getattr(self.source, "close", None)
        if close:
            close()


@dataclass(frozen=True)
class CombineResult:
    """What a combine produced.

    Attributes
    ----------
    frame : Frame
        Combined image with its variance; NO_DATA where no value was left.
    count : ndarray (int16)
        Number of values used per pixel.
    rejected : ndarray (uint8, n x rows x cols) or None
        1 where an input value was rejected, when asked for.
    scales, zeros : ndarray
        Multiplicative scale divided out of and zero offset subtracted from each input.
    names : tuple of str
        Input names in order.
    """

    frame: Frame
    count: np.ndarray
    rejected: np.ndarray | None
    scales: np.ndarray
    zeros: np.ndarray
    names: tuple[str, ...]


def _as_source(item: object) -> RowSource:
    if isinstance(item, (str, Path)):
        return _FileSource(Path(item))
    if isinstance(item, Frame):
        return FrameRows(item)
    if isinstance(item, RowSource):
        return item
    raise TypeError(f"cannot combine a {type(item).__name__}: give paths, Frames or row sources")


def _parse_section(section: str, shape: tuple[int, int]) -> tuple[slice, slice]:
    """FITS section ``[x1:x2,y1:y2]`` (1-based, inclusive) -> numpy (row, column) slices."""
    text = section.strip().strip("[]")
    try:
        xpart, ypart = text.split(",")
        x1, x2 = (int(v) for v in xpart.split(":"))
        y1, y2 = (int(v) for v in ypart.split(":"))
    except ValueError as err:
        raise ValueError(f"statistics section {section!r} is not of the form [x1:x2,y1:y2]"
                         ) from err
    rows, cols = shape
    if not (1 <= x1 <= x2 <= cols and 1 <= y1 <= y2 <= rows):
        raise ValueError(f"statistics section {section!r} is outside the {cols}x{rows} image")
    return slice(y1 - 1, y2), slice(x1 - 1, x2)


def _sample(source: RowSource, section: str | None, max_rows: int = 64) -> np.ndarray:
    """Read a representative sample: the section, or up to ``max_rows`` rows spread evenly."""
    rows, cols = source.shape
    if section:
        rslice, cslice = _parse_section(section, source.shape)
        return source.read_rows(rslice.start, rslice.stop)[:, cslice]
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
    from .inventory import header_exptime

    value = header_exptime(header) if header is not None else None
    if value is None or value <= 0:
        raise ValueError(f"{source.name}: scale='exptime' needs a positive exposure time")
    return value


def _factors(sources: Sequence[RowSource], spec: object, section: str | None, what: str
             ) -> np.ndarray | None:
    n = len(sources)
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec == "exptime":
            values = np.array([_exptime(s) for s in sources])
        elif spec in ("median", "mean", "mode"):
            values = np.array([_statistic(_sample(s, section), spec) for s in sources])
        else:
            raise ValueError(f"{what} must be one of {SCALINGS} or an array, got {spec!r}")
    else:
        values = np.asarray(spec, dtype=np.float64).ravel()
        if values.size != n:
            raise ValueError(f"{what} has {values.size} values for {n} inputs")
    if not np.all(np.isfinite(values)):
        bad = [s.name for s, v in zip(sources, values, strict=True) if not np.isfinite(v)]
        raise ValueError(f"{what}: no finite statistic for {', '.join(bad)}")
    return values


def _validate(n: int, method: str, reject: str, centre: str, spread: str, sigma_low: float,
              sigma_high: float, nlow: int, nhigh: int, pclip: tuple[float, float],
              nkeep: int, gain: float, read_noise: float, memory_limit: int) -> None:
    if n == 0:
        raise ValueError("nothing to combine: no inputs given")
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if reject not in REJECTIONS:
        raise ValueError(f"reject must be one of {sorted(REJECTIONS)}, got {reject!r}")
    if centre not in CENTRES:
        raise ValueError(f"centre must be one of {sorted(CENTRES)}, got {centre!r}")
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {sorted(SPREADS)}, got {spread!r}")
    if not (sigma_low > 0 and sigma_high > 0):
        raise ValueError(f"sigma_low and sigma_high must be positive, got {sigma_low}, "
                         f"{sigma_high}")
    if nlow < 0 or nhigh < 0:
        raise ValueError(f"nlow and nhigh must be >= 0, got {nlow}, {nhigh}")
    if reject == "minmax" and nlow + nhigh >= n:
        raise ValueError(f"minmax rejection of nlow={nlow} + nhigh={nhigh} values leaves nothing "
                         f"of {n} inputs")
    if not (0 <= pclip[0] < pclip[1] <= 100):
        raise ValueError(f"pclip must be two percentiles 0 <= low < high <= 100, got {pclip}")
    if nkeep < 0:
        raise ValueError(f"nkeep must be >= 0, got {nkeep}")
    if reject == "ccdclip" and not (gain > 0 and read_noise >= 0):
        raise ValueError(f"ccdclip needs gain > 0 and read_noise >= 0, got {gain}, {read_noise}")
    if memory_limit <= 0:
        raise ValueError(f"memory_limit must be positive, got {memory_limit}")


def rows_per_block(n_inputs: int, shape: tuple[int, int], memory_limit: int, *,
                   with_variance: bool = False, with_map: bool = False, readers: int = 1) -> int:
    """Rows per block so that the block buffers and the full outputs fit in ``memory_limit``.

    ``readers`` is how many inputs are read at once, each with a frame block in flight.
    """
    rows, cols = shape
    outputs = rows * cols * (4 + 4 + 2) + (n_inputs * rows * cols if with_map else 0)
    per_value = 4 + (4 if with_variance else 0)
    per_row = cols * (n_inputs * per_value + 2 * readers * per_value)
    budget = memory_limit - outputs
    if budget < per_row:
        raise ValueError(
            f"memory_limit of {memory_limit / 2**20:.1f} MiB is too small for {n_inputs} frames of "
            f"{cols}x{rows}: at least {(outputs + per_row) / 2**20:.1f} MiB is needed")
    return int(min(rows, budget // per_row))


def combine(inputs: Sequence[object], *, method: str = "median", reject: str = "none",
            sigma_low: float = 3.0, sigma_high: float = 3.0, maxiters: int = 5,
            centre: str = "median", spread: str = "pooled", nlow: int = 1, nhigh: int = 1,
            pclip: tuple[float, float] = (10.0, 90.0), nkeep: int = 1, gain: float = 1.0,
            read_noise: float = 0.0, snoise: float = 0.0, scale: object = None,
            zero: object = None, weights: Sequence[float] | None = None,
            stat_section: str | None = None, memory_limit: int = DEFAULT_MEMORY_LIMIT,
            rejection_map: bool = False, dtype: type = np.float32,
            rows: tuple[int, int] | None = None, progress: object = None) -> CombineResult:
    """Combine frames pixel by pixel, with rejection, scaling and weights.

    Parameters
    ----------
    inputs : sequence of path, Frame or RowSource
        What to combine; all the same shape. Files are each opened once and streamed.
    method : {'median', 'mean', 'sum'}
        Estimator over the values kept. ``mean`` honours ``weights``.
    reject : {'none', 'sigclip', 'minmax', 'pclip', 'winsorized', 'ccdclip'}
        Rejection before estimating. ``sigclip`` uses ``centre``/``spread``: by default the
        median and the ``pooled`` spread, the larger of the pixel's own MAD spread and the noise
        pooled over its 32-column segment of the row (like IRAF's avsigclip), which rejects an
        outlier even among 3 values without rejecting good ones by chance; ``mad`` and ``std``
        use the pixel's values alone (astropy's ``mad_std`` and ``std``). ``minmax`` drops the
        ``nlow`` lowest and ``nhigh`` highest values; ``pclip`` drops values outside the
        percentiles ``pclip``; ``winsorized`` clips with a winsorized spread; ``ccdclip``
        clips against the noise expected from ``gain`` (e-/ADU), ``read_noise`` (e-) and
        ``snoise``.
    sigma_low, sigma_high : float
        Clipping thresholds below and above the centre, in units of the spread.
    maxiters : int
        Maximum clipping passes (0: until nothing more is rejected).
    nkeep : int
        Never keep fewer than this many values at a pixel (rejected values closest to the
        centre come back first).
    scale : {'median', 'mean', 'mode', 'exptime'} or array, optional
        Multiplicative scaling: input ``i`` is divided by ``s_i / mean(s)``, so the result keeps
        the inputs' average level. Statistics come from ``stat_section`` when given
        (FITS ``[x1:x2,y1:y2]``, 1-based) or from rows spread over the image.
    zero : {'median', 'mean', 'mode'} or array, optional
        Additive offsets, measured after scaling: ``z_i - mean(z)`` is subtracted from input i.
    weights : sequence of float, optional
        Per-input weights for ``mean``.
    memory_limit : int
        Bytes the working set (block buffers and outputs) may use.
    rejection_map : bool
        Also return which input value was rejected at each pixel.
    dtype : numpy dtype
        Output data type (float32 by default; float64 when asked).
    rows : (start, stop), optional
        Combine only these rows (0-based, stop exclusive) and return a band of that height.
        Scale and zero statistics still come from the whole inputs, so bands of a stack put
        together are bit for bit the full combine; this is how a cluster splits one master.
    progress : callable, optional
        Called as ``progress(rows_done, rows_total)`` after each block.

    Returns
    -------
    CombineResult
        The combined frame (data, variance, NO_DATA flags), counts, optional rejection map.

    Notes
    -----
    The variance is propagated from the inputs when every input carries one; otherwise it is
    estimated from the scatter of the values kept: ``s^2/n`` for the mean and
    ``(pi/2) s^2/n`` for the median (the median's efficiency for Gaussian data).
    """
    items = list(inputs)
    _validate(len(items), method, reject, centre, spread, sigma_low, sigma_high, nlow, nhigh,
              tuple(pclip), nkeep, gain, read_noise, memory_limit)
    if weights is not None:
        weights_arr = np.asarray(weights, dtype=np.float64).ravel()
        if weights_arr.size != len(items) or not np.all(weights_arr > 0):
            raise ValueError(f"weights must be {len(items)} positive numbers, got {weights}")
    else:
        weights_arr = np.ones(len(items), np.float64)
    sources = [_as_source(item) for item in items]
    try:
        band = _band(rows, sources[0].shape)
        return _combine_sources(sources, METHODS[method], REJECTIONS[reject], CENTRES[centre],
                                SPREADS[spread], sigma_low, sigma_high, maxiters, nlow, nhigh,
                                pclip, nkeep, gain, read_noise, snoise, scale, zero,
                                weights_arr, stat_section, memory_limit, rejection_map, dtype,
                                band, progress, method, reject)
    finally:
        for source, item in zip(sources, items, strict=True):
            if isinstance(item, (str, Path)):
                source.close()


def _band(rows: tuple[int, int] | None, shape: tuple[int, int]) -> tuple[int, int]:
    if rows is None:
        return 0, shape[0]
    start, stop = (int(r) for r in rows)
    if not 0 <= start < stop <= shape[0]:
        raise ValueError(f"rows must satisfy 0 <= start < stop <= {shape[0]}, got {rows}")
    return start, stop


def _combine_sources(sources, method_code, reject_code, centre_code, spread_code, sigma_low,
                     sigma_high, maxiters, nlow, nhigh, pclip, nkeep, gain, read_noise, snoise,
                     scale, zero, weights, stat_section, memory_limit, rejection_map, dtype,
                     band, progress, method, reject) -> CombineResult:
    shape = sources[0].shape
    for source in sources[1:]:
        if source.shape != shape:
            raise ValueError(f"cannot combine {source.name} ({source.shape[1]}x{source.shape[0]})"
                             f" with {sources[0].name} ({shape[1]}x{shape[0]}): shapes differ")
    n = len(sources)
    scale_values = _factors(sources, scale, stat_section, "scale")
    scales = (np.ones(n) if scale_values is None else scale_values / scale_values.mean())
    if np.any(scales <= 0):
        raise ValueError(f"scale factors must be positive, got {scale_values}")
    zeros = np.zeros(n)
    if zero is not None:
        if isinstance(zero, str):
            if zero not in ("median", "mean", "mode"):
                raise ValueError(f"zero must be 'median', 'mean', 'mode' or an array, got {zero!r}")
            zvals = np.array([_statistic(_sample(s, stat_section) / scales[i], zero)
                              for i, s in enumerate(sources)])
        else:
            zvals = np.asarray(zero, dtype=np.float64).ravel()
            if zvals.size != n:
                raise ValueError(f"zero has {zvals.size} values for {n} inputs")
        zeros = zvals - zvals.mean()
    has_variance = all(s.read_variance_rows(0, 1) is not None for s in sources)
    first, last = band
    rows, cols = last - first, shape[1]
    readers = min(n, numba.get_num_threads())
    block_rows = rows_per_block(n, (rows, cols), memory_limit, with_variance=has_variance,
                                with_map=rejection_map, readers=readers)
    value = np.empty((rows, cols), dtype)
    variance = np.empty((rows, cols), dtype)
    count = np.empty((rows, cols), np.int16)
    rejected = np.zeros((n, rows, cols), np.uint8) if rejection_map else None
    stack = np.empty((n, block_rows, cols), np.float32)
    var_stack = np.empty((n, block_rows, cols) if has_variance else (0, 0, 0), np.float32)
    empty_map = np.zeros((0, 0, 0), np.uint8)
    inv_scales = (1.0 / scales).astype(np.float32)
    pooled = reject_code == _k.REJECT_SIGCLIP and spread_code == _k.SPREAD_POOLED
    median_mad_var = _median_mad_variance(n) if pooled else np.ones(n + 1)
    pairs = _k.sorting_network(n) if n <= _k.NETWORK_MAX else np.zeros((0, 2), np.int64)
    # Reads and conversions release the GIL: the inputs are read by several threads at once.
    with ThreadPoolExecutor(readers) as pool:
        for start in range(0, rows, block_rows):
            stop = min(rows, start + block_rows)
            nb = stop - start

            def load(i: int, start: int = start, stop: int = stop) -> None:
                _read_rows(sources[i], first + start, first + stop, stack[i], var_stack,
                           i, None if scale_values is None else inv_scales[i], zeros[i])

            list(pool.map(load, range(n)))
            _k.combine_block(stack[:, :nb], var_stack[:, :nb] if has_variance else var_stack,
                             weights, pairs, method_code, reject_code, centre_code, spread_code,
                             float(sigma_low), float(sigma_high), int(maxiters), int(nlow),
                             int(nhigh), float(pclip[0]), float(pclip[1]), int(nkeep), float(gain),
                             float(read_noise), float(snoise), median_mad_var, value[start:stop],
                             variance[start:stop], count[start:stop],
                             rejected[:, start:stop] if rejected is not None else empty_map)
            if progress is not None:
                progress(stop, rows)
    dq = np.where(count == 0, np.uint16(Flag.NO_DATA), np.uint16(0))
    header = fits.Header()
    header["NCOMBINE"] = (n, "number of frames combined")
    header["COMBMETH"] = (method, "combine estimator")
    header["REJECT"] = (reject, "rejection method")
    names = tuple(s.name for s in sources)
    frame = Frame(value, variance=variance, dq=dq, header=header)
    return CombineResult(frame=frame, count=count, rejected=rejected, scales=scales,
                         zeros=zeros, names=names)


def _read_rows(source: RowSource, start: int, stop: int, values: np.ndarray,
               var_stack: np.ndarray, index: int, inv_scale: float | None, zero: float) -> None:
    """Put rows ``start:stop`` of ``source``, divided by its scale, less its zero offset.

    The values go to ``values``; the variance to ``var_stack[index]`` when that holds any.
    """
    rows = stop - start
    values[:rows] = source.read_rows(start, stop)
    if inv_scale is not None:
        values[:rows] *= inv_scale
    if zero != 0.0:
        values[:rows] -= np.float32(zero)
    if var_stack.shape[0] > 0:
        var_stack[index, :rows] = source.read_variance_rows(start, stop)
        if inv_scale is not None:
            var_stack[index, :rows] *= inv_scale ** 2


@functools.cache
def _median_mad_variance(n: int) -> np.ndarray:
    """Median of ``(1.4826 MAD)^2`` for k = 0..n unit Gaussian values (Monte Carlo, seeded).

    Small samples' MAD spread is biased low in the median; dividing by this makes the pooled
    spread unbiased. Beyond 64 values the bias is under 1 per cent and taken as 1.
    """
    rng = np.random.default_rng(12345)
    out = np.ones(n + 1)
    for k in range(2, min(n, 64) + 1):
        draws = rng.standard_normal((20_000, k))
        med = np.median(draws, axis=1, keepdims=True)
        mad = _k.MAD_TO_SIGMA * np.median(np.abs(draws - med), axis=1)
        out[k] = np.median(mad**2)
    return out


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


