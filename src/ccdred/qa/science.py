"""Checks of a reduced science frame: the notebook's questions about flat, defects and dark."""

from __future__ import annotations

import numpy as np

from ..flags import BAD, Flag
from ..frame import Frame
from ..kernels.stats import clipped_slope, robust_stats
from .maps import frame_cfa, local_noise, neighbours, relative_spread, relative_to_surroundings
from .masters import donut_regions
from .metric import Metric, judge

__all__ = ["flatness", "defect_residuals", "dark_residual", "negative_outliers", "flat_imprint",
           "science_checks", "adu_to_frame_units"]


def adu_to_frame_units(frame: Frame) -> float | None:
    """Return the factor from ADU to the frame's units (its ``BUNIT``).

    1 for ``adu`` (or no ``BUNIT``); the ``GAIN`` card (e-/ADU, the gain the frame was
    multiplied by) for ``electron``; None when the unit is unknown or the gain is missing.
    """
    unit = str(frame.header.get("BUNIT", "adu") or "adu").strip().lower()
    if unit == "adu":
        return 1.0
    if unit in ("electron", "electrons", "e-"):
        gain = frame.header.get("GAIN")
        if isinstance(gain, int | float) and not isinstance(gain, bool) and gain > 0:
            return float(gain)
    return None


def flatness(reduced: Frame, raw: Frame | None = None, *, blocks: int = 8,
             pass_below: float = 0.01, warn_below: float = 0.03) -> Metric:
    """Large-scale flatness of the background: relative spread (MAD) of block medians.

    A corrected sky is flat to a fraction of a per cent; vignetting or a wrong flat leaves
    several per cent. A field filled by a nebula or a galaxy is not flat either: the detail
    says so, and the raw frame's spread is given for comparison.
    """
    value = relative_spread(reduced, blocks)
    question = "Is the flat field properly corrected?"
    if not np.isfinite(value):
        return Metric("flatness", question, np.nan, "info", "needs a positive background",
                      "no positive background level to judge flatness by")
    verdict, threshold = judge(value, pass_below, warn_below)
    detail = f"block-median spread {value:.2%} of the background"
    if raw is not None:
        raw_value = relative_spread(raw, blocks)
        if np.isfinite(raw_value):
            detail += f" (raw frame: {raw_value:.2%})"
    if verdict != "pass":
        detail += "; a residual flat pattern, or extended emission filling the field"
    return Metric("flatness", question, value, verdict, threshold, detail)


def defect_residuals(frame: Frame, *, k: float = 5.0, pass_below: float = 0.01,
                     warn_below: float = 0.05) -> Metric:
    """Fraction of HOT/DEAD pixels still standing out from their neighbours by ``k`` sigma.

    A repaired or correctly calibrated defect looks like its neighbours; an unrepaired hot
    pixel does not. Sigma is the frame's pixel-to-pixel noise.
    """
    question = "Are hot and dead pixels identified and corrected?"
    defective = frame.has(Flag.HOT | Flag.DEAD)
    repaired = defective & frame.has(Flag.REPAIRED)
    # A repaired pixel holds its neighbours' median by construction, and a saturated one has
    # no measurement: only the others can show a defect left uncorrected.
    unmeasured = frame.has(BAD & ~(Flag.HOT | Flag.DEAD))
    candidates = defective & ~repaired & ~unmeasured & np.isfinite(frame.data)
    around = neighbours(frame.data, frame.bad | defective, frame_cfa(frame))
    sky = robust_stats(frame.data, exclude=frame.bad)
    noise_level = local_noise(frame)
    # On a star, neighbours do not predict a pixel: judge defects on the sky only.
    defects = candidates & (around < sky.median + 10 * noise_level)
    if not defects.any():
        return Metric("defects", question, 0.0, "pass", "no unrepaired defect on the sky",
                      f"{int(defective.sum())} hot or dead pixels flagged, "
                      f"{int(repaired.sum())} repaired")
    noise = np.full(int(defects.sum()), noise_level)
    if frame.variance is not None:
        noise = np.fmax(noise, np.sqrt(np.maximum(frame.variance[defects], 0)))
    off = np.abs(frame.data[defects] - around[defects]) > k * noise
    value = float(off.mean())
    verdict, threshold = judge(value, pass_below, warn_below)
    return Metric("defects", question, value, verdict, threshold,
                  f"{int(off.sum())} of {int(defects.sum())} unrepaired defects on the sky "
                  f"differ from their neighbours by more than {k:g} sigma "
                  f"({int(repaired.sum())} repaired)")


