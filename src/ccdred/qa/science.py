"""Checks of a reduced science frame: the notebook's questions about flat, defects and dark."""

from __future__ import annotations

import numpy as np

from ..flags import BAD, Flag
from ..frame import Frame
from ..kernels.mosaic import plane_slices
from ..kernels.sparse import holes, neighbour_median_at
from ..kernels.stats import clipped_slope
from .maps import (
    Surroundings,
    fit_large_scale,
    frame_cfa,
    local_noise,
    plane_block_medians,
    sky_level,
)
from .masters import (
    DarkPattern,
    FlatDonuts,
    FlatPattern,
    MasterMaps,
    dark_pattern,
    flat_donuts,
    flat_pattern,
    master_maps,
)
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


def flatness(reduced: Frame, *, flat: Frame | None = None, blocks: int = 8,
             pass_below: float = 0.25, warn_below: float = 0.5,
             noise: float | None = None, pattern: FlatPattern | None = None) -> Metric:
    """Large-scale flatness of the background, in units of the frame's sky noise.

    The background is measured as ``blocks`` x ``blocks`` block medians (stars and cosmic
    rays do not move a median) and fitted by a plane (a gradient across the frame) and, when
    the ``flat`` the frame was divided by is given, by the flat's own pattern (`large_scale`).
    What counts against the flat field, in ADU, compared like with like:

    - the part of the background that follows the flat's pattern (vignetting left in, or
      over-corrected), where it is significant (3 standard errors of the fit);
    - a gradient only as far as it is larger after flat-fielding than before (the frame
      times its flat: the raw frame after the same bias and dark removal). A sky gradient
      already in the raw frame (moonlight, twilight) is reported as such, not as a
      flat-field failure; so is structure that does not follow the flat (a nebula, a
      crowded cluster), which the detail gives.

    The value is the larger of the two (half the gradient's rise across the frame, to be
    comparable to a spread) over the sky's pixel-to-pixel noise. Without a flat, every
    large-scale structure counts (the spread about the plane, and the whole gradient).
    ``pattern``: ``flat_pattern(flat, blocks)``, if known (a night's frames share a flat).

    Notes
    -----
    Judged against the noise, not the background level: a check that divides by a sky of
    2 ADU fails good frames. A block median of ``n`` pixels has a noise of about
    ``1.25 sigma / sqrt(n)`` (0.04 sigma for 8 x 8 blocks of a 256 x 256 frame), far below
    the thresholds (0.25 and 0.5 sigma): a 1% flat error on a sky of 3000 ADU (noise 45 ADU)
    is 0.67 sigma and fails; on a sky of 15 ADU it is a tenth of an ADU and does not matter.
    """
    question = "Is the flat field properly corrected?"
    cfa = frame_cfa(reduced)
    sigma = local_noise(reduced) if noise is None else noise
    usable = flat is not None and flat.shape == reduced.shape
    if usable and pattern is None:
        pattern = flat_pattern(flat, blocks)
    medians = plane_block_medians(reduced.data, reduced.bad, blocks, cfa)
    after = fit_large_scale(medians, pattern.planes if usable else None)
    if after is None or not (np.isfinite(sigma) and sigma > 0):
        return Metric("flatness", question, np.nan, "info", "needs a measurable background",
                      "too few unflagged pixels, or no pixel-to-pixel noise, to judge by")
    detail = (f"background {after.level:.4g} ADU: residual {after.residual:.3g} ADU about a "
              f"gradient of {after.gradient:.3g} ADU across the frame; sky noise "
              f"{sigma:.3g} ADU")
    if not usable:
        value = max(after.residual, after.gradient / 2) / sigma
    else:
        # The raw frame after bias and dark removal is the frame times its flat: block by
        # block, its median times the flat's (the flat is smooth within a block).
        before = fit_large_scale([m * f for m, f in zip(medians, pattern.planes,
                                                        strict=True)])
        # Dividing a sky gradient by a vignetted flat changes its fitted rise by up to the
        # flat's own range: only a rise beyond that is the flat's doing.
        spread = pattern.spread
        allowed = (before.gradient * (1 + spread)
                   + 3 * np.hypot(before.gradient_error, after.gradient_error)) if before \
            else 3 * after.gradient_error
        introduced = max(0.0, after.gradient - allowed)
        value = max(after.flat_part, introduced / 2) / sigma
        detail += f"; following the flat's pattern: {after.flat_part:.3g} ADU"
        if before is not None:
            detail += f"; gradient before flat-fielding {before.gradient:.3g} ADU"
            if before.gradient > 2 * sigma and introduced <= sigma:
                detail += " (a sky gradient in the raw frame, not a flat-field error)"
        if after.residual > pass_below * sigma and after.flat_part < pass_below * sigma:
            detail += ("; the structure does not follow the flat: the sky or the field "
                       "(a nebula, a galaxy, a crowded cluster)")
    verdict, threshold = judge(value, pass_below, warn_below)
    if verdict != "pass":
        detail += ("; a flat pattern left in or over-corrected, or a gradient the flat "
                   "introduced" if usable else
                   "; large-scale structure (no flat to tell a flat pattern from the sky)")
    return Metric("flatness", question, value, verdict, f"(sky noise) {threshold}", detail)


