"""Master frames (combined stacks of calibration frames) and the defects found in them.

The steps here know nothing of frame kinds: `combine_calibrated` combines raw frames each
calibrated on the fly (bias, its own dark), `finish_dark` and `finish_flat` finish a stack into a
master, `find_hot_pixels` and `find_dead_pixels` flag defects. `make_master_bias`,
`make_master_dark` and `make_master_flat` put them together for use on frames at hand; the night
pipeline composes the same steps from its recipe table (`ccdred.pipeline.recipes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
from astropy.io import fits

from ..flags import Flag, flagged
from ..frame import Frame, set_card
from ..kernels.defects import find_dead, find_hot
from ..kernels.mosaic import plane_slices
from ..stacking import CombineOptions, CombineResult, RowSource, as_source, combine
from .stream import CalibratedRows

__all__ = ["CombineOptions", "make_master_bias", "make_master_dark", "make_master_flat",
           "combine_calibrated", "finish_dark", "finish_flat", "stack_bands",
           "find_hot_pixels", "find_dead_pixels", "master_header", "CFA_FLAT_SCALINGS"]


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
        whose headers give BIASSEC/TRIMSEC (see `ccdred.geometry`); None: neither.
    """
    return combine_calibrated(inputs, options=options, saturation=saturation,
                              overscan=overscan)


def make_master_dark(inputs: Sequence[object], *, bias: Frame | None = None,
                     options: CombineOptions = CombineOptions(),
                     saturation: float | None = None, overscan: str | None = None
                     ) -> CombineResult:
    """Combine dark frames of one exposure time into a master dark.

    With a master ``bias``, each dark is bias-subtracted first, so the master holds dark
    current alone and can be scaled to other exposure times.
    """
    result = combine_calibrated(inputs, bias=bias, options=options, saturation=saturation,
                                overscan=overscan)
    return finish_dark(result, bias=bias, saturation=saturation)


def make_master_flat(inputs: Sequence[object], *, bias: Frame | None = None,
                     darks: Sequence[tuple[Frame, float] | None] | None = None,
                     options: CombineOptions = CombineOptions(),
                     saturation: float | None = None, min_flat: float = 0.1,
                     overscan: str | None = None, cfa: str | None = None,
                     cfa_scaling: str = "separate") -> CombineResult:
    """Combine flats of one filter into a master flat normalised to mean 1 over good pixels.

    Each flat has the bias and its *own* dark (``darks[i] = (master_dark, scale)``, or None)
    removed *before* it is normalised by its median; then the flats are combined (rejecting
    outliers such as cosmic rays), and the result is divided by its mean over good pixels.
    Pixels whose response is below ``min_flat`` are flagged LOW_FLAT.
    """
    scaled = options if options.scale is not None else options.replace(scale="median")
    result = combine_calibrated(inputs, bias=bias, darks=darks, options=scaled,
                                saturation=saturation, overscan=overscan)
    return finish_flat(result, min_flat=min_flat, cfa=cfa, scaling=cfa_scaling)


def combine_calibrated(inputs: Sequence[object], *, bias: Frame | None = None,
                       darks: Sequence[tuple[Frame, float] | None] | None = None,
                       options: CombineOptions = CombineOptions(),
                       saturation: float | None = None, overscan: str | None = None,
                       rows: tuple[int, int] | None = None) -> CombineResult:
    """Combine raw frames, each calibrated on the fly (`CalibratedRows`) as it is read.

    Each input has its saturated values left out, its overscan subtracted and trimmed (with an
    ``overscan`` model), the master ``bias`` subtracted, then its own dark
    (``darks[i] = (master_dark, scale)``, or None). With ``rows=(start, stop)`` only that band
    is combined (see `ccdred.combine`), so a cluster can combine one master in row-band tasks
    and put them together with `stack_bands`.
    """
    if darks is not None and len(darks) != len(inputs):
        raise ValueError(f"{len(darks)} darks given for {len(inputs)} frames")
    sources = []
    for i, item in enumerate(inputs):
        subtract: list[tuple[Frame, float]] = [] if bias is None else [(bias, 1.0)]
        if darks is not None and darks[i] is not None:
            subtract.append(darks[i])
        sources.append(_source(item, subtract, saturation, overscan))
    try:
        return combine(sources, options.for_stack(len(sources)), rows=rows)
    finally:
        for source in sources:
            if isinstance(source, CalibratedRows):
                source.close()


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


def finish_dark(result: CombineResult, *, bias: Frame | None = None,
                saturation: float | None = None) -> CombineResult:
    """Finish a combined stack of darks into a master dark.

    A pixel with no value left saturated in every raw dark (they are integers), so it keeps a
    lower bound, ``saturation - bias``, flagged SATURATED rather than NO_DATA.
    """
    if saturation is None:
        return result
    frame = result.frame
    all_saturated = result.count == 0
    floor = np.float32(saturation) - (bias.data if bias is not None else np.float32(0.0))
    data = np.where(all_saturated, floor, frame.data)
    dq = np.where(all_saturated, np.uint16(Flag.SATURATED), frame.dq)
    return replace(result, frame=frame.replace(data=data, dq=dq))


