"""The notebook's figures: a frame beside a zoomed cutout, histograms, before/after.

Figures are built on `matplotlib.figure.Figure` directly (no pyplot state), so they can be made
in worker processes and written to PNG without a display.
"""

from __future__ import annotations

import io as _bytes_io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullLocator

from .atomic import atomic_output
from .flags import Flag
from .instruments.camera import cfa_pattern
from .kernels.stats import robust_stats

if TYPE_CHECKING:
    from .frame import Frame

__all__ = ["Cutout", "colour_limits", "frame_figure", "histogram_figure", "compare_figure",
           "save", "png_bytes", "default_cutout", "SCALES", "colour_preview", "frame_colour",
           "unit_label"]

SCALES = ("sigma", "zscale")

_SAMPLE = 50_000
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
        stats = robust_stats(data, max_values=_SAMPLE)
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


_PANEL_PIXELS = 600
"""Largest side of a full-frame panel's image: a frame is binned to this before drawing."""


def unit_label(frame: Frame) -> str:
    """Return the unit of a frame's values for a colour bar or axis (a flat's: its response)."""
    if "FLAT" in str(frame.header.get("IMAGETYP", "")).upper():
        return "relative response"
    return str(frame.header.get("BUNIT", "adu") or "adu")


def _title(frame: Frame, title: str | None) -> str:
    if title:
        return title
    return frame.path.name if frame.path else "frame"


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
    stats = robust_stats(values, max_values=_SAMPLE)
    low = stats.median - 2.8 * stats.std
    high = max(float(np.percentile(values, 99.99)), low + 1e-9)
    x = np.clip((values - low) / (high - low), 0.0, 1.0)
    sky = float(np.clip((stats.median - low) / (high - low), 1e-6, 1 - 1e-6))
    # The midtones balance m that takes the sky to ``background``: MTF(x) = (m-1)x/((2m-1)x-m).
    m = sky * (background - 1) / (2 * background * sky - background - sky)
    return np.clip((m - 1) * x / ((2 * m - 1) * x - m), 0.0, 1.0)


def _image_panels(fig: Figure, axes, frame: Frame, cutout: Cutout, scale: str,
                  title: str) -> None:
    cfa = frame_colour(frame)
    if cfa:
        _colour_panels(axes, frame, cfa, cutout, title)
        return
    full_ax, zoom_ax = axes
    limits = colour_limits(frame.data, scale)
    kwargs = {"origin": "lower", "cmap": "gray", "vmin": limits[0], "vmax": limits[1],
              "interpolation": "nearest"}
    rows, cols = frame.shape
    small = binned(frame.data, _PANEL_PIXELS)
    factor = rows // small.shape[0] if small.shape[0] else 1
    image = full_ax.imshow(small, **{**kwargs, "extent": (
        -0.5, small.shape[1] * factor - 0.5, -0.5, small.shape[0] * factor - 0.5)})
    if factor > 1:
        title = f"{title} (shown binned {factor}x{factor})"
    row0, row1, col0, col1 = cutout.bounds(frame.shape)
    full_ax.add_patch(Rectangle((col0 - 0.5, row0 - 0.5), col1 - col0, row1 - row0,
                                fill=False, edgecolor="tab:red", linewidth=1.2))
    # A fixed title height (y=1): matplotlib's automatic one measures every tick label first.
    full_ax.set_title(title, fontsize=8, loc="left", y=1.0)
    zoom = zoom_ax.imshow(frame.data[row0:row1, col0:col1], extent=(
        col0 - 0.5, col1 - 0.5, row0 - 0.5, row1 - 0.5), **kwargs)
    zoom_ax.set_title(f"cutout [{col0}:{col1}, {row0}:{row1}]", fontsize=9, y=1.0)
    for ax in axes:
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)")
    # A colour bar beside each panel, in a fixed place (no layout engine: it costs seconds a
    # night); the full frame's is of its binned values, on the same scale as the cutout's.
    unit = unit_label(frame)
    for ax, shown, label in ((full_ax, image, f"{unit} (binned mean)" if factor > 1 else unit),
                             (zoom_ax, zoom, unit)):
        bar = fig.colorbar(shown, cax=ax.inset_axes((1.03, 0.0, 0.04, 1.0)))
        bar.set_label(label, fontsize=8)
        bar.ax.tick_params(labelsize=7)


