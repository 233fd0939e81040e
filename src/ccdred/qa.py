"""Quality checks: the notebook's questions, answered with numbers and a verdict.

Each check returns a `Metric` with its value, the thresholds it was judged by and a verdict:
``pass``, ``warn``, ``fail``, or ``info`` (a finding to look at, not a judgement). The checks
work on `Frame` objects and never modify them.

Science frames: `flatness` (is the flat field corrected?), `defect_residuals` (are hot and
dead pixels corrected?), `dark_residual` and `negative_outliers` (is the dark correctly
subtracted?), `flat_imprint` (did signals appear that were not in the raw frame?). Masters:
`master_noise`, `defect_count`, `find_donuts`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .flags import BAD, Flag
from .frame import Frame
from .kernels.repair import fill_pixels
from .kernels.stats import clipped_slope, robust_stats

__all__ = ["Metric", "Donut", "flatness", "defect_residuals", "dark_residual",
           "negative_outliers", "flat_imprint", "master_noise", "defect_count", "find_donuts",
           "donut_metric", "science_checks", "VERDICTS"]

VERDICTS = ("pass", "warn", "fail", "info")


@dataclass(frozen=True)
class Metric:
    """One answered question."""

    name: str
    question: str
    value: float
    verdict: str
    threshold: str
    """How the verdict was decided, e.g. ``pass <= 0.01 < warn <= 0.03 < fail``."""
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def _judge(value: float, pass_below: float, warn_below: float) -> tuple[str, str]:
    """Verdict for a value where smaller is better."""
    threshold = f"pass <= {pass_below:g} < warn <= {warn_below:g} < fail"
    if not np.isfinite(value):
        return "fail", threshold
    if value <= pass_below:
        return "pass", threshold
    return ("warn" if value <= warn_below else "fail"), threshold


def _block_medians(data: np.ndarray, bad: np.ndarray, blocks: int) -> np.ndarray:
    values = np.where(bad, np.nan, data)
    rows, cols = data.shape
    r_edges = np.linspace(0, rows, blocks + 1).astype(int)
    c_edges = np.linspace(0, cols, blocks + 1).astype(int)
    medians = [np.nanmedian(values[r0:r1, c0:c1]) if np.isfinite(values[r0:r1, c0:c1]).any()
               else np.nan
               for r0, r1 in zip(r_edges[:-1], r_edges[1:], strict=True)
               for c0, c1 in zip(c_edges[:-1], c_edges[1:], strict=True)]
    medians = np.asarray(medians)
    return medians[np.isfinite(medians)]


def _relative_spread(frame: Frame, blocks: int) -> float:
    medians = _block_medians(frame.data, frame.bad, blocks)
    level = np.median(medians) if medians.size else np.nan
    if not level > 0:
        return np.nan
    return float(1.4826 * np.median(np.abs(medians - level)) / level)


def flatness(reduced: Frame, raw: Frame | None = None, *, blocks: int = 8,
             pass_below: float = 0.01, warn_below: float = 0.03) -> Metric:
    """Large-scale flatness of the background: relative spread (MAD) of block medians.

    A corrected sky is flat to a fraction of a per cent; vignetting or a wrong flat leaves
    several per cent. A field filled by a nebula or a galaxy is not flat either: the detail
    says so, and the raw frame's spread is given for comparison.
    """
    value = _relative_spread(reduced, blocks)
    question = "Is the flat field properly corrected?"
    if not np.isfinite(value):
        return Metric("flatness", question, np.nan, "info", "needs a positive background",
                      "no positive background level to judge flatness by")
    verdict, threshold = _judge(value, pass_below, warn_below)
    detail = f"block-median spread {value:.2%} of the background"
    if raw is not None:
        raw_value = _relative_spread(raw, blocks)
        if np.isfinite(raw_value):
            detail += f" (raw frame: {raw_value:.2%})"
    if verdict != "pass":
        detail += "; a residual flat pattern, or extended emission filling the field"
    return Metric("flatness", question, value, verdict, threshold, detail)


def _local_noise(frame: Frame) -> float:
    """Pixel-to-pixel noise: robust spread of neighbour differences over the root of 2.

    Along rows or columns, whichever is quieter (a bias's column pattern is not noise).
    """
    spreads = []
    for axis in (0, 1):
        bad = np.diff(frame.bad.astype(np.int8), axis=axis) != 0
        bad |= (frame.bad[1:, :] if axis == 0 else frame.bad[:, 1:])
        spreads.append(robust_stats(np.diff(frame.data, axis=axis), exclude=bad).std)
    return float(np.nanmin(spreads) / np.sqrt(2))


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
    neighbours = fill_pixels(frame.data, frame.bad | defective)
    sky = robust_stats(frame.data, exclude=frame.bad)
    noise_level = _local_noise(frame)
    # On a star, neighbours do not predict a pixel: judge defects on the sky only.
    defects = candidates & (neighbours < sky.median + 10 * noise_level)
    if not defects.any():
        return Metric("defects", question, 0.0, "pass", "no unrepaired defect on the sky",
                      f"{int(defective.sum())} hot or dead pixels flagged, "
                      f"{int(repaired.sum())} repaired")
    noise = np.full(int(defects.sum()), noise_level)
    if frame.variance is not None:
        noise = np.fmax(noise, np.sqrt(np.maximum(frame.variance[defects], 0)))
    off = np.abs(frame.data[defects] - neighbours[defects]) > k * noise
    value = float(off.mean())
    verdict, threshold = _judge(value, pass_below, warn_below)
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
    pattern_background = fill_pixels(pattern, unusable | dark.has(Flag.HOT))
    excess_dark = pattern - pattern_background
    if noise is None:
        noise = np.full(pattern.shape, _local_noise(dark.replace(data=pattern)))
    strong = ~unusable & (excess_dark > snr * noise)
    if strong.sum() < min_pixels:
        return Metric("dark residual", question, np.nan, "info",
                      f"needs {min_pixels} unrepaired pixels with a strong dark",
                      f"{int(strong.sum())} usable pixels with a strong dark (the others were "
                      f"repaired); reduce with --no-repair to check the dark subtraction")
    frame_background = fill_pixels(reduced.data, unusable | strong)
    y = (reduced.data - frame_background)[strong]
    weight = None if reduced.variance is None else 1 / np.maximum(reduced.variance[strong], 1e-12)
    slope = clipped_slope(excess_dark[strong], y, weight)
    verdict, threshold = _judge(abs(slope.value), pass_below, warn_below)
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
    noise = np.full(reduced.shape, _local_noise(reduced), np.float32)[good]
    if reduced.variance is not None:
        noise = np.fmax(noise, np.sqrt(np.maximum(reduced.variance[good], 0)))
    low = reduced.data[good] < stats.median - k * noise
    value = float(low.mean()) if good.any() else np.nan
    verdict, threshold = _judge(value, pass_below, warn_below)
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
    regions = _donut_regions(flat)
    if not regions:
        return Metric("flat imprint", question, np.nan, "info", "needs donuts in the flat",
                      "the flat shows no dust donut to check against")
    bad = reduced.bad | ~np.isfinite(reduced.data)
    frame_rel = _relative_to_surroundings(reduced.data, bad)
    flat_rel = _relative_to_surroundings(flat.data, flat.bad | bad)
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
    verdict, threshold = _judge(abs(value), pass_below, warn_below)
    return Metric("flat imprint", question, float(value), verdict, f"|value| {threshold}",
                  f"{len(fractions)} dust donuts checked; the worst, at ({worst.x:.0f}, "
                  f"{worst.y:.0f}), is {value:.0%} printed into the frame")


def _background(image: np.ndarray, bad: np.ndarray, box: int = 32) -> np.ndarray:
    """Smooth background from medians of ``box`` x ``box`` cells.

    Stars and donuts do not move a median; the cells are median-filtered over 3x3 and
    interpolated back to every pixel.
    """
    rows, cols = image.shape
    pad_r, pad_c = -rows % box, -cols % box
    values = np.pad(np.where(bad, np.nan, image).astype(np.float64), ((0, pad_r), (0, pad_c)),
                    constant_values=np.nan)
    cells = values.reshape(values.shape[0] // box, box, values.shape[1] // box, box)
    with np.errstate(all="ignore"):
        grid = np.nanmedian(cells.transpose(0, 2, 1, 3).reshape(*cells.shape[::2], -1), axis=2)
    if not np.isfinite(grid).any():
        return np.full(image.shape, np.nan)
    grid = fill_pixels(grid, ~np.isfinite(grid)).astype(np.float64)
    grid = ndimage.median_filter(grid, size=3, mode="nearest")
    centres_r = (np.arange(rows) + 0.5) / box - 0.5
    centres_c = (np.arange(cols) + 0.5) / box - 0.5
    rr, cc = np.meshgrid(centres_r, centres_c, indexing="ij")
    return ndimage.map_coordinates(grid, [rr, cc], order=1, mode="nearest")


def _relative_to_surroundings(image: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``image / background - 1``: small-scale relative structure (flagged pixels NaN)."""
    background = _background(image, bad)
    with np.errstate(all="ignore"):
        relative = image / np.where(background != 0, background, np.nan) - 1
    return np.where(bad, np.nan, relative)


def master_noise(master: Frame, expected: float, *, pass_below: float = 1.25,
                 warn_below: float = 1.5) -> Metric:
    """Pixel-to-pixel noise of a master against what combining should give (``expected``).

    For a master bias, ``expected`` is the read noise over the square root of the number of
    frames; a ratio well above 1 means the frames were not independent, or outliers got in.
    """
    measured = _local_noise(master)
    value = measured / expected if expected > 0 else np.nan
    verdict, threshold = _judge(value, pass_below, warn_below)
    return Metric("master noise", "Is the master as quiet as combining should make it?", value,
                  verdict, f"measured/expected {threshold}",
                  f"noise {measured:.3g} against {expected:.3g} expected")


def defect_count(master: Frame, flag: Flag, previous: int | None = None) -> Metric:
    """How many pixels carry ``flag`` (HOT or DEAD), against the previous master if known."""
    count = int(master.has(flag).sum())
    fraction = count / master.data.size
    verdict, threshold = _judge(fraction, 0.005, 0.02)
    detail = f"{count} {flag.name.lower()} pixels ({fraction:.3%} of the detector)"
    if previous is not None:
        detail += f"; previous master: {previous}"
    return Metric(f"{flag.name.lower()} pixels", "How many defective pixels?", float(count),
                  verdict, f"fraction {threshold}", detail)


@dataclass(frozen=True)
class Donut:
    """A dust shadow on a flat: centre (0-based pixels), diameter (pixels), depth (fraction)."""

    x: float
    y: float
    diameter: float
    depth: float


def _donut_regions(flat: Frame, *, threshold: float = 0.015, min_area: int = 12
                   ) -> list[tuple[Donut, np.ndarray]]:
    bad = flat.bad | ~np.isfinite(flat.data)
    relative = _relative_to_surroundings(flat.data, bad)
    dips = ndimage.gaussian_filter(np.nan_to_num(relative), 1.5) < -threshold
    dips = ndimage.binary_closing(dips, iterations=2) & ~bad
    labels, _ = ndimage.label(dips)
    regions = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        mask = labels == index
        area = int(mask[box].sum())
        margin = 8  # the background is extrapolated near the edges
        touches_edge = (box[0].start < margin or box[1].start < margin
                        or box[0].stop > flat.shape[0] - margin
                        or box[1].stop > flat.shape[1] - margin)
        if area < min_area or touches_edge or 2 * np.sqrt(area / np.pi) > min(flat.shape) / 6:
            continue  # vignetted corners are not dust
        rows, cols = np.nonzero(mask[box])
        donut = Donut(x=float(cols.mean() + box[1].start), y=float(rows.mean() + box[0].start),
                      diameter=float(2 * np.sqrt(area / np.pi)),
                      depth=float(-np.nanmin(relative[mask])))
        regions.append((donut, mask))
    return regions


def find_donuts(flat: Frame, *, threshold: float = 0.015, min_area: int = 12) -> list[Donut]:
    """Find dust donuts: compact dips of the flat, ``threshold`` below its surroundings."""
    return [donut for donut, _ in _donut_regions(flat, threshold=threshold, min_area=min_area)]


def donut_metric(flat: Frame) -> tuple[Metric, list[Donut]]:
    """Answer the notebook's "What is that?": the dust donuts of a master flat."""
    donuts = find_donuts(flat)
    listing = "; ".join(f"({d.x:.0f}, {d.y:.0f}) {d.diameter:.0f} px, {d.depth:.1%} deep"
                        for d in donuts[:10])
    detail = f"{len(donuts)} dust donuts" + (f": {listing}" if donuts else "")
    if len(donuts) > 10:
        detail += f" and {len(donuts) - 10} more"
    metric = Metric("dust donuts", "What are the rings in the flat?", float(len(donuts)),
                    "info", "found, not judged", detail)
    return metric, donuts


def science_checks(reduced: Frame, raw: Frame | None = None, *, dark: Frame | None = None,
                   dark_scale: float = 1.0, flat: Frame | None = None) -> list[Metric]:
    """Every check that applies to a reduced science frame."""
    metrics = [flatness(reduced, raw), defect_residuals(reduced), negative_outliers(reduced)]
    if dark is not None:
        metrics.append(dark_residual(reduced, dark, scale=dark_scale, flat=flat))
    if flat is not None:
        metrics.append(flat_imprint(reduced, flat))
    return metrics