def defect_residuals(frame: Frame, *, k: float = 5.0, pass_below: float = 0.01,
                     warn_below: float = 0.05, noise: float | None = None,
                     sky: float | None = None) -> Metric:
    """Fraction of HOT/DEAD pixels still standing out from their neighbours by ``k`` sigma.

    A repaired or correctly calibrated defect looks like its neighbours; an unrepaired hot
    pixel does not. Sigma is the frame's pixel-to-pixel noise (`local_noise`, measured here
    unless given as ``noise``).
    """
    question = "Are hot and dead pixels identified and corrected?"
    defective = frame.has(Flag.HOT | Flag.DEAD)
    repaired = defective & frame.has(Flag.REPAIRED)
    # A repaired pixel holds its neighbours' median by construction, and a saturated one has
    # no measurement: only the others can show a defect left uncorrected.
    unmeasured = frame.has(BAD & ~(Flag.HOT | Flag.DEAD))
    rows, cols = np.nonzero(defective & ~repaired & ~unmeasured & np.isfinite(frame.data))
    # Each against the median of its unflagged neighbours of its colour (only these pixels).
    around = neighbour_median_at(frame.data, frame.bad | defective, rows, cols,
                                 step=2 if frame_cfa(frame) else 1)
    sky_median = sky_level(frame) if sky is None else sky
    noise_level = local_noise(frame) if noise is None else noise
    # On a star, neighbours do not predict a pixel: judge defects on the sky only.
    on_sky = around < sky_median + 10 * noise_level
    rows, cols, around = rows[on_sky], cols[on_sky], around[on_sky]
    if not rows.size:
        return Metric("defects", question, 0.0, "pass", "no unrepaired defect on the sky",
                      f"{int(defective.sum())} hot or dead pixels flagged, "
                      f"{int(repaired.sum())} repaired")
    sigma = np.full(rows.size, noise_level)
    if frame.variance is not None:
        sigma = np.fmax(sigma, np.sqrt(np.maximum(frame.variance[rows, cols], 0)))
    off = np.abs(frame.data[rows, cols] - around) > k * sigma
    value = float(off.mean())
    verdict, threshold = judge(value, pass_below, warn_below)
    return Metric("defects", question, value, verdict, threshold,
                  f"{int(off.sum())} of {rows.size} unrepaired defects on the sky "
                  f"differ from their neighbours by more than {k:g} sigma "
                  f"({int(repaired.sum())} repaired)")


