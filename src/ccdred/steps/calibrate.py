"""Science-frame calibration steps; each returns a new `Frame` and leaves its inputs alone."""

from __future__ import annotations

import numpy as np

from ..flags import BAD, REPAIRABLE, Flag, flagged
from ..frame import Frame
from ..kernels.filters import grow_mask
from ..kernels.flatfield import divide_by_flat
from ..kernels.lacosmic import detect_cosmics
from ..kernels.mosaic import assemble, per_plane
from ..kernels.mosaic_cosmics import detect_cosmics_mosaic
from ..kernels.repair import fill_pixels, flagged_pixels, repair_at, repair_pixels
from ..kernels.selection import masked_median
from ..kernels.stats import clipped_slope
from ..kernels.subtract import subtract_scaled

__all__ = ["flag_nonfinite", "flag_saturation", "add_noise_model", "subtract_bias",
           "subtract_dark", "optimal_dark_scale", "flat_correct", "reject_cosmics", "repair"]


def flag_nonfinite(frame: Frame) -> Frame:
    """Flag NO_DATA where the data is NaN or infinite."""
    return frame.with_flags(~np.isfinite(frame.data), Flag.NO_DATA)


def flag_saturation(frame: Frame, level: float | None) -> Frame:
    """Flag SATURATED where the raw value is at or above ``level`` (None: do nothing).

    Run this on the raw frame, before any arithmetic changes the values.
    """
    if level is None:
        return frame
    if not level > 0:
        raise ValueError(f"saturation level must be positive, got {level}")
    return frame.with_flags(frame.data >= np.float32(level), Flag.SATURATED)


def add_noise_model(frame: Frame, *, gain: float, read_noise: float,
                    zero_level: Frame | float | None = None, quantisation: float = 0.0
                    ) -> Frame:
    """Attach the CCD noise model's variance to a raw frame.

    ``variance = (read_noise / gain)^2 + quantisation + max(data - zero_level, 0) / gain`` in
    ADU^2, with ``gain`` in electrons per ADU and ``read_noise`` in electrons. ``zero_level``
    is the master bias (or, without one, the master dark, or a level in ADU), so Poisson noise
    counts only the detected charge; ``quantisation`` the variance of the ADC's rounding
    (``step**2 / 12`` for a 12-bit ADC scaled by 16).
    """
    if not gain > 0:
        raise ValueError(f"gain must be positive (e-/ADU), got {gain}")
    if not read_noise >= 0:
        raise ValueError(f"read noise must be >= 0 (e-), got {read_noise}")
    if not quantisation >= 0:
        raise ValueError(f"quantisation variance must be >= 0, got {quantisation}")
    zero = zero_level.data if isinstance(zero_level, Frame) else np.float32(zero_level or 0.0)
    # floor + max(signal, 0) / gain, built in place in one new array.
    variance = np.subtract(frame.data, zero, dtype=np.float32)
    np.maximum(variance, 0, out=variance)
    variance /= np.float32(gain)
    variance += np.float32((read_noise / gain) ** 2 + quantisation)
    return frame.replace(variance=variance)


def subtract_bias(frame: Frame, bias: Frame) -> Frame:
    """Subtract a master bias (variance added, flags OR-ed)."""
    return _subtract(frame, bias, 1.0)


def subtract_dark(frame: Frame, dark: Frame, scale: float = 1.0) -> Frame:
    """Subtract a master dark times ``scale`` (exposure ratio for a bias-subtracted dark)."""
    if not scale >= 0:
        raise ValueError(f"dark scale must be >= 0, got {scale}")
    return _subtract(frame, dark, scale)


def _subtract(frame: Frame, master: Frame, scale: float) -> Frame:
    """``frame - master * scale``: in one compiled pass for float32 frames with variances."""
    arrays = (frame.data, frame.variance, master.data, master.variance)
    if frame.shape != master.shape or any(a is None or a.dtype != np.float32 for a in arrays):
        return frame - master if scale == 1 else frame - master * scale
    data, variance, dq = subtract_scaled(frame.data, frame.variance, frame.dq, master.data,
                                         master.variance, master.dq, scale)
    return frame.replace(data=data, variance=variance, dq=dq)