def _colour_panels(axes, frame: Frame, cfa: str, cutout: Cutout, title: str) -> None:
    full_ax, zoom_ax = axes
    rgb = colour_preview(frame.data, cfa)
    kwargs = {"origin": "lower", "interpolation": "nearest"}
    # Averaged over whole cells of the demosaiced image: no aliasing.
    factor = int(np.ceil(max(frame.shape) / _PANEL_PIXELS))
    small = np.stack([binned(rgb[..., c], _PANEL_PIXELS) for c in range(3)], axis=-1)
    full_ax.imshow(small, **{**kwargs, "interpolation": "antialiased", "extent": (
        -0.5, small.shape[1] * max(factor, 1) - 0.5, -0.5, small.shape[0] * max(factor, 1) - 0.5)})
    row0, row1, col0, col1 = cutout.bounds(frame.shape)
    full_ax.add_patch(Rectangle((col0 - 0.5, row0 - 0.5), col1 - col0, row1 - row0,
                                fill=False, edgecolor="tab:red", linewidth=1.2))
    full_ax.set_title(f"{title} (colour preview, {cfa})", fontsize=8, loc="left", y=1.0)
    zoom_ax.imshow(rgb[row0:row1, col0:col1], extent=(col0 - 0.5, col1 - 0.5, row0 - 0.5,
                                                        row1 - 0.5), **kwargs)
    zoom_ax.set_title(f"cutout [{col0}:{col1}, {row0}:{row1}]", fontsize=9, y=1.0)
    for ax in axes:
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)")


def frame_figure(frame: Frame, *, cutout: Cutout | None = None, scale: str = "sigma",
                 title: str | None = None) -> Figure:
    """Draw the full frame beside a zoomed cutout, one colour scale, the cutout in red.

    Raises
    ------
    ValueError
        The cutout's centre is outside the frame.
    """
    cutout = (cutout or default_cutout(frame.shape)).check(frame.shape)
    fig = Figure(figsize=(11, 4.8))
    axes = fig.subplots(1, 2)
    # A fixed layout: matplotlib's constrained layout costs seconds a figure on a night.
    fig.subplots_adjust(left=0.06, right=0.9, bottom=0.1, top=0.93, wspace=0.45)
    _image_panels(fig, axes, frame, cutout, scale, _title(frame, title))
    return fig


