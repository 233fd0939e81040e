"""What any display of a frame needs, without a plotting library.

Cutouts, colour scales, binning without aliasing, colour previews of Bayer mosaics, units.
`ccdred.plots` (matplotlib figures) and `ccdred.quicklook` (the report's figures, drawn with
Pillow) both build on it; importing it does not import matplotlib.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .instruments.camera import cfa_pattern
from .kernels.stats import robust_stats

if TYPE_CHECKING:
    from .frame import Frame

__all__ = ["SCALES", "SAMPLE", "Cutout", "default_cutout", "colour_limits", "binned",
           "unit_label", "frame_colour", "colour_preview"]

SCALES = ("sigma", "zscale")

SAMPLE = 50_000
"""Pixels sampled for a display's statistics (the median to 0.6% of sigma: a fraction of a
grey level)."""


@dataclass(frozen=True)
class Cutout:
    """A square zoom: centre column ``x``, centre row ``y`` (0-based pixels) and ``size``."""

    x: int
    y: int
    size: int

    def bounds(self, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(row0, row1, col0, col1)`` clipped to an image of ``shape``.

        Raises
        ------
        ValueError
            The centre is outside the image (the cutout would be empty).
        """
        if self.y >= shape[0] or self.x >= shape[1]:
            raise ValueError(f"cutout centre x={self.x}, y={self.y} is outside the "
                             f"{shape[1]}x{shape[0]} image")
        half = self.size // 2
        row0, col0 = max(0, self.y - half), max(0, self.x - half)
        return (row0, min(shape[0], row0 + self.size), col0, min(shape[1], col0 + self.size))

    def check(self, shape: tuple[int, int]) -> Cutout:
        """Return the cutout if its centre lies on an image of ``shape`` (rows, columns).

        Raises
        ------
        ValueError
            The centre is outside the image: the zoom would be blank.
        """
        rows, cols = shape
        if not (0 <= self.x < cols and 0 <= self.y < rows):
            raise ValueError(f"cutout centre ({self.x}, {self.y}) is outside the frame: x must "
                             f"be 0-{cols - 1} and y 0-{rows - 1} for a {cols}x{rows} image")
        return self

    @classmethod
    def parse(cls, text: str) -> Cutout:
        """Read ``"X,Y,SIZE"`` (pixels).

        Raises
        ------
        ValueError
            Not three positive integers.
        """
        try:
            x, y, size = (int(part) for part in text.split(","))
        except ValueError:
            raise ValueError(f"cutout must be X,Y,SIZE in pixels, got {text!r}") from None
        if x < 0 or y < 0 or size < 2:
            raise ValueError(f"cutout must have X, Y >= 0 and SIZE >= 2, got {text!r}")
        return cls(x, y, size)


def default_cutout(shape: tuple[int, int]) -> Cutout:
    """Return the central square, a fifth of the smaller side (at least 32 pixels)."""
    size = max(32, min(shape) // 5)
    return Cutout(shape[1] // 2, shape[0] // 2, min(size, *shape))


def colour_limits(data: np.ndarray, scale: str = "sigma") -> tuple[float, float]:
    """Display limits: ``median - 2 sigma`` to ``median + 5 sigma`` (clipped), or zscale."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    finite = np.isfinite(data)
    if not finite.any():
        return (0.0, 1.0)
    if scale == "zscale":
        from astropy.visualization import ZScaleInterval

        low, high = ZScaleInterval().get_limits(data[finite])
    else:
        stats = robust_stats(data, max_values=SAMPLE)
        low, high = stats.median - 2 * stats.std, stats.median + 5 * stats.std
    if not high > low:
        high = low + 1.0
    return (float(low), float(high))


def binned(data: np.ndarray, max_pixels: int) -> np.ndarray:
    """Block-average ``data`` to at most ``max_pixels`` a side: a display without aliasing.

    The factor is the smallest whole number that does it; non-finite pixels are ignored.
    A figure that shows a 4096-pixel frame in 500 screen pixels otherwise picks one pixel in
    eight, so noise, hot pixels and cosmic rays alias into a pattern.
    """
    factor = int(np.ceil(max(data.shape) / max_pixels))
    if factor <= 1:
        return data
    from .kernels.sparse import block_mean  # compiled: imported when a figure is drawn

    return block_mean(data, factor)


def unit_label(frame: Frame) -> str:
    """Return the unit of a frame's values for a colour bar or axis (a flat's: its response)."""
    if "FLAT" in str(frame.header.get("IMAGETYP", "")).upper():
        return "relative response"
    return str(frame.header.get("BUNIT", "adu") or "adu")


def frame_colour(frame: Frame) -> str | None:
    """Return the Bayer pattern of a colour frame to preview in colour (None: masters, mono)."""
    if "MASTER" in str(frame.header.get("IMAGETYP", "")).upper():
        return None
    return cfa_pattern(frame.header, frame.shape)


def colour_preview(data: np.ndarray, cfa: str) -> np.ndarray:
    """Return an RGB image (rows x columns x 3, 0-1) of a Bayer mosaic, to look at, not to measure.

    Demosaiced bilinearly by ``colour-demosaicing``, then each channel stretched as
    PixInsight's automatic screen transfer function does: clipped 2.8 sigma below its sky,
    and bent by a midtones transfer function that puts the sky at a quarter of full scale,
    so the sky comes out neutral dark grey and star cores stay below white.
    """
    with warnings.catch_warnings():
        # colour-demosaicing imports a scipy namespace that scipy deprecates.
        warnings.simplefilter("ignore", DeprecationWarning)
        from colour_demosaicing import demosaicing_CFA_Bayer_bilinear

    finite = np.isfinite(data)
    filled = np.where(finite, data, np.median(data[finite]) if finite.any() else 0.0)
    rgb = demosaicing_CFA_Bayer_bilinear(filled.astype(np.float64), cfa)
    out = np.empty_like(rgb)
    for channel in range(3):
        out[..., channel] = _auto_stretch(rgb[..., channel])
    return out


def _auto_stretch(values: np.ndarray, background: float = 0.25) -> np.ndarray:
    """Stretch one channel to 0-1: shadows 2.8 sigma below the sky, the sky at ``background``."""
    stats = robust_stats(values, max_values=SAMPLE)
    low = stats.median - 2.8 * stats.std
    high = max(float(np.percentile(values, 99.99)), low + 1e-9)
    x = np.clip((values - low) / (high - low), 0.0, 1.0)
    sky = float(np.clip((stats.median - low) / (high - low), 1e-6, 1 - 1e-6))
    # The midtones balance m that takes the sky to ``background``: MTF(x) = (m-1)x/((2m-1)x-m).
    m = sky * (background - 1) / (2 * background * sky - background - sky)
    return np.clip((m - 1) * x / ((2 * m - 1) * x - m), 0.0, 1.0)