CFA_FLAT_SCALINGS = ("separate", "global")
"""How a colour flat is normalised: each colour plane to mean 1 (``separate``, the default: the
frame keeps its own colour balance, as PixInsight's WBPP and Siril's CFA equalisation do), or
over all pixels (``global``: the flat source's colour is divided into every frame)."""


def finish_flat(result: CombineResult, *, min_flat: float = 0.1, cfa: str | None = None,
                scaling: str = "separate") -> CombineResult:
    """Finish a combined stack of flats into a master flat: mean 1 over good pixels.

    LOW_FLAT below ``min_flat``; ``FLATLVL`` says the raw level one unit stands for (and, for
    a colour flat normalised per plane, ``FLATLVn`` each plane's). With a Bayer ``cfa`` and
    ``scaling='separate'`` each colour plane is normalised to mean 1 on its own.

    Raises
    ------
    ValueError
        No positive signal is left (the flats are not exposed, or over-subtracted).
    """
    if scaling not in CFA_FLAT_SCALINGS:
        raise ValueError(f"scaling must be one of {CFA_FLAT_SCALINGS}, got {scaling!r}")
    frame = result.frame
    separate = bool(cfa) and scaling == "separate"
    parts = plane_slices(cfa if separate else None)
    levels = [_mean_level(frame.data[part], result) for part in parts]
    normalised = _scaled(frame, parts, levels)
    normalised = normalised.with_flags(~(normalised.data >= min_flat), Flag.LOW_FLAT)
    # Renormalise to mean 1 over the pixels that are still good.
    usable = ~normalised.bad
    means = [float(np.mean(normalised.data[part][usable[part]], dtype=np.float64))
             for part in parts]
    normalised = _scaled(normalised, parts, means)
    # The raw level (ADU) one unit of the flat stands for: to model its noise when the
    # stack is too small to measure it.
    raw = [float(np.median(result.scales)) * level * mean
           for level, mean in zip(levels, means, strict=True)]
    cards = {"FLATLVL": (round(float(np.mean(raw)), 3), "[adu] raw level of a flat value of 1")}
    if separate:
        cards["CFASCALE"] = ("separate", "colour planes normalised to 1 each")
        for n, value in enumerate(raw, start=1):
            cards[f"FLATLV{n}"] = (round(value, 3), f"[adu] raw level of 1 in colour plane {n}")
    elif cfa:
        cards["CFASCALE"] = ("global", "normalised to 1 over all colour planes")
    return replace(result, frame=normalised.with_header(cards))


def _mean_level(values: np.ndarray, result: CombineResult) -> float:
    good = np.isfinite(values)
    level = float(np.mean(values[good], dtype=np.float64)) if good.any() else np.nan
    if not np.isfinite(level) or level <= 0:
        names = ", ".join(result.names)
        raise ValueError(f"flats {names}: no positive signal after bias/dark subtraction "
                         f"(mean level {level:.3g})")
    return level


def _scaled(frame: Frame, parts: list[tuple[slice, slice]], levels: list[float]) -> Frame:
    """Divide each part (a colour plane, or the whole frame) by its level."""
    if len(parts) == 1:
        return frame * (1.0 / levels[0])
    factors = np.empty(frame.shape, np.float32)
    for part, level in zip(parts, levels, strict=True):
        factors[part] = np.float32(1.0 / level)
    variance = None if frame.variance is None else frame.variance * factors * factors
    return frame.replace(data=frame.data * factors, variance=variance)


def _source(item: object, subtract: list[tuple[Frame, float]], saturation: float | None,
            overscan: str | None) -> object:
    if not subtract and saturation is None and overscan is None:
        return item
    source = item if isinstance(item, RowSource) else as_source(item)
    return CalibratedRows(source, subtract=tuple(subtract), saturation=saturation,
                          overscan=overscan)


def find_hot_pixels(dark: Frame, *, k: float = 5.0, cfa: str | None = None) -> Frame:
    """Flag HOT the pixels of a master dark ``k`` local sigmas above their local level.

    The local level is the 5x5 median of pixels of the same colour (`ccdred.kernels.defects`),
    so a smooth amp glow is never flagged. Pixels that saturated in the darks are hot too.
    """
    saturated = flagged(dark.dq, Flag.SATURATED)
    hot = find_hot(dark.data, k=k, exclude=dark.bad, cfa=cfa) | saturated
    return dark.with_flags(hot, Flag.HOT)


def find_dead_pixels(flat: Frame, *, k: float = 5.0, box: int = 5, cfa: str | None = None
                     ) -> Frame:
    """Flag DEAD the pixels of a master flat ``k`` sigma below their local response.

    The local response is the median of a ``box`` of pixels of the same colour. Pixels
    already flagged LOW_FLAT are candidates too (a fully dead pixel is both); only pixels
    without data are left out.
    """
    no_data = flagged(flat.dq, Flag.NO_DATA)
    dead = find_dead(flat.data, k=k, box=box, exclude=no_data, cfa=cfa)
    return flat.with_flags(dead, Flag.DEAD)