def dark_residual(reduced: Frame, dark: Frame, *, scale: float = 1.0, flat: Frame | None = None,
                  snr: float = 10.0, min_pixels: int = 20, pass_below: float = 0.1,
                  warn_below: float = 0.3) -> Metric:
    """How much of the (scaled) master dark is left in a reduced frame, where the dark is strong.

    At pixels whose dark signal is ``snr`` times its own noise (hot and warm pixels), the
    frame's excess over its neighbours is fitted by the dark's (divided by the flat, as the
    frame was): 0 means the dark was subtracted exactly, 1 that it was not subtracted at all,
    -1 that it was subtracted twice. Repaired pixels hold no measurement; when every strong
    dark pixel was repaired, there is nothing left to check (verdict ``info``).
    """
    question = "Is the dark current correctly subtracted?"
    pattern = dark.data * np.float32(scale)
    noise = None if dark.variance is None else np.sqrt(np.maximum(dark.variance, 0)) * scale
    if flat is not None:
        response = np.where(flat.data > 0, flat.data, np.float32(np.nan))
        pattern = pattern / response
        noise = None if noise is None else noise / response
    unusable = reduced.has((BAD & ~Flag.HOT) | Flag.REPAIRED)
    unusable |= ~np.isfinite(pattern) | ~np.isfinite(reduced.data)
    pattern_background = neighbours(pattern, unusable | dark.has(Flag.HOT), frame_cfa(dark))
    excess_dark = pattern - pattern_background
    if noise is None:
        noise = np.full(pattern.shape, local_noise(dark.replace(data=pattern)))
    strong = ~unusable & (excess_dark > snr * noise)
    if strong.sum() < min_pixels:
        return Metric("dark residual", question, np.nan, "info",
                      f"needs {min_pixels} unrepaired pixels with a strong dark",
                      f"{int(strong.sum())} usable pixels with a strong dark (the others were "
                      f"repaired); reduce with --no-repair to check the dark subtraction")
    frame_background = neighbours(reduced.data, unusable | strong, frame_cfa(reduced))
    y = (reduced.data - frame_background)[strong]
    weight = None if reduced.variance is None else 1 / np.maximum(reduced.variance[strong], 1e-12)
    slope = clipped_slope(excess_dark[strong], y, weight)
    verdict, threshold = judge(abs(slope.value), pass_below, warn_below)
    sign = "left in the frame" if slope.value > 0 else "over-subtracted"
    return Metric("dark residual", question, slope.value, verdict, f"|value| {threshold}",
                  f"{abs(slope.value):.1%} of the dark {sign} (+/- {slope.error:.1%}), from "
                  f"{int(strong.sum())} pixels with a strong dark")


def negative_outliers(reduced: Frame, *, k: float = 5.0, pass_below: float = 1e-4,
                      warn_below: float = 1e-3) -> Metric:
    """Fraction of pixels more than ``k`` sigma (their own) below the background.

    Noise alone puts 3e-7 of pixels there; an over-subtracted dark leaves holes at its hot
    pixels (unless they were repaired).
    """
    question = "Is the dark current correctly subtracted (no holes)?"
    # Unrepaired hot pixels are where an over-subtracted dark digs its holes.
    good = ~reduced.has((BAD & ~Flag.HOT) | Flag.REPAIRED) & np.isfinite(
        reduced.data)
    stats = robust_stats(reduced.data, exclude=~good)
    noise = np.full(reduced.shape, local_noise(reduced), np.float32)[good]
    if reduced.variance is not None:
        noise = np.fmax(noise, np.sqrt(np.maximum(reduced.variance[good], 0)))
    low = reduced.data[good] < stats.median - k * noise
    value = float(low.mean()) if good.any() else np.nan
    verdict, threshold = judge(value, pass_below, warn_below)
    return Metric("negative outliers", question, value, verdict, threshold,
                  f"{int(low.sum())} pixels below background - {k:g} sigma")


