"""Master bias, dark and flat frames, and the defects found in them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

import numpy as np
from astropy.io import fits

from ..combine import CalibratedRows, CombineResult, RowSource, clip_description, combine
from ..flags import Flag
from ..frame import Frame, set_card
from ..kernels.defects import find_dead, find_hot

__all__ = ["CombineOptions", "make_master_bias", "make_master_dark", "make_master_flat",
           "combine_master", "finish_master", "stack_bands", "find_hot_pixels",
           "find_dead_pixels", "master_header", "MASTER_KINDS"]

MASTER_KINDS = ("bias", "dark", "flat")


@dataclass(frozen=True)
class CombineOptions:
    """How to combine a stack of calibration frames (see `ccdred.combine`)."""

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
    memory_limit: int = 2 * 1024**3

    def kwargs(self) -> dict:
        """Keyword arguments for `ccdred.combine`."""
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


def _dates(headers: Sequence[fits.Header]) -> list[datetime]:
    stamps = []
    for header in headers:
        value = header.get("DATE-OBS")
        try:
            stamps.append(datetime.fromisoformat(str(value).strip()))
        except (TypeError, ValueError):
            continue
    return stamps


def _mean_date(stamps: Sequence[datetime]) -> str | None:
    if not stamps:
        return None
    base = stamps[0]
    try:
        offset = sum(((s - base).total_seconds() for s in stamps), 0.0) / len(stamps)
    except TypeError:  # naive and aware times mixed
        return None
    return (base + timedelta(seconds=offset)).isoformat(timespec="milliseconds")


_PER_FRAME = {"DATE-OBS", "DATE", "TIME-OBS", "UT", "UTC", "MJD-OBS", "JD", "EXPTIME",
              "EXPOSURE", "ITIME", "DARKTIME", "CCD-TEMP", "CCDTEMP", "FILENAME", "ORIGFILE",
              "HISTORY", "COMMENT", ""}


def master_header(headers: Sequence[fits.Header], names: Sequence[str], *, kind: str,
                  exptime: float | None, options: CombineOptions,
                  checksums: Sequence[str] | None = None) -> fits.Header:
    """Build a master's header from its inputs, not from the first input alone.

    Cards with the same value in every input are kept; DATE-OBS is the mean of the inputs',
    DATE-BEG and DATE-END the first and last;
    EXPTIME is the exposure the master represents; NCOMBINE, IMCMBnnn (input names) and
    IMSHAnnn (SHA-256 of each input) record where it came from.
    """
    out = fits.Header()
    first = headers[0] if headers else fits.Header()
    for card in first.cards:
        key = card.keyword
        if key in _PER_FRAME or key in out:
            continue
        try:
            if all(key in h and h[key] == card.value for h in headers[1:]):
                out.append(card)
        except (ValueError, KeyError):
            continue
    stamps = _dates(headers)
    mean_date = _mean_date(stamps)
    if mean_date:
        out["DATE-OBS"] = (mean_date, "mean start time of the combined frames")
        out["DATE-BEG"] = (min(stamps).isoformat(timespec="milliseconds"),
                           "start time of the first combined frame")
        out["DATE-END"] = (max(stamps).isoformat(timespec="milliseconds"),
                           "start time of the last combined frame")
    if exptime is not None:
        out["EXPTIME"] = (float(exptime), "[s] exposure time this master represents")
    out["IMAGETYP"] = (f"MASTER {kind.upper()}", "ccdred master calibration frame")
    out["NCOMBINE"] = (len(names), "number of frames combined")
    set_card(out, "COMBINE", (options.describe()[:68], "combine method and rejection"))
    for i, name in enumerate(names, start=1):
        if i > 999:
            break
        set_card(out, f"IMCMB{i:03d}", (str(name)[-68:], "input frame"))
        if checksums is not None:
            out[f"IMSHA{i:03d}"] = checksums[i - 1]
    return out


def _combine(inputs: Sequence[object], options: CombineOptions, **extra) -> CombineResult:
    kwargs = options.for_stack(len(inputs)).kwargs()
    kwargs.update(extra)
    try:
        return combine(inputs, **kwargs)
    finally:
        for item in inputs:
            if isinstance(item, CalibratedRows):
                item.close()


def make_master_bias(inputs: Sequence[object], *, options: CombineOptions = CombineOptions(),
                     saturation: float | None = None, overscan: str | None = None
                     ) -> CombineResult:
    """Combine bias frames into a master bias.

    Parameters
    ----------
    inputs : sequence of path, Frame or RowSource
        The bias frames.
    options : CombineOptions
        Estimator and rejection.
    saturation : float, optional
        Raw level at or above which values are left out.
    overscan : str, optional
        Overscan model (``median``, ``mean``, ``poly``) applied, with trimming, to inputs
        whose headers give BIASSEC/TRIMSEC (see `ccdred.steps.overscan`); None: neither.
    """
    return combine_master("bias", inputs, options=options, saturation=saturation,
                          overscan=overscan)


def make_master_dark(inputs: Sequence[object], *, bias: Frame | None = None,
                     options: CombineOptions = CombineOptions(),
                     saturation: float | None = None, overscan: str | None = None
                     ) -> CombineResult:
    """Combine dark frames of one exposure time into a master dark.

    With a master ``bias``, each dark is bias-subtracted first, so the master holds dark
    current alone and can be scaled to other exposure times.
    """
    result = combine_master("dark", inputs, bias=bias, options=options, saturation=saturation,
                            overscan=overscan)
    return finish_master("dark", result, bias=bias, saturation=saturation)


def make_master_flat(inputs: Sequence[object], *, bias: Frame | None = None,
                     darks: Sequence[tuple[Frame, float] | None] | None = None,
                     options: CombineOptions = CombineOptions(),
                     saturation: float | None = None, min_flat: float = 0.1,
                     overscan: str | None = None) -> CombineResult:
    """Combine flats of one filter into a master flat normalised to mean 1 over good pixels.

    Each flat has the bias and its *own* dark (``darks[i] = (master_dark, scale)``, or None)
    removed *before* it is normalised by its median; then the flats are combined (rejecting
    outliers such as cosmic rays), and the result is divided by its mean over good pixels.
    Pixels whose response is below ``min_flat`` are flagged LOW_FLAT.
    """
    result = combine_master("flat", inputs, bias=bias, darks=darks, options=options,
                            saturation=saturation, overscan=overscan)
    return finish_master("flat", result, min_flat=min_flat)


def combine_master(kind: str, inputs: Sequence[object], *, bias: Frame | None = None,
                   darks: Sequence[tuple[Frame, float] | None] | None = None,
                   options: CombineOptions = CombineOptions(), saturation: float | None = None,
                   overscan: str | None = None, rows: tuple[int, int] | None = None
                   ) -> CombineResult:
    """Combine a master's stack, before `finish_master`: the part that works row band by band.

    ``make_master_<kind>`` is ``finish_master(kind, combine_master(kind, ...))``. With
    ``rows=(start, stop)`` only that band is combined (see `ccdred.combine`), so a cluster can
    build one master in row-band tasks and put them together with `stack_bands`.
    """
    if kind not in MASTER_KINDS:
        raise ValueError(f"kind must be one of {MASTER_KINDS}, got {kind!r}")
    if darks is not None and len(darks) != len(inputs):
        raise ValueError(f"{len(darks)} darks given for {len(inputs)} flats")
    sources = []
    for i, item in enumerate(inputs):
        subtract: list[tuple[Frame, float]] = []
        if bias is not None and kind != "bias":
            subtract.append((bias, 1.0))
        if kind == "flat" and darks is not None and darks[i] is not None:
            subtract.append(darks[i])
        sources.append(_source(item, subtract, saturation, overscan))
    extra = {"scale": "median"} if kind == "flat" else {}
    return _combine(sources, options, rows=rows, **extra)


def stack_bands(bands: Sequence[CombineResult]) -> CombineResult:
    """Put row bands of one combine (in row order) back together into the full result."""
    if not bands:
        raise ValueError("no bands to stack")
    first = bands[0]
    frames = [b.frame for b in bands]
    frame = Frame(np.concatenate([f.data for f in frames]),
                  variance=np.concatenate([f.variance for f in frames]),
                  dq=np.concatenate([f.dq for f in frames]), header=first.frame.header)
    rejected = (None if first.rejected is None
                else np.concatenate([b.rejected for b in bands], axis=1))
    return replace(first, frame=frame, count=np.concatenate([b.count for b in bands]),
                   rejected=rejected)


def finish_master(kind: str, result: CombineResult, *, bias: Frame | None = None,
                  saturation: float | None = None, min_flat: float = 0.1) -> CombineResult:
    """Finish a combined stack into a master: what needs the whole image at once.

    Darks: a pixel with no value left saturated in every raw dark (they are integers), so it
    keeps a lower bound, ``saturation - bias``, flagged SATURATED rather than NO_DATA. Flats:
    normalised to mean 1 over good pixels, LOW_FLAT below ``min_flat``, and ``FLATLVL`` says
    the raw level one unit stands for. Biases are already finished.
    """
    if kind == "dark":
        return _finish_dark(result, bias, saturation)
    if kind == "flat":
        return _finish_flat(result, min_flat)
    return result


def _finish_dark(result: CombineResult, bias: Frame | None, saturation: float | None
                 ) -> CombineResult:
    if saturation is None:
        return result
    frame = result.frame
    all_saturated = result.count == 0
    floor = np.float32(saturation) - (bias.data if bias is not None else np.float32(0.0))
    data = np.where(all_saturated, floor, frame.data)
    dq = np.where(all_saturated, np.uint16(Flag.SATURATED), frame.dq)
    return replace(result, frame=frame.replace(data=data, dq=dq))


def _finish_flat(result: CombineResult, min_flat: float) -> CombineResult:
    frame = result.frame
    good = np.isfinite(frame.data)
    level = float(np.mean(frame.data[good], dtype=np.float64)) if good.any() else np.nan
    if not np.isfinite(level) or level <= 0:
        names = ", ".join(result.names)
        raise ValueError(f"flats {names}: no positive signal after bias/dark subtraction "
                         f"(mean level {level:.3g})")
    normalised = frame * (1.0 / level)
    low = ~(normalised.data >= min_flat)
    normalised = normalised.with_flags(low, Flag.LOW_FLAT)
    # Renormalise to mean 1 over the pixels that are still good.
    usable = ~normalised.bad
    mean = float(np.mean(normalised.data[usable], dtype=np.float64))
    normalised = normalised * (1.0 / mean)
    # The raw level (ADU) one unit of the flat stands for: to model its noise when the
    # stack is too small to measure it.
    level_adu = float(np.median(result.scales)) * level * mean
    normalised = normalised.with_header({"FLATLVL": (round(level_adu, 3),
                                                     "[adu] raw level of a flat value of 1")})
    return replace(result, frame=normalised)


def _source(item: object, subtract, saturation: float | None, overscan: str | None) -> object:
    if not subtract and saturation is None and overscan is None:
        return item
    from ..combine import _as_source

    source = item if isinstance(item, RowSource) else _as_source(item)
    return CalibratedRows(source, subtract=tuple(subtract), saturation=saturation,
                          overscan=overscan)


def find_hot_pixels(dark: Frame, *, k: float = 5.0) -> Frame:
    """Flag HOT the pixels of a master dark above ``median + k sigma`` (sigma-clipped).

    Pixels that saturated in the darks are hot too.
    """
    saturated = (dark.dq & np.uint16(Flag.SATURATED)) != 0
    hot = find_hot(dark.data, k=k, exclude=dark.bad) | saturated
    return dark.with_flags(hot, Flag.HOT)


def find_dead_pixels(flat: Frame, *, k: float = 5.0, box: int = 5) -> Frame:
    """Flag DEAD the pixels of a master flat ``k`` sigma below their local response.

    Pixels already flagged LOW_FLAT are candidates too (a fully dead pixel is both); only
    pixels without data are left out.
    """
    no_data = (flat.dq & np.uint16(Flag.NO_DATA)) != 0
    dead = find_dead(flat.data, k=k, box=box, exclude=no_data)
    return flat.with_flags(dead, Flag.DEAD)
