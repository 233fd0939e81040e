"""The notebook's figures: a frame beside a zoomed cutout, histograms, before/after.

Figures are built on `matplotlib.figure.Figure` directly (no pyplot state), so they can be made
in worker processes and written to PNG without a display.
"""

from __future__ import annotations

import io as _bytes_io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, NullLocator

from .atomic import atomic_output
from .display import (
    SAMPLE,
    SCALES,
    Cutout,
    binned,
    colour_limits,
    colour_preview,
    default_cutout,
    frame_colour,
    unit_label,
)
from .flags import Flag
from .kernels.stats import robust_stats

if TYPE_CHECKING:
    from .frame import Frame

__all__ = ["Cutout", "colour_limits", "frame_figure", "histogram_figure", "compare_figure",
           "save", "png_bytes", "default_cutout", "SCALES", "colour_preview", "frame_colour",
           "unit_label"]

_PANEL_PIXELS = 600
"""Largest side of a full-frame panel's image: a frame is binned to this before drawing."""


def _title(frame: Frame, title: str | None) -> str:
    if title:
        return title
    return frame.path.name if frame.path else "frame"


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
    stats = robust_stats(data, exclude=~normal, max_values=SAMPLE)
    centre = stats.median if np.isfinite(stats.median) else float(np.median(data[finite]))
    linear = 5 * stats.std if np.isfinite(stats.std) and stats.std > 0 else 1.0
    offsets = data - np.float32(centre)
    edges = _symlog_edges(float(np.min(offsets[finite])), float(np.max(offsets[finite])),
                          linear, bins)
    # Drawn as steps from precomputed counts (matplotlib's hist patches cost a third of the
    # figure), from 0.5 on the log axis.
    for chosen, colour, label in ((normal, "0.35", "pixels"), (hot, "tab:red", "hot"),
                                  (dead, "tab:blue", "dead")):
        if chosen is normal or chosen.any():
            counts, _ = np.histogram(offsets[chosen], bins=edges)
            ax.stairs(counts, edges, fill=True, baseline=0.5, color=colour,
                      label=f"{label} ({chosen.sum():,})")
    ax.set_xscale("symlog", linthresh=linear, linscale=1.0)
    # Ticks at 0, +/- 5 sigma and each decade beyond: matplotlib's own crowd the linear part.
    decades = [linear * 10**k for k in range(0, 8) if linear * 10**k <= max(
        abs(edges[0]), abs(edges[-1])) * 1.01 or k == 0]
    ticks = sorted({0.0, *decades, *(-d for d in decades if -d >= edges[0] * 1.01
                                     or d == linear)})
    ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yscale("log")
    # Counts as plain numbers (1, 100, 1e+04): matplotlib's 10^n labels go through its
    # TeX-like parser, a quarter of the figure's time.
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0e}"
                                               if value >= 1e5 else f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
    ax.axvspan(-linear, linear, color="tab:green", alpha=0.06, lw=0)
    ax.set_xlabel(f"pixel value - median {centre:.5g} ({unit}); linear within +/- 5 sigma "
                  f"({linear:.3g}), logarithmic beyond")
    ax.set_ylabel("number of pixels")
    ax.set_title(_title(frame, title), fontsize=9, y=1.0)
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