def optimal_dark_scale(frame: Frame, dark: Frame, *, clip: float = 5.0, iterations: int = 5,
                       cfa: str | None = None) -> float:
    """Fit the dark factor that leaves the least dark pattern in a bias-subtracted frame.

    Siril's dark optimisation minimises the noise of ``frame - k * dark``; that noise is
    quadratic in ``k``, so its minimum has a closed form: the least-squares slope of the
    frame's fine structure on the dark's. Fine structure is the difference of neighbouring
    columns, which removes the sky and keeps hot pixels and the dark's pixel-to-pixel pattern.
    Stars and cosmic rays do not follow the dark and are clipped (``clip`` sigma, robust)
    from the fit; with the frame's variance, each difference is weighted by it. Flagged
    pixels other than HOT are left out.

    Raises
    ------
    ValueError
        The dark has no structure to fit (it is flat, or every pixel is flagged).
    """
    if frame.shape != dark.shape:
        raise ValueError(f"frame is {frame.shape} but the dark is {dark.shape}")
    lag = 2 if cfa else 1  # a colour mosaic's neighbours of the same colour are 2 apart
    usable = ~flagged(frame.dq | dark.dq, BAD & ~Flag.HOT)
    usable = usable[:, lag:] & usable[:, :-lag]
    data, pattern = frame.data.astype(np.float64), dark.data.astype(np.float64)
    y = (data[:, lag:] - data[:, :-lag])[usable]
    x = (pattern[:, lag:] - pattern[:, :-lag])[usable]
    if frame.variance is not None:
        # A hot pixel's own shot noise is large: weigh each difference by its variance.
        variance = frame.variance.astype(np.float64)
        weight = 1.0 / np.maximum((variance[:, lag:] + variance[:, :-lag])[usable], 1e-12)
    else:
        weight = np.ones_like(y)
    try:
        scale = clipped_slope(x, y, weight, clip=clip, iterations=iterations).value
    except ValueError:
        raise ValueError("the master dark has no structure to fit a scale to") from None
    return max(scale, 0.0)


def flat_correct(frame: Frame, flat: Frame, *, min_flat: float = 0.1) -> Frame:
    """Divide by a master flat normalised to mean 1.

    Where the flat is below ``min_flat`` or not finite, the result is NaN and flagged LOW_FLAT
    (never an infinity): nothing can be recovered there.
    """
    if not min_flat > 0:
        raise ValueError(f"min_flat must be positive, got {min_flat}")
    if flat.shape != frame.shape:
        raise ValueError(f"shape mismatch: the frame is {frame.shape[1]}x{frame.shape[0]} but "
                         f"the flat is {flat.shape[1]}x{flat.shape[0]} (columns x rows)")
    arrays = (frame.data, frame.variance, flat.data, flat.variance)
    if any(a is not None and a.dtype != np.float32 for a in arrays):
        return _flat_correct_numpy(frame, flat, min_flat)
    # Frame division's values (tests hold the two equal), in one pass with no temporaries.
    data, variance, dq = divide_by_flat(frame.data, frame.variance, frame.dq, flat.data,
                                        flat.variance, flat.dq, min_flat=min_flat,
                                        low_flag=int(Flag.LOW_FLAT))
    return frame.replace(data=data, variance=variance, dq=dq)


def _flat_correct_numpy(frame: Frame, flat: Frame, min_flat: float) -> Frame:
    """`flat_correct` by Frame division, in the arrays' own types (float64 frames)."""
    low = ~(flat.data >= np.float32(min_flat))
    safe_flat = flat.replace(data=np.where(low, np.float32(1.0), flat.data))
    out = (frame / safe_flat).with_flags(low, Flag.LOW_FLAT)
    data = np.where(low, np.float32(np.nan), out.data)
    variance = None if out.variance is None else np.where(low, np.float32(np.nan), out.variance)
    return out.replace(data=data, variance=variance)