def flat_imprint(reduced: Frame, flat: Frame, *, pass_below: float = 0.2,
                 warn_below: float = 0.5) -> Metric:
    """Whether the flat's dust donuts were printed into a frame that did not have them.

    For each donut of the flat (`find_donuts`), the frame's relative brightness inside the
    donut, against its surroundings, is compared with the dip the flat divided out there:
    0 means the frame had the same shadow and it was corrected; 1 that the frame had no shadow
    there (the dust moved, or the flat comes from another night or filter) and the flat
    printed a bright ring. The value is the largest such fraction among the donuts.
    """
    question = "Did signals appear that were not in the raw frame?"
    regions = donut_regions(flat)
    if not regions:
        return Metric("flat imprint", question, np.nan, "info", "needs donuts in the flat",
                      "the flat shows no dust donut to check against")
    bad = reduced.bad | ~np.isfinite(reduced.data)
    frame_rel = relative_to_surroundings(reduced.data, bad, frame_cfa(reduced))
    flat_rel = relative_to_surroundings(flat.data, flat.bad | bad, frame_cfa(flat))
    fractions = []
    for donut, mask in regions:
        inside = mask & ~bad
        if inside.sum() < 5:
            continue
        dip = np.nanmedian(flat_rel[inside])
        values = frame_rel[inside]
        values = values[np.isfinite(values)]
        if values.size < 5:
            continue
        error = 1.4826 * np.median(np.abs(values - np.median(values))) / np.sqrt(values.size)
        # Only a dip the frame could show is judged: deep in the flat, above the frame's noise.
        if dip < -0.01 and -dip > 5 * error:
            # The flat divided out a dip: the frame is as much brighter if it lacked it.
            fractions.append((float(np.median(values) / -dip), donut))
    if not fractions:
        return Metric("flat imprint", question, np.nan, "info", "needs usable donut pixels",
                      "no donut is deep enough above this frame's noise to judge")
    value, worst = max(fractions, key=lambda item: abs(item[0]))
    verdict, threshold = judge(abs(value), pass_below, warn_below)
    return Metric("flat imprint", question, float(value), verdict, f"|value| {threshold}",
                  f"{len(fractions)} dust donuts checked; the worst, at ({worst.x:.0f}, "
                  f"{worst.y:.0f}), is {value:.0%} printed into the frame")


def science_checks(reduced: Frame, raw: Frame | None = None, *, dark: Frame | None = None,
                   dark_scale: float = 1.0, flat: Frame | None = None) -> list[Metric]:
    """Every check that applies to a reduced science frame.

    The masters are in ADU; a frame in electrons (``BUNIT``) has the dark compared in
    electrons, through the gain it was converted with.
    """
    metrics = [flatness(reduced, raw), defect_residuals(reduced), negative_outliers(reduced)]
    to_units = adu_to_frame_units(reduced)
    if dark is not None and to_units is None:
        metrics.append(Metric("dark residual", "Is the dark current correctly subtracted?",
                              np.nan, "info", "needs the frame's unit",
                              f"BUNIT={reduced.header.get('BUNIT')!r} without a usable GAIN: "
                              "the ADU dark cannot be compared"))
    elif dark is not None:
        metrics.append(dark_residual(reduced, dark, scale=dark_scale * to_units, flat=flat))
    if flat is not None:
        metrics.append(flat_imprint(reduced, flat))
    return metrics