def dark_residual(reduced: Frame, dark: Frame, *, scale: float = 1.0, flat: Frame | None = None,
                  snr: float = 10.0, min_pixels: int = 20, pass_below: float = 0.1,
                  warn_below: float = 0.3, pattern: DarkPattern | None = None) -> Metric:
    """How much of the (scaled) master dark is left in a reduced frame, where the dark is strong.

    At pixels whose dark signal is ``snr`` times its own noise (hot and warm pixels,
    `dark_pattern`), the frame's excess over its neighbours is fitted by the dark's (divided by
    the flat, as the frame was): 0 means the dark was subtracted exactly, 1 that it was not
    subtracted at all, -1 that it was subtracted twice. Repaired pixels hold no measurement;
    when every strong dark pixel was repaired, there is nothing left to check (verdict
    ``info``). ``pattern``: ``dark_pattern(dark, flat, snr=snr)``, if known (a night's frames
    share their masters).
    """
    question = "Is the dark current correctly subtracted?"
    if not scale > 0:
        return Metric("dark residual", question, np.nan, "info", "needs a positive dark scale",
                      f"the dark was scaled by {scale:.4g}")
    pattern = dark_pattern(dark, flat, snr=snr) if pattern is None else pattern
    unusable = reduced.has((BAD & ~Flag.HOT) | Flag.REPAIRED)
    unusable |= pattern.unusable | ~np.isfinite(reduced.data)
    usable = ~unusable[pattern.rows, pattern.cols]
    rows, cols = pattern.rows[usable], pattern.cols[usable]
    if rows.size < min_pixels:
        return Metric("dark residual", question, np.nan, "info",
                      f"needs {min_pixels} unrepaired pixels with a strong dark",
                      f"{rows.size} usable pixels with a strong dark (the others were "
                      f"repaired); reduce with --repair unusable (the default) or none to check "
                      f"the dark subtraction")
    # Each strong pixel against its neighbours of its colour that have neither a strong dark
    # nor a flag (only these pixels are computed).
    frame_background = neighbour_median_at(reduced.data, unusable | pattern.mask, rows, cols,
                                           step=2 if frame_cfa(reduced) else 1)
    y = reduced.data[rows, cols] - frame_background
    weight = (None if reduced.variance is None
              else 1 / np.maximum(reduced.variance[rows, cols], 1e-12))
    slope = clipped_slope(pattern.excess[usable] * np.float32(scale), y, weight)
    verdict, threshold = judge(abs(slope.value), pass_below, warn_below)
    sign = "left in the frame" if slope.value > 0 else "over-subtracted"
    return Metric("dark residual", question, slope.value, verdict, f"|value| {threshold}",
                  f"{abs(slope.value):.1%} of the dark {sign} (+/- {slope.error:.1%}), from "
                  f"{rows.size} pixels with a strong dark")


def negative_outliers(reduced: Frame, *, k: float = 5.0, pass_below: float = 1e-4,
                      warn_below: float = 1e-3, noise: float | None = None) -> Metric:
    """Fraction of pixels more than ``k`` sigma (their own) below the background.

    Noise alone puts 3e-7 of pixels there; an over-subtracted dark leaves holes at its hot
    pixels (unless they were repaired). The background is each pixel's 3 x 3 neighbourhood
    (median, one colour plane: robust to up to 4 low neighbours, a hole's own row of a cold
    row included), so the dark sky between a nebula's filaments is not a hole.
    ``noise``: the frame's `local_noise`, if known.
    """
    question = "Is the dark current correctly subtracted (no holes)?"
    # Unrepaired hot pixels are where an over-subtracted dark digs its holes.
    good = ~reduced.has((BAD & ~Flag.HOT) | Flag.REPAIRED) & np.isfinite(
        reduced.data)
    # Against the pixel's own surroundings (a nebula or a cluster makes a global median, or
    # even a 32-pixel one, meaningless): a hole is a pixel below its 3x3 neighbourhood, the
    # flagged neighbours standing in at their plane's median. One pass; the median is
    # computed only where the nearest neighbours allow a hole.
    cfa = frame_cfa(reduced)
    step = 2 if cfa else 1
    fills = np.array([_plane_median(reduced.data[rows, cols], good[rows, cols])
                      for rows, cols in plane_slices(cfa)], np.float32)
    level = local_noise(reduced) if noise is None else noise
    low = holes(reduced.data, good, noise=level, k=k, variance=reduced.variance, fills=fills,
                step=step)
    count = int(low.sum())
    lines = _defect_lines(low)
    # A row or column low along its length is a detector defect, not the dark: said, and
    # not counted.
    counted = low & ~lines
    value = float(counted.sum() / good.sum()) if good.any() else np.nan
    verdict, threshold = judge(value, pass_below, warn_below)
    detail = f"{count} pixels below their surroundings - {k:g} sigma"
    if lines.any():
        rows = np.flatnonzero(lines.all(axis=1))
        cols = np.flatnonzero(lines.all(axis=0))
        names = ([f"row {r}" for r in rows[:3]] + [f"column {c}" for c in cols[:3]])
        detail += (f"; {int((low & lines).sum())} of them along {', '.join(names)} (0-based): "
                   "a detector defect, not the dark, and not counted")
    return Metric("negative outliers", question, value, verdict, threshold, detail)