def reject_cosmics(frame: Frame, *, gain: float, read_noise: float, sigclip: float = 4.5,
                   objlim: float = 5.0, clean: bool = False, cfa: str | None = None) -> Frame:
    """Detect cosmic rays with L.A.Cosmic and flag them COSMIC_RAY.

    Pixels already flagged are filled from their neighbours before detection (a zero or NaN
    hole inside a star would make its rim look like cosmic rays) and are not flagged again.
    Saturated pixels, with a 4-pixel halo, are masked too, as L.A.Cosmic does for saturated
    stars: the steep edge of a clipped core is not a cosmic ray. The frame's own variance, when
    it has one everywhere, is the noise model (it knows the flat field); otherwise ``gain`` and
    ``read_noise`` give it.

    Parameters
    ----------
    frame : Frame
        A calibrated frame in ADU, bias and dark removed but sky kept: the noise model needs
        the detected charge.
    gain : float
        Electrons per ADU.
    read_noise : float
        Read noise in electrons.
    sigclip, objlim : float
        L.A.Cosmic detection limit and contrast limit against stars.
    clean : bool
        Also replace the hits by L.A.Cosmic's cleaned values (otherwise only flag them; the
        cosmetic `repair` step fills flagged pixels).
    cfa : str, optional
        Bayer pattern of a colour mosaic: each colour plane is searched on its own, and
        detections that light their other-colour neighbours like a star are dropped
        (`ccdred.kernels.mosaic_cosmics`); saturated cores are masked with a 2-plane-pixel
        halo (4 pixels of the mosaic).

    Notes
    -----
    van Dokkum 2001, PASP 113, 1420 (L.A.Cosmic). `ccdred.kernels.lacosmic` finds the same
    pixels as astroscrappy (McCully et al.) with the options used here, 10-15 times faster.
    """
    if not gain > 0:
        raise ValueError(f"gain must be positive, got {gain}")
    if not read_noise >= 0:
        raise ValueError(f"read noise must be >= 0, got {read_noise}")
    bad = frame.bad
    if cfa:
        mask, cleaned = _cosmics_mosaic(frame, bad, cfa, gain, read_noise, sigclip, objlim)
    else:
        halo = grow_mask(frame.has(Flag.SATURATED), 4)
        variance = None
        if frame.variance is not None and np.isfinite(frame.variance[~bad]).all():
            variance = fill_pixels(frame.variance, bad)
        # Filled defects look like ordinary pixels, so they need no mask: L.A.Cosmic grows
        # its mask by a pixel, which would hide the 3% of hits next to a hot or dead pixel.
        mask, cleaned = detect_cosmics(
            fill_pixels(frame.data, bad), inmask=halo, invar=variance, gain=gain,
            readnoise=read_noise, sigclip=sigclip, objlim=objlim)
    mask &= ~bad
    out = frame.with_flags(mask, Flag.COSMIC_RAY)
    if clean:
        out = out.replace(data=np.where(mask, cleaned.astype(np.float32), out.data))
    return out


def _by_plane(func, images: list[np.ndarray], cfa: str, **kwargs) -> np.ndarray:
    """Apply an image-to-image function to each colour plane and put the mosaic together."""
    return assemble(per_plane(func, images, cfa, **kwargs), images[0].shape, cfa)


def _cosmics_mosaic(frame: Frame, bad: np.ndarray, cfa: str, gain: float, read_noise: float,
                    sigclip: float, objlim: float) -> tuple[np.ndarray, np.ndarray]:
    """L.A.Cosmic per colour plane (`ccdred.kernels.mosaic_cosmics`), defects filled first."""
    halo = _by_plane(grow_mask, [frame.has(Flag.SATURATED)], cfa, radius=2)
    data = _by_plane(fill_pixels, [frame.data, bad], cfa)
    if frame.variance is not None and np.isfinite(frame.variance[~bad]).all():
        variance = _by_plane(fill_pixels, [frame.variance, bad], cfa)
    else:
        variance = (read_noise / gain) ** 2 + np.maximum(data, 0) / gain
    return detect_cosmics_mosaic(data, cfa, variance=variance.astype(np.float32),
                                 inmask=halo.astype(bool), sigclip=sigclip, objlim=objlim)


def unusable_pixels(frame: Frame, *, flat: Frame | None = None, dead_response: float = 0.5,
                    hot_noise: float = 3.0) -> np.ndarray:
    """Return the flagged pixels that calibration cannot make right (True: repair them).

    - cosmic rays, pixels with no valid data and pixels whose flat was too low to divide by
      (``COSMIC_RAY``, ``NO_DATA``, ``LOW_FLAT``): no measurement left;
    - ``DEAD`` pixels whose flat response is below ``dead_response`` (0.5: the pixel lost
      more than half its signal, its noise is more than doubled); above it the flat
      corrects them. Without a flat, every dead pixel;
    - ``HOT`` pixels whose noise (the frame's variance, which holds the dark's shot noise)
      is more than ``hot_noise`` times the sky's (the median noise of unflagged pixels, from
      a regular sample of 250,000): the dark's noise swamps the sky there. A hot pixel with
      a modest dark is subtracted by the dark and kept. Without a variance, every hot pixel.

    Saturated pixels are left alone, as by `repair`: their value is a lower limit of a real
    signal, which neighbours would not predict. Detection (which pixels are flagged) is not
    changed: only which flagged pixels get a neighbours' value.
    """
    if not 0 < dead_response < 1:
        raise ValueError(f"dead_response must be between 0 and 1, got {dead_response}")
    if not hot_noise > 0:
        raise ValueError(f"hot_noise must be positive, got {hot_noise}")
    unusable = frame.has(Flag.COSMIC_RAY | Flag.NO_DATA | Flag.LOW_FLAT)
    dead = frame.has(Flag.DEAD)
    if flat is not None and dead.any():
        if flat.shape != frame.shape:
            raise ValueError(f"flat shape {flat.shape} != frame shape {frame.shape}")
        with np.errstate(invalid="ignore"):
            dead &= ~(flat.data >= dead_response)
    hot = frame.has(Flag.HOT)
    if frame.variance is not None and hot.any():
        level = _median_variance(frame)
        if np.isfinite(level) and level > 0:
            with np.errstate(invalid="ignore"):
                hot &= ~(frame.variance <= hot_noise**2 * level)
    return unusable | dead | hot


