"""`combine`: a stack of frames or files into one, row blocks streamed through compiled kernels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
from astropy.io import fits

from ..flags import Flag
from ..frame import Frame
from ..kernels import combine as _k
from ..kernels.reject import median_mad_variance
from .options import CENTRES, METHODS, REJECTIONS, SPREADS, CombineOptions
from .scaling import input_scales, input_zeros
from .sources import FileSource, RowSource, as_source

__all__ = ["combine", "CombineResult", "rows_per_block"]

#: Bytes of one block of the stack (values, and variances when the inputs carry them). Blocks
#: of a few MiB stay in the processor's caches between reading and combining and let reading
#: the next block overlap combining this one; a larger block is no faster.
BLOCK_BYTES = 16 * 2**20


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


def combine(inputs: Sequence[object], options: CombineOptions | None = None, *,
            weights: Sequence[float] | None = None, rejection_map: bool = False,
            dtype: type = np.float32, rows: tuple[int, int] | None = None,
            progress: Callable[[int, int], None] | None = None, **settings: object
            ) -> CombineResult:
    """Combine frames pixel by pixel, with rejection, scaling and weights.

    Parameters
    ----------
    inputs : sequence of path, Frame or RowSource
        What to combine; all the same shape. Files are each opened once and streamed.
    options : CombineOptions, optional
        Estimator, rejection, scaling and memory limit; `CombineOptions()` by default: a mean
        after sigma clipping with the pooled spread.
    weights : sequence of float, optional
        Per-input weights for ``mean``.
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
    **settings
        Any `CombineOptions` field (``method="median"``, ``reject="none"``...), overriding
        ``options``.

    Returns
    -------
    CombineResult
        The combined frame (data, variance, NO_DATA flags), counts, optional rejection map.

    Notes
    -----
    ``reject='sigclip'`` uses ``centre``/``spread``: by default the median and the ``pooled``
    spread, the larger of the pixel's own MAD spread and the noise pooled over its 32-column
    segment of the row (like IRAF's avsigclip), which rejects an outlier even among 3 values
    without rejecting good ones by chance; ``mad`` and ``std`` use the pixel's values alone
    (astropy's ``mad_std`` and ``std``). ``minmax`` drops the ``nlow`` lowest and ``nhigh``
    highest values; ``pclip`` drops values outside the percentiles ``pclip``; ``winsorized``
    clips with a winsorized spread; ``ccdclip`` clips against the noise expected from
    ``gain``, ``read_noise`` and ``snoise``. Scaling divides input ``i`` by ``s_i / mean(s)``,
    so the result keeps the inputs' average level; zero offsets ``z_i - mean(z)`` are measured
    after scaling.

    The variance is propagated from the inputs when every input carries one; otherwise it is
    estimated from the scatter of the values kept: ``s^2/n`` for the mean and
    ``(pi/2) s^2/n`` for the median (the median's efficiency for Gaussian data).
    """
    opts = (options or CombineOptions()).replace(**settings) if settings else (
        options or CombineOptions())
    items = list(inputs)
    _validate_stack(items, opts)
    weights_arr = _weights(weights, len(items))
    sources = [as_source(item) for item in items]
    try:
        band = _band(rows, sources[0].shape)
        return _combine_sources(sources, opts, weights_arr, rejection_map, dtype, band,
                                progress)
    finally:
        for source in sources:
            if isinstance(source, FileSource):
                source.close()


def _validate_stack(items: Sequence[object], options: CombineOptions) -> None:
    n = len(items)
    if n == 0:
        raise ValueError("nothing to combine: no inputs given")
    if options.reject == "minmax" and options.nlow + options.nhigh >= n:
        raise ValueError(f"minmax rejection of nlow={options.nlow} + nhigh={options.nhigh} "
                         f"values leaves nothing of {n} inputs")
    for name in ("scale", "zero"):
        value = getattr(options, name)
        if isinstance(value, tuple) and len(value) != n:
            raise ValueError(f"{name} has {len(value)} values for {n} inputs")


def _weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n, np.float64)
    values = np.asarray(weights, dtype=np.float64).ravel()
    if values.size != n or not np.all(values > 0):
        raise ValueError(f"weights must be {n} positive numbers, got {weights}")
    return values


def _band(rows: tuple[int, int] | None, shape: tuple[int, int]) -> tuple[int, int]:
    if rows is None:
        return 0, shape[0]
    start, stop = (int(r) for r in rows)
    if not 0 <= start < stop <= shape[0]:
        raise ValueError(f"rows must satisfy 0 <= start < stop <= {shape[0]}, got {rows}")
    return start, stop


def rows_per_block(n_inputs: int, shape: tuple[int, int], memory_limit: int, *,
                   with_variance: bool = False, with_map: bool = False, readers: int = 1,
                   double_buffered: bool = False) -> int:
    """Rows per block so that the block buffers and the full outputs fit in ``memory_limit``.

    ``readers`` is how many inputs are read at once, each with a frame block in flight;
    ``double_buffered``: a second stack block is filled while the first is combined.
    """
    rows, cols = shape
    outputs = rows * cols * (4 + 4 + 2) + (n_inputs * rows * cols if with_map else 0)
    per_value = 4 + (4 if with_variance else 0)
    stacks = 2 if double_buffered else 1
    per_row = cols * (stacks * n_inputs * per_value + 2 * readers * per_value)
    budget = memory_limit - outputs
    if budget < per_row:
        raise ValueError(
            f"memory_limit of {memory_limit / 2**20:.1f} MiB is too small for {n_inputs} frames of "
            f"{cols}x{rows}: at least {(outputs + per_row) / 2**20:.1f} MiB is needed")
    return int(min(rows, budget // per_row))


def _block_rows(n: int, shape: tuple[int, int], options: CombineOptions, has_variance: bool,
                rejection_map: bool, readers: int) -> int:
    """Rows per block: `BLOCK_BYTES` of stack, fewer when the memory limit asks for it."""
    fitting = rows_per_block(n, shape, int(options.memory_limit), with_variance=has_variance,
                             with_map=rejection_map, readers=readers, double_buffered=True)
    per_row = n * shape[1] * (8 if has_variance else 4)
    return max(1, min(fitting, BLOCK_BYTES // per_row))


def _check_shapes(sources: Sequence[RowSource]) -> tuple[int, int]:
    shape = sources[0].shape
    for source in sources[1:]:
        if source.shape != shape:
            raise ValueError(f"cannot combine {source.name} ({source.shape[1]}x{source.shape[0]})"
                             f" with {sources[0].name} ({shape[1]}x{shape[0]}): shapes differ")
    return shape


@dataclass
class _Outputs:
    """The combined band being filled, block by block."""

    value: np.ndarray
    variance: np.ndarray
    count: np.ndarray
    rejected: np.ndarray | None

    @classmethod
    def empty(cls, n: int, rows: int, cols: int, dtype: type, rejection_map: bool) -> _Outputs:
        return cls(np.empty((rows, cols), dtype), np.empty((rows, cols), dtype),
                   np.empty((rows, cols), np.int16),
                   np.zeros((n, rows, cols), np.uint8) if rejection_map else None)


class _StackBuffer:
    """One block of the stack (values and variances), filled by reader threads.

    Each block is a C-contiguous view of the buffer's memory, the last and shorter one too:
    a slice of a taller block would not be, and the compiled kernel would be loaded (or, the
    first time, compiled) a second time for that layout.
    """

    def __init__(self, n: int, rows: int, cols: int, has_variance: bool) -> None:
        self._shape = (n, rows, cols)
        self._values = np.empty(n * rows * cols, np.float32)
        self._variance = np.empty(n * rows * cols if has_variance else 0, np.float32)
        self.values, self.variance = self._block(rows)
        self.pending: list[Future] = []

    def _block(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the values and variances of a block of ``rows`` rows, C-contiguous."""
        n, _, cols = self._shape
        size = n * rows * cols
        return (self._values[:size].reshape(n, rows, cols),
                self._variance[:size].reshape(n, rows, cols) if self._variance.size
                else np.empty((0, 0, 0), np.float32))

    def fill(self, pool: ThreadPoolExecutor, readers: int, sources: Sequence[RowSource],
             start: int, stop: int, inv_scales: np.ndarray | None, zeros: np.ndarray) -> None:
        """Start reading rows ``start:stop`` of every input into this buffer.

        Each of the ``readers`` tasks reads every ``readers``-th input: one task per reader
        thread, not one per input, which costs the main thread a future and a wait for each.
        A task stops at its first failed read and returns it with the input's index.
        """
        values, variance = self._block(stop - start)
        self.values, self.variance = values, variance

        def read_share(first: int) -> tuple[int, Exception] | None:
            for i in range(first, len(sources), readers):
                try:
                    _read_rows(sources[i], start, stop, values[i], variance, i,
                               None if inv_scales is None else inv_scales[i], zeros[i])
                except Exception as err:  # raised by `ready`, in the inputs' order
                    return i, err
            return None

        self.pending = [pool.submit(read_share, first) for first in range(readers)]

    def ready(self) -> tuple[np.ndarray, np.ndarray]:
        """Wait for the reads; return the filled values and variances.

        A failed read raises here: the first input's failure when several failed.
        """
        failures = [failed for future in self.pending if (failed := future.result())]
        if failures:
            raise min(failures, key=lambda failed: failed[0])[1]
        return self.values, self.variance


def _combine_sources(sources: Sequence[RowSource], options: CombineOptions,
                     weights: np.ndarray, rejection_map: bool, dtype: type,
                     band: tuple[int, int], progress: Callable[[int, int], None] | None
                     ) -> CombineResult:
    cols = _check_shapes(sources)[1]
    n = len(sources)
    scale_values = input_scales(sources, options)
    scales = np.ones(n) if scale_values is None else scale_values / scale_values.mean()
    zeros = input_zeros(sources, options, scales)
    has_variance = all(s.read_variance_rows(0, 1) is not None for s in sources)
    first, last = band
    readers = min(n, numba.get_num_threads())
    block_rows = _block_rows(n, (last - first, cols), options, has_variance, rejection_map,
                             readers)
    out = _Outputs.empty(n, last - first, cols, dtype, rejection_map)
    inv_scales = None if scale_values is None else (1.0 / scales).astype(np.float32)
    kernel = _BlockKernel.make(options, n, weights)
    starts = list(range(first, last, block_rows))
    buffers = [_StackBuffer(n, block_rows, cols, has_variance)
               for _ in range(min(2, len(starts)))]
    # Reads release the GIL, and so does the kernel: the next block is read while this one
    # is combined, by several reader threads at once.
    with ThreadPoolExecutor(readers) as pool:
        buffers[0].fill(pool, readers, sources, first, min(last, first + block_rows), inv_scales,
                        zeros)
        for k, start in enumerate(starts):
            values, variance = buffers[k % 2].ready()
            if k + 1 < len(starts):
                following = starts[k + 1]
                buffers[(k + 1) % 2].fill(pool, readers, sources, following,
                                          min(last, following + block_rows), inv_scales, zeros)
            stop = start + values.shape[1]
            kernel.run(values, variance, out, start - first, stop - first)
            if progress is not None:
                progress(stop - first, last - first)
    return _result(out, options, sources, scales, zeros)


def _result(out: _Outputs, options: CombineOptions, sources: Sequence[RowSource],
            scales: np.ndarray, zeros: np.ndarray) -> CombineResult:
    dq = np.where(out.count == 0, np.uint16(Flag.NO_DATA), np.uint16(0))
    header = fits.Header()
    header["NCOMBINE"] = (len(sources), "number of frames combined")
    header["COMBMETH"] = (options.method, "combine estimator")
    header["REJECT"] = (options.reject, "rejection method")
    frame = Frame(out.value, variance=out.variance, dq=dq, header=header)
    return CombineResult(frame=frame, count=out.count, rejected=out.rejected, scales=scales,
                         zeros=zeros, names=tuple(s.name for s in sources))


@dataclass(frozen=True)
class _BlockKernel:
    """The compiled kernel's arguments that stay the same for every block."""

    options: CombineOptions
    weights: np.ndarray
    pairs: np.ndarray
    median_mad_var: np.ndarray

    @classmethod
    def make(cls, options: CombineOptions, n: int, weights: np.ndarray) -> _BlockKernel:
        pooled = options.reject == "sigclip" and options.spread == "pooled"
        return cls(options, weights,
                   _k.sorting_network(n) if n <= _k.NETWORK_MAX else np.zeros((0, 2), np.int64),
                   median_mad_variance(n) if pooled else np.ones(n + 1))

    def run(self, stack: np.ndarray, variance: np.ndarray, out: _Outputs, start: int,
            stop: int) -> None:
        o = self.options
        _k.combine_block(stack, variance, self.weights, self.pairs, METHODS[o.method],
                         REJECTIONS[o.reject], CENTRES[o.centre], SPREADS[o.spread],
                         float(o.sigma_low), float(o.sigma_high), int(o.maxiters), int(o.nlow),
                         int(o.nhigh), float(o.pclip[0]), float(o.pclip[1]), int(o.nkeep),
                         float(o.gain), float(o.read_noise), float(o.snoise),
                         self.median_mad_var, out.value[start:stop], out.variance[start:stop],
                         out.count[start:stop],
                         out.rejected[:, start:stop] if out.rejected is not None
                         else np.zeros((0, 0, 0), np.uint8))


def _read_rows(source: RowSource, start: int, stop: int, values: np.ndarray,
               var_stack: np.ndarray, index: int, inv_scale: float | None, zero: float) -> None:
    """Put rows ``start:stop`` of ``source``, divided by its scale, less its zero offset.

    The values go to ``values``; the variance to ``var_stack[index]`` when that holds any.
    """
    rows = stop - start
    read_into = getattr(source, "read_rows_into", None)
    if read_into is not None:
        read_into(start, stop, values[:rows])
    else:
        values[:rows] = source.read_rows(start, stop)
    if inv_scale is not None:
        values[:rows] *= inv_scale
    if zero != 0.0:
        values[:rows] -= np.float32(zero)
    if var_stack.shape[0] > 0:
        var_stack[index, :rows] = source.read_variance_rows(start, stop)
        if inv_scale is not None:
            var_stack[index, :rows] *= inv_scale ** 2