def histogram_figure(frame: Frame, *, title: str | None = None, bins: int = 200) -> Figure:
    """Pixel histogram over a robust range; HOT pixels in red and DEAD pixels in blue.

    The x axis is the value minus the frame's median, linear within 5 sigma of it and
    logarithmic beyond (symlog): the bulk of the pixels spreads over the figure instead of
    falling into two bins of a 0-33000 ADU axis, and the tails (hot pixels, dead pixels,
    saturation) stay visible, each bin the same width on the page.
    """
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    # A fixed layout, and each histogram one filled outline rather than 200 bars: the figure
    # draws in a tenth of the time (matplotlib's constrained layout and bar patches).
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.14, top=0.93)
    data = frame.data
    finite = np.isfinite(data)
    hot = finite & frame.has(Flag.HOT)
    dead = finite & frame.has(Flag.DEAD)
    normal = finite & ~hot & ~dead
    unit = unit_label(frame)
    if not finite.any():
        ax.set_title(f"{_title(frame, title)}: no finite pixel", fontsize=9)
        return fig
    stats = robust_stats(data, exclude=~normal, max_values=_SAMPLE)
    centre = stats.median if np.isfinite(stats.median) else float(np.median(data[finite]))
    linear = 5 * stats.std if np.isfinite(stats.std) and stats.std > 0 else 1.0
    offsets = data - np.float32(centre)
    edges = _symlog_edges(float(np.min(offsets[finite])), float(np.max(offsets[finite])),
                          linear, bins)
    ax.hist(offsets[normal], bins=edges, histtype="stepfilled", color="0.35",
            label=f"pixels ({normal.sum():,})")
    if hot.any():
        ax.hist(offsets[hot], bins=edges, histtype="stepfilled", color="tab:red",
                label=f"hot ({hot.sum():,})")
    if dead.any():
        ax.hist(offsets[dead], bins=edges, histtype="stepfilled", color="tab:blue",
                label=f"dead ({dead.sum():,})")
    ax.set_xscale("symlog", linthresh=linear, linscale=1.0)
    # Ticks at 0, +/- 5 sigma and each decade beyond: matplotlib's own crowd the linear part.
    decades = [linear * 10**k for k in range(0, 8) if linear * 10**k <= max(
        abs(edges[0]), abs(edges[-1])) * 1.01 or k == 0]
    ticks = sorted({0.0, *decades, *(-d for d in decades if -d >= edges[0] * 1.01
                                     or d == linear)})
    ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yscale("log")
    ax.axvspan(-linear, linear, color="tab:green", alpha=0.06, lw=0)
    ax.set_xlabel(f"pixel value - median {centre:.5g} ({unit}); linear within +/- 5 sigma "
                  f"({linear:.3g}), logarithmic beyond")
    ax.set_ylabel("number of pixels")
    ax.set_title(_title(frame, title), fontsize=9)
    ax.legend(fontsize=8)
    return fig


def _symlog_edges(low: float, high: float, linear: float, bins: int) -> np.ndarray:
    """Bin edges equally spaced on a symlog axis (linear within +/- ``linear``)."""
    def forward(v: np.ndarray) -> np.ndarray:
        return np.sign(v) * np.where(np.abs(v) <= linear, np.abs(v) / linear,
                                     1 + np.log10(np.maximum(np.abs(v), linear) / linear))

    def inverse(u: np.ndarray) -> np.ndarray:
        return np.sign(u) * np.where(np.abs(u) <= 1, np.abs(u) * linear,
                                     linear * 10 ** (np.abs(u) - 1))

    lo, hi = forward(np.array(low)), forward(np.array(high))
    if not hi > lo:
        hi = lo + 1.0
    return np.unique(inverse(np.linspace(lo, hi, bins + 1)))


def compare_figure(before: Frame, after: Frame, *, cutout: Cutout | None = None,
                   scale: str = "sigma", titles: tuple[str, str] | None = None) -> Figure:
    """2x2 before/after: each frame full and as the same cutout, each with its own scale.

    Raises
    ------
    ValueError
        The cutout's centre is outside either frame.
    """
    cutout = (cutout or default_cutout(after.shape)).check(after.shape).check(before.shape)
    fig = Figure(figsize=(11, 9))
    axes = fig.subplots(2, 2)
    fig.subplots_adjust(left=0.06, right=0.9, bottom=0.06, top=0.96, wspace=0.45, hspace=0.2)
    names = titles or (f"before: {_title(before, None)}", f"after: {_title(after, None)}")
    _image_panels(fig, axes[0], before, cutout, scale, names[0])
    _image_panels(fig, axes[1], after, cutout, scale, names[1])
    return fig


def save(fig: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Write a figure as PNG (atomically)."""
    path = Path(path)
    with atomic_output(path) as tmp:
        # zlib level 3, not 6: a night's figures encode in half the time, 10% larger.
        fig.savefig(tmp, format="png", dpi=dpi, pil_kwargs={"compress_level": 3})
    return path


def png_bytes(fig: Figure, *, dpi: int = 80) -> bytes:
    """Return a figure as PNG bytes (for Jupyter)."""
    buffer = _bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