def flat_imprint(reduced: Frame, flat: Frame, *, pass_below: float = 0.2,
                 warn_below: float = 0.5, donuts: FlatDonuts | None = None) -> Metric:
    """Whether the flat's dust donuts were printed into a frame that did not have them.

    For each donut of the flat (`find_donuts`), the frame's relative brightness inside the
    donut, against its surroundings, is compared with the dip the flat divided out there:
    0 means the frame had the same shadow and it was corrected; 1 that the frame had no shadow
    there (the dust moved, or the flat comes from another night or filter) and the flat
    printed a bright ring. The value is the largest such fraction among the donuts.
    ``donuts``: ``flat_donuts(flat)`` if known (a night's frames share their flat).
    """
    question = "Did signals appear that were not in the raw frame?"
    donuts = flat_donuts(flat) if donuts is None else donuts
    if not donuts.pixels:
        return Metric("flat imprint", question, np.nan, "info", "needs donuts in the flat",
                      "the flat shows no dust donut to check against")
    bad = reduced.bad | ~np.isfinite(reduced.data)
    # The frame's small-scale structure, computed at the donuts' pixels and around them only.
    frame_rel = Surroundings(reduced.data, bad, frame_cfa(reduced))
    # The flat's own structure (its flagged pixels left out); the frame's flagged pixels are
    # left out of each donut below.
    flat_rel = donuts.relative
    # Each donut's pixels by index, not as a whole-frame mask: a few thousand values each;
    # with the same mask moved to 8 places around it, all looked up at once.
    masks = [_donut_masks(rows, cols, bad) for _, rows, cols in donuts.pixels]
    pieces = [piece for donut_masks in masks for piece in donut_masks]
    found = frame_rel(np.concatenate([r for r, _ in pieces]),
                      np.concatenate([c for _, c in pieces])) if pieces else np.empty(0)
    relative = iter(np.split(found, np.cumsum([r.size for r, _ in pieces])[:-1]))
    fractions = []
    for (donut, _, _), donut_masks in zip(donuts.pixels, masks, strict=True):
        if not donut_masks:
            continue
        inside = donut_masks[0]
        values = next(relative)
        moved = [next(relative) for _ in donut_masks[1:]]
        dip = np.nanmedian(flat_rel[inside])
        values = values[np.isfinite(values)]
        if values.size < 5:
            continue
        error = 1.4826 * np.median(np.abs(values - np.median(values))) / np.sqrt(values.size)
        # The frame's own structure at the donut's scale (a nebula, crowded stars) moves a
        # donut-shaped median as much: measured with the same mask moved around the donut.
        error = max(error, _structure_error(moved))
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