_LEVEL_SAMPLE = 250_000
"""Pixels sampled for the sky's noise level in `unusable_pixels`: its median to about 0.3%."""


def _median_variance(frame: Frame) -> float:
    """Median variance of the unflagged pixels, from a regular sample of about 250,000.

    The stride is odd, so every colour plane of a Bayer mosaic is sampled.
    """
    step = max(1, frame.variance.size // _LEVEL_SAMPLE) | 1
    return masked_median(np.ascontiguousarray(frame.variance.ravel()[::step]),
                         flagged(frame.dq.ravel()[::step], BAD))


def repair(frame: Frame, *, flags: Flag = REPAIRABLE, box: int = 5, cfa: str | None = None,
           where: np.ndarray | None = None) -> Frame:
    """Replace pixels carrying ``flags`` by the median of good neighbours in a ``box`` window.

    The original flags stay set and REPAIRED is added, so a repaired pixel is never mistaken
    for a measured one. The variance of a repaired pixel is the median of its neighbours'.
    With a Bayer ``cfa`` the neighbours are the pixels of the same colour (the box is taken in
    the colour plane). ``where`` (boolean image) restricts the repair to those pixels, e.g.
    `unusable_pixels`; every flagged pixel is still excluded from the neighbours.
    """
    if box < 3 or box % 2 == 0:
        raise ValueError(f"box must be an odd number >= 3, got {box}")
    if where is not None and np.shape(where) != frame.shape:
        raise ValueError(f"where shape {np.shape(where)} != frame shape {frame.shape}")
    rows, cols = flagged_pixels(frame.dq, flags, where)
    if not rows.size:
        return frame
    if frame.data.dtype == np.float32 and (frame.variance is None
                                           or frame.variance.dtype == np.float32):
        # Only the pixels repaired are visited (data and variance in one pass).
        data, variance, done = repair_at(frame.data, frame.variance, frame.dq,
                                         flags | Flag.SATURATED, rows, cols, box=box,
                                         step=2 if cfa else 1)
        repaired = np.zeros(frame.shape, bool)
        repaired[rows[done], cols[done]] = True
        return frame.replace(data=data, variance=variance).with_flags(repaired, Flag.REPAIRED)
    target = np.zeros(frame.shape, bool)
    target[rows, cols] = True
    return _repaired_frame(frame, flags, box, cfa, target)


def _repaired_frame(frame: Frame, flags: Flag, box: int, cfa: str | None,
                    target: np.ndarray) -> Frame:
    """`repair` of a frame whose data or variance are not float32 (whole-image kernels)."""
    bad = frame.has(flags | Flag.SATURATED)
    # Medians are computed at the target pixels only; elsewhere the result is the image.
    data, done = _repaired(frame.data, bad, box, cfa, target)
    if data.dtype != frame.data.dtype:
        data = np.where(done, data, frame.data)
    variance = frame.variance
    if variance is not None:
        # Only where the data were repaired (a pixel whose neighbours' data are all NaN keeps
        # its value and its variance).
        var_values, _ = _repaired(variance, bad, box, cfa, done)
        variance = (var_values if var_values.dtype == variance.dtype
                    else np.where(done, var_values, variance))
    return frame.replace(data=data, variance=variance).with_flags(done, Flag.REPAIRED)


def _repaired(image: np.ndarray, bad: np.ndarray, box: int, cfa: str | None,
              where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not cfa:
        return repair_pixels(image, bad, box=box, where=where)
    results = per_plane(lambda i, b, w: repair_pixels(i, b, box=box, where=w),
                        [image, bad, where], cfa)
    return (assemble([r[0] for r in results], image.shape, cfa),
            assemble([r[1] for r in results], image.shape, cfa, np.bool_))