def _defect_lines(low: np.ndarray, *, min_pixels: int = 10, share: float = 0.2) -> np.ndarray:
    """Return whole rows and columns holding ``share`` of the low pixels (``min_pixels``).

    Such a line is a detector defect (a cold row, a charge trap), not holes of a dark.
    """
    lines = np.zeros(low.shape, bool)
    total = int(low.sum())
    if total < min_pixels:
        return lines
    for axis in (1, 0):  # counts per row, then per column
        counts = low.sum(axis=axis)
        index = np.flatnonzero(counts >= max(min_pixels, share * total))
        if axis == 1:
            lines[index, :] = True
        else:
            lines[:, index] = True
    return lines


def _plane_median(values: np.ndarray, good: np.ndarray, sample: int = 50_000) -> float:
    """Median of a plane's good values, from a regular sample of about ``sample`` (0 if none).

    It stands in for flagged pixels: 50,000 values put it within 0.6% of the sky's noise.
    """
    step = max(1, values.size // sample)
    kept = values.ravel()[::step][good.ravel()[::step]]
    return float(np.median(kept)) if kept.size else 0.0


def _donut_masks(rows: np.ndarray, cols: np.ndarray, bad: np.ndarray
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return a donut's unflagged pixels, then its mask moved to 8 places around it.

    Each as rows and columns of the unflagged pixels; a moved mask only where 80% of it is
    inside the frame. Nothing when fewer than 5 of the donut's pixels are unflagged.
    """
    good = ~bad[rows, cols]
    if good.sum() < 5:
        return []
    masks = [(rows[good], cols[good])]
    size = int(max(np.ptp(rows), np.ptp(cols))) + 1
    for dy, dx in ((-2, 0), (2, 0), (0, -2), (0, 2), (-2, -2), (-2, 2), (2, -2), (2, 2)):
        r, c = rows + dy * size, cols + dx * size
        ok = (r >= 0) & (r < bad.shape[0]) & (c >= 0) & (c < bad.shape[1])
        if ok.sum() < 0.8 * rows.size:
            continue
        r, c = r[ok], c[ok]
        kept = ~bad[r, c]
        masks.append((r[kept], c[kept]))
    return masks


def _structure_error(moved: list[np.ndarray]) -> float:
    """Return the spread of the medians of the relative values under the moved masks."""
    medians = [np.median(v[np.isfinite(v)]) for v in moved if np.isfinite(v).sum() >= 5]
    if len(medians) < 4:
        return 0.0
    medians = np.asarray(medians)
    return float(1.4826 * np.median(np.abs(medians - np.median(medians))))


def science_checks(reduced: Frame, *, dark: Frame | None = None, dark_scale: float = 1.0,
                   flat: Frame | None = None, noise: float | None = None,
                   sky: float | None = None, maps: MasterMaps | None = None) -> list[Metric]:
    """Every check that applies to a reduced science frame (the masters it was reduced with).

    The frame's pixel-to-pixel noise (`local_noise`) and sky level (`sky_level`) are measured
    once, unless given as ``noise`` and ``sky``, and shared by the checks; so is what they take
    from the masters (``maps``: ``master_maps(dark=dark, flat=flat)``, found here unless
    given). The masters are in ADU; a frame in electrons (``BUNIT``) has the dark compared in
    electrons, through the gain it was converted with.
    """
    noise = local_noise(reduced) if noise is None else noise
    maps = master_maps(dark=dark, flat=flat) if maps is None else maps
    metrics = [flatness(reduced, flat=flat, noise=noise, pattern=maps.flat),
               defect_residuals(reduced, noise=noise, sky=sky),
               negative_outliers(reduced, noise=noise)]
    to_units = adu_to_frame_units(reduced)
    if dark is not None and to_units is None:
        metrics.append(Metric("dark residual", "Is the dark current correctly subtracted?",
                              np.nan, "info", "needs the frame's unit",
                              f"BUNIT={reduced.header.get('BUNIT')!r} without a usable GAIN: "
                              "the ADU dark cannot be compared"))
    elif dark is not None:
        metrics.append(dark_residual(reduced, dark, scale=dark_scale * to_units, flat=flat,
                                     pattern=maps.dark))
    if flat is not None:
        metrics.append(flat_imprint(reduced, flat, donuts=maps.donuts))
    return metrics
